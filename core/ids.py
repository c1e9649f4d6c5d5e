"""Identifier rules: what a SKU, a location/channel/order id and an event id may contain.

Every one of them becomes part of a Redis key, a metric label or a file name, so the rules are
strict and shared by the config, the events and the store: `Id` and `Sku` carry them as msgspec
constraints for decoding, `check_id` and `check_sku` apply the same patterns to a value in hand.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

from .errors import InvalidRequest

__all__ = ["ID_PATTERN", "SKU_PATTERN", "Id", "Sku", "check_event_id", "check_id", "check_sku"]

#: A location/channel/order id: 1..64 of letters, digits, ``_.-``, starting with a letter or digit.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
#: A SKU: 1..128 characters, none of them a brace (Redis Cluster hash tags), whitespace or control.
SKU_PATTERN = r"\A[^{}\s\x00-\x1f]{1,128}\Z"

# The description says in words what the pattern accepts: the config's errors read "must be ...".
Id = Annotated[
    str,
    msgspec.Meta(
        pattern=ID_PATTERN,
        description="an id: 1 to 64 letters, digits, '_', '.' or '-', starting with a letter "
        "or digit",
    ),
]
Sku = Annotated[
    str,
    msgspec.Meta(
        pattern=SKU_PATTERN,
        description="a SKU: 1 to 128 characters, without braces, spaces or control characters",
    ),
]

_ID = re.compile(ID_PATTERN)
_SKU = re.compile(SKU_PATTERN)
_EVENT_ID_FORBIDDEN = re.compile(r"[{}\s\x00-\x1f]")


def check_sku(sku: str) -> str:
    """Return ``sku`` if it can be a key part: 1..128 chars, no braces, whitespace or controls."""
    if not isinstance(sku, str) or not _SKU.search(sku):
        raise InvalidRequest(
            f"invalid SKU {sku!r}: 1 to 128 characters, no braces, spaces or control characters",
            field="sku",
        )
    return sku


def check_id(value: str, what: str) -> str:
    """Return ``value`` if it is a valid location/channel/order id (letters, digits, ``_.-``)."""
    if not isinstance(value, str) or not _ID.search(value):
        raise InvalidRequest(
            f"invalid {what} {value!r}: 1 to 64 of letters, digits, '_', '.', '-'", field=what
        )
    return value


def check_event_id(value: str) -> str:
    """Return ``value`` if usable as an idempotency key: 1..200 printable chars, no braces."""
    if (
        not isinstance(value, str)
        or not value
        or len(value) > 200
        or _EVENT_ID_FORBIDDEN.search(value)
    ):
        raise InvalidRequest(
            f"invalid event id {value!r}: 1 to 200 characters, no braces or spaces", field="id"
        )
    return value
