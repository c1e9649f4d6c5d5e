"""HMAC-SHA256 body signatures, hex encoded: one implementation for both directions.

The generic ``webhook`` channel signs what it POSTs (spec, "Interfaces": HMAC-SHA256 of the raw
body under the secret named by ``secret_env``, hex in ``X-Invsync-Signature``), and inbound
channel webhooks are verified the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["SIGNATURE_HEADER", "sign", "sign_b64", "verify", "verify_b64"]

SIGNATURE_HEADER = "X-Invsync-Signature"


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, body: bytes) -> str:
    """The lowercase hex HMAC-SHA256 of ``body`` under ``secret``."""
    return hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, signature: str | None) -> bool:
    """True when ``signature`` is the hex HMAC-SHA256 of ``body``; compared in constant time."""
    if not signature:
        return False
    expected = sign(secret, body).encode()
    # Case-insensitive hex; non-ASCII garbage simply fails to match (never raises).
    given = signature.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)


def sign_b64(secret: str | bytes, body: bytes) -> str:
    """The base64 HMAC-SHA256 of ``body`` (Shopify's ``X-Shopify-Hmac-Sha256`` form)."""
    return base64.b64encode(hmac.new(_key(secret), body, hashlib.sha256).digest()).decode()


def verify_b64(secret: str | bytes, body: bytes, signature: str | None) -> bool:
    """True when ``signature`` is the base64 HMAC-SHA256 of ``body``; constant-time compare."""
    if not signature:
        return False
    expected = sign_b64(secret, body).encode()
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))
