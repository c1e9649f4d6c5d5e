"""What a channel had not pushed when the daemon stopped, kept in the store for the next start.

SIGTERM drains each channel for a bounded time; what is left (values coalesced but not yet
acknowledged: a slow or throttled channel, an open breaker) is written to the hash
``pending:{<channel id>}`` (field SKU -> ``"<available>:<version>:<accepted ms>"``), replacing
what was there, in one MULTI (the hash tag keeps it one key in one slot). The next worker of the
channel takes it back (read and deleted atomically) and pushes it first, before the full sync
of a start has walked the catalogue to it.

A value whose SKU has moved on meanwhile (its ``inv:{SKU}`` version is newer, e.g. a ``stock
import`` into the stopped daemon's store) is dropped on the way back: it would only show a
stale quantity until the full sync reached the SKU.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import redis.asyncio as aioredis

from . import keys

__all__ = ["PendingValue", "pending_key", "save_pending", "take_pending"]


class PendingValue(NamedTuple):
    """One SKU's value a channel had not acknowledged, with when its change was accepted."""

    sku: str
    available: int
    version: int
    accepted_ms: int = 0


def pending_key(channel_id: str) -> str:
    """The hash of a stopped channel's unpushed values (one hash tag per channel)."""
    return f"pending:{{{channel_id}}}"


def _format(value: PendingValue) -> str:
    return f"{value.available}:{value.version}:{value.accepted_ms}"


def _parse(sku: str, raw: bytes | str) -> PendingValue | None:
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        available, version, accepted_ms = (int(part) for part in text.split(":"))
    except ValueError:
        return None  # unreadable: the full sync of the start pushes the SKU anyway
    return PendingValue(sku, available, version, accepted_ms)


async def save_pending(
    redis: aioredis.Redis, channel_id: str, values: Iterable[PendingValue]
) -> int:
    """Replace the channel's kept values with ``values`` (none: the key is deleted); returns
    how many were written. Atomic: a reader sees the old set or the new one."""
    mapping = {value.sku: _format(value) for value in values}
    key = pending_key(channel_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        if mapping:
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
        await pipe.execute()
    return len(mapping)


async def take_pending(redis: aioredis.Redis, channel_id: str) -> list[PendingValue]:
    """The channel's kept values, removed from the store in the same step; values older than
    their SKU's current version are left out (the full sync brings the current ones)."""
    key = pending_key(channel_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(key)
        pipe.delete(key)
        raw, _ = await pipe.execute()
    values = [v for sku, text in raw.items() if (v := _parse(_text(sku), text)) is not None]
    if not values:
        return []
    # Not transactional: one SKU's hash per slot. A bundle has no hash of its own (None): kept.
    async with redis.pipeline(transaction=False) as pipe:
        for value in values:
            pipe.hget(keys.inventory(value.sku), "v")
        versions = await pipe.execute()
    return [
        value
        for value, current in zip(values, versions, strict=True)
        if current is None or int(current) <= value.version
    ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
