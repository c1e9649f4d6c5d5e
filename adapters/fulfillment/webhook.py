"""``kind = "webhook"``: each message is POSTed as JSON to the location's URL, signed.

The raw body is signed with HMAC-SHA256 under the location's secret (``secret_env``), hex in
``X-Invsync-Signature`` (the same scheme as the webhook channel, ``adapters/signing.py``), and the
message id travels in ``Idempotency-Key`` too, so a location that receives a copy (an answer lost
on the way back) can drop it. One message per request, so the location's answer speaks for that
message alone:

- 2xx: acknowledged;
- 408, 425, 429 and 5xx, a timeout or a connection failure: ``Undelivered``, tried again after a
  backoff (``Retry-After`` seconds are honoured);
- any other 4xx: ``Refused``; the daemon opens a ``fulfillment_refused`` incident with the body.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
import msgspec

from ...core.fulfillment_config import WebhookFulfillment
from ...core.fulfillment_messages import Message
from ..signing import SIGNATURE_HEADER, sign
from .base import Refused, Undelivered

__all__ = ["WebhookSender"]

_RETRY_STATUSES = frozenset({408, 425, 429})
_BODY_EXCERPT = 300


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None


class WebhookSender:
    """Signed JSON POSTs to one location."""

    batch_size = 1

    def __init__(
        self, location: str, config: WebhookFulfillment, session: aiohttp.ClientSession,
        secret: str,
    ) -> None:
        self.location = location
        self.url = config.url
        self._session = session
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=config.retry.timeout_s)

    async def send(self, messages: Sequence[Message]) -> None:
        for message in messages:
            await self._post(message)

    async def _post(self, message: Message) -> None:
        body = msgspec.json.encode(message)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            "Idempotency-Key": message.id,
            "User-Agent": "invsync-fulfillment",
        }
        try:
            async with self._session.post(
                self.url, data=body, headers=headers, timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                text = (await response.text(errors="replace"))[:_BODY_EXCERPT]
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Undelivered(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
        if 200 <= status < 300:
            return
        if status in _RETRY_STATUSES or status >= 500:
            raise Undelivered(f"HTTP {status}: {text}", retry_after_s=retry_after)
        raise Refused(f"HTTP {status}: {text}", status=status)

    async def aclose(self) -> None:
        """The session belongs to the daemon."""
