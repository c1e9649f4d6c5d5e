"""TikTok Shop's two HMAC-SHA256 signatures: the ``sign`` of a request, and a webhook's
``Authorization``.

- ``sign`` is the lowercase hex HMAC-SHA256, keyed by the app secret, of
  ``app_secret + path + key1value1key2value2… (query parameters sorted by key, without sign and
  access_token) + body + app_secret`` (the body is left out for GET and multipart requests):
  partner.tiktokshop.com/docv2/page/sign-your-api-request as implemented by EcomPHP/tiktokshop-php
  ``src/Client.php`` ``prepareSignature`` and hsib19/tiktok-shop-sdk ``src/utils/signature.ts``.
  The page's worked example (Get Authorized Shops, app secret ``e59af819cc``, ``app_key=29a39d``,
  ``timestamp=1623812664``) gives ``b596b73e...582dc8``; ``tests/adapters/test_tiktok.py``
  checks this function against it.
- Webhooks: ``Authorization`` carries the hex HMAC-SHA256 of ``app_key + raw body`` under the app
  secret (EcomPHP ``src/Webhook.php`` ``verify``).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..signing import sign, verify

__all__ = ["sign_request", "verify_webhook", "webhook_signature"]


def sign_request(app_secret: str, path: str, params: Mapping[str, str], body: bytes = b"") -> str:
    """The ``sign`` query parameter of a request to ``path`` (its URL path as sent)."""
    pairs = "".join(
        f"{key}{params[key]}" for key in sorted(params) if key not in ("sign", "access_token")
    )
    secret = app_secret.encode()
    return sign(secret, secret + (path + pairs).encode() + body + secret)


def webhook_signature(app_key: str, app_secret: str, body: bytes) -> str:
    """The ``Authorization`` header TikTok Shop puts on a webhook with ``body``."""
    return sign(app_secret, app_key.encode() + body)


def verify_webhook(app_key: str, app_secret: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is the ``Authorization`` of a webhook with ``body`` (constant time)."""
    return verify(app_secret, app_key.encode() + body, signature)
