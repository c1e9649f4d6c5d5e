"""How each simulated marketplace signs what it sends and checks what it receives.

Written from the marketplaces' documentation, never from our adapters (STYLE.md, example 13): an
adapter that signs wrongly must meet a simulator that refuses it.

- invsync's own channels (SPEC.md, "Interfaces"): the generic ``webhook`` channel's pushes carry
  the lowercase hex HMAC-SHA256 of the raw body under the secret ``secret_env`` names, in
  ``X-Invsync-Signature``. The relays in front of the daemon for Amazon's ORDER_CHANGE (SQS) and
  Walmart's order events sign what they POST the same way.
- Shopify (shopify.dev/docs/apps/build/webhooks/subscribe/https, "Verify a webhook"):
  ``X-Shopify-Hmac-Sha256`` is the *base64* HMAC-SHA256 of the raw body under the app's client
  secret.
- TikTok Shop, requests (partner.tiktokshop.com "Sign your API request", doc page 274638): the
  ``sign`` query parameter is the hex HMAC-SHA256, keyed by the app secret, of
  ``app_secret + path + {key}{value} of every query parameter but sign and access_token, sorted
  by key + body (unless the request is multipart/form-data) + app_secret``.
- TikTok Shop, webhooks (partner.tiktokshop.com webhooks overview, "verify the signature"):
  ``Authorization`` carries the hex HMAC-SHA256 of ``app_key + raw body`` under the app secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

__all__ = [
    "INVSYNC_SIGNATURE",
    "SHOPIFY_HMAC",
    "TIKTOK_WEBHOOK_SIGNATURE",
    "hex_matches",
    "hmac_b64",
    "hmac_hex",
    "tiktok_request_sign",
    "tiktok_webhook_signature",
]

#: The header invsync's channels and relays carry their hex signature in (SPEC.md).
INVSYNC_SIGNATURE = "X-Invsync-Signature"
#: Shopify's webhook signature header (base64).
SHOPIFY_HMAC = "X-Shopify-Hmac-Sha256"
#: TikTok Shop puts its webhook signature in the plain ``Authorization`` header.
TIKTOK_WEBHOOK_SIGNATURE = "Authorization"

#: Query parameters TikTok leaves out of the signed string ("Sign your API request", step 1).
_TIKTOK_UNSIGNED = frozenset({"sign", "access_token"})


def _digest(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def hmac_hex(secret: str, body: bytes) -> str:
    """The lowercase hex HMAC-SHA256 of ``body`` under ``secret``."""
    return _digest(secret, body).hex()


def hmac_b64(secret: str, body: bytes) -> str:
    """The base64 (standard alphabet, padded) HMAC-SHA256 of ``body`` under ``secret``."""
    return base64.b64encode(_digest(secret, body)).decode("ascii")


def hex_matches(secret: str, body: bytes, given: str | None) -> bool:
    """Whether ``given`` is the hex HMAC-SHA256 of ``body`` (either case), compared in constant
    time; an absent or non-ASCII value simply does not match."""
    if not given:
        return False
    expected = hmac_hex(secret, body).encode("ascii")
    return hmac.compare_digest(expected, given.strip().lower().encode("utf-8", "replace"))


def tiktok_request_sign(
    app_secret: str,
    path: str,
    query: Mapping[str, str],
    body: bytes = b"",
    *,
    content_type: str = "application/json",
) -> str:
    """The ``sign`` TikTok Shop expects on a request to ``path`` (the URL path as sent) with
    ``query`` (decoded values) and ``body``, following the doc's steps in order."""
    # 1-2: every parameter but sign/access_token, by key, as {key}{value}.
    pairs = "".join(key + query[key] for key in sorted(query) if key not in _TIKTOK_UNSIGNED)
    # 3: the path in front.
    message = (path + pairs).encode("utf-8")
    # 4: the body behind, unless the request is multipart/form-data (uploads).
    if "multipart/form-data" not in content_type.lower():
        message += body
    # 5: wrapped in the app secret; 6: HMAC-SHA256 keyed by the app secret, hex.
    wrap = app_secret.encode("utf-8")
    return _digest(app_secret, wrap + message + wrap).hex()


def tiktok_webhook_signature(app_key: str, app_secret: str, body: bytes) -> str:
    """The ``Authorization`` value TikTok Shop sends with a webhook whose raw body is ``body``."""
    return hmac_hex(app_secret, app_key.encode("utf-8") + body)
