"""Identifier rules: what a SKU, a location/channel/order id and an event id may contain.

Every one of them becomes part of a Redis key, a metric label or a file name, so the rules are
strict and shared by the config, the events and the store.
"""

from __future__ import annotations

import re

from .errors import InvalidRequest

_SKU_FORBIDDEN = re.compile(r"[{}\s\x00-\x1f]")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def check_sku(sku: str) -> str:
    """Return ``sku`` if it can be a key part: 1..128 chars, no braces, whitespace or controls."""
    if not isinstance(sku, str) or not sku or len(sku) > 128 or _SKU_FORBIDDEN.search(sku):
        raise InvalidRequest(
            f"invalid SKU {sku!r}: 1 to 128 characters, no braces, spaces or control characters",
            field="sku",
        )
    return sku


def check_id(value: str, what: str) -> str:
    """Return ``value`` if it is a valid location/channel/order id (letters, digits, ``_.-``)."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidRequest(
            f"invalid {what} {value!r}: 1 to 64 of letters, digits, '_', '.', '-'", field=what
        )
    return value


def check_event_id(value: str) -> str:
    """Return ``value`` if usable as an idempotency key: 1..200 printable chars, no braces."""
    if not isinstance(value, str) or not value or len(value) > 200 or _SKU_FORBIDDEN.search(value):
        raise InvalidRequest(
            f"invalid event id {value!r}: 1 to 200 characters, no braces or spaces", field="id"
        )
    return value
