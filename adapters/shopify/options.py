"""The ``options`` table of a ``shopify`` channel, checked when the config is loaded.

Names, defaults and meanings are those of ``docs/channels/shopify.md``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ..options import SecondsOrZero, Timeout

__all__ = ["CAS_REQUIRED_FROM", "DEFAULT_API_VERSION", "Options"]

DEFAULT_API_VERSION = "2026-04"
#: The first API version where every quantity must carry ``changeFromQuantity``.
CAS_REQUIRED_FROM = "2026-04"

#: ``655441491`` or ``gid://shopify/Location/655441491`` (surrounding spaces are forgiven).
LocationId = (
    Annotated[int, msgspec.Meta(ge=0)]
    | Annotated[
        str,
        msgspec.Meta(
            pattern=r"^\s*(\d+|gid://shopify/Location/\d+)\s*$",
            description="a Shopify location id: 123 or gid://shopify/Location/123",
        ),
    ]
)
ApiVersion = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(\d{4}-\d{2}|unstable)$",
        description="an Admin API version like 2026-04, or unstable",
    ),
]
#: An invsync location id (the rule of ``core.ids``; that it is configured is the daemon's check).
LocationRef = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", description="an invsync location id"
    ),
]


class Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[[channels]] options`` of kind ``shopify``."""

    #: The Shopify location whose ``available`` invsync sets.
    location_id: LocationId
    #: Admin API version of ``{url}/admin/api/{api_version}/graphql.json``.
    api_version: ApiVersion = DEFAULT_API_VERSION
    #: The invsync location returned units go to (``refunds/create``, ``restock_type: return``);
    #: without it such refunds are refused.
    return_location: LocationRef | None = None
    #: How long a SKU is held after CHANGE_FROM_QUANTITY_STALE before our number wins.
    stale_wait_s: SecondsOrZero = 30.0
    #: ``retry_after`` given for a held SKU.
    stale_retry_s: SecondsOrZero = 1.0
    #: How far back the order poll looks for sales of a stale SKU.
    order_lookback_s: SecondsOrZero = 86_400.0
    #: ``notifyCustomer`` of ``orderCancel``.
    cancel_notify_customer: bool = True
    #: Per-request timeout.
    timeout_s: Timeout = 10.0

    def location_gid(self) -> str:
        """``location_id`` as a GID (``gid://shopify/Location/N``)."""
        value = str(self.location_id).strip()
        return value if value.startswith("gid://") else f"gid://shopify/Location/{value}"
