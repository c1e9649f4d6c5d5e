"""`[[locations]] fulfillment`: where a location's work goes (its warehouse, store or 3PL).

A location without ``fulfillment`` is told nothing (invsync only reserves there). With one, every
order part reserved at the location is handed over as a ``fulfillment.requested`` message, and a
part cancelled or routed away as ``fulfillment.cancelled`` (docs/fulfillment.md):

- ``kind = "webhook"``: a signed HTTPS POST to ``url`` (HMAC-SHA256 of the raw body under the
  secret ``secret_env`` names, hex in ``X-Invsync-Signature``); a 2xx answer acknowledges.
- ``kind = "edi940"``: X12 940 Warehouse Shipping Order files written to ``folder``, one
  interchange per batch; 945 Warehouse Shipping Advice files dropped in ``inbox`` come back as
  ``order.fulfilled``.
- ``kind = "mqtt"``: a QoS 1 message on ``topic`` at the ``[mqtt]`` broker; the broker's PUBACK
  acknowledges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from .config_errors import FINITE

__all__ = [
    "Edi940Fulfillment",
    "Fulfillment",
    "FulfillmentRetry",
    "MqttFulfillment",
    "WebhookFulfillment",
]

_Seconds = Annotated[float, msgspec.Meta(gt=0, le=FINITE, description="A duration in seconds.")]
_EnvName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="the name of an environment variable (like WH_SECRET), not the secret itself",
    ),
]
# X12 ISA sender/receiver ids: up to 15 characters, no element or segment separator.
_X12Id = Annotated[
    str,
    msgspec.Meta(
        pattern=r"\A[A-Za-z0-9 ._\-]{1,15}\Z",
        description="an X12 interchange id: 1 to 15 letters, digits, spaces, '.', '_' or '-'",
    ),
]
_X12Qualifier = Annotated[
    str, msgspec.Meta(pattern=r"\A[A-Z0-9]{2}\Z", description="a two-character X12 qualifier")
]
# MQTT topic names for publishing: no wildcards, not empty.
_Topic = Annotated[
    str,
    msgspec.Meta(
        pattern=r"\A[^+#\x00]{1,512}\Z", description="an MQTT topic without '+' or '#'"
    ),
]


class FulfillmentRetry(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """How a message that could not be delivered is tried again (exponential, full jitter)."""

    base_s: _Seconds = 1.0
    cap_s: _Seconds = 300.0
    timeout_s: _Seconds = 10.0


class WebhookFulfillment(
    msgspec.Struct, tag="webhook", tag_field="kind", kw_only=True, forbid_unknown_fields=True,
    frozen=True,
):
    """Signed JSON POSTs to the location's endpoint; 2xx acknowledges, 4xx refuses."""

    url: str
    secret_env: _EnvName
    retry: FulfillmentRetry = FulfillmentRetry()


class Edi940Fulfillment(
    msgspec.Struct, tag="edi940", tag_field="kind", kw_only=True, forbid_unknown_fields=True,
    frozen=True,
):
    """X12 940 files written into ``folder``; 945 files read from ``inbox`` (None: none read)."""

    folder: Path
    inbox: Path | None = None
    sender_id: _X12Id
    receiver_id: _X12Id
    sender_qualifier: _X12Qualifier = "ZZ"
    receiver_qualifier: _X12Qualifier = "ZZ"
    usage: Annotated[str, msgspec.Meta(pattern=r"\A[PT]\Z", description="P or T")] = "P"
    #: Most orders parts written into one interchange (one file).
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    poll_s: _Seconds = 5.0
    retry: FulfillmentRetry = FulfillmentRetry()


class MqttFulfillment(
    msgspec.Struct, tag="mqtt", tag_field="kind", kw_only=True, forbid_unknown_fields=True,
    frozen=True,
):
    """QoS 1 publishes on ``topic`` at the ``[mqtt]`` broker; PUBACK acknowledges."""

    topic: _Topic
    retry: FulfillmentRetry = FulfillmentRetry()


Fulfillment = WebhookFulfillment | Edi940Fulfillment | MqttFulfillment
