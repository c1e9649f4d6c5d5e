"""A SKU's operator movements (``hist:{SKU}``): what one entry holds and how it reads back.

The stock scripts (``record_history`` in engine/lua/_lib.lua) keep them in a small capped LIST,
newest first, each entry a compact JSON array ``[ts, v, event, op, location, state, from, to,
reason]``. One entry costs about 160 bytes of store (a listpack), where the stream used before
cost 4.3 KB per SKU even with a single entry (docs/keys.md).
"""

from __future__ import annotations

import msgspec

__all__ = ["CAP", "FIELDS", "decode"]

#: Entries kept per SKU (the scripts trim the list to this length).
CAP = 100

#: The fields of one movement, as ``Engine.history`` returns them (after ``id``).
FIELDS = ("event", "op", "location", "state", "from", "to", "reason", "ts")

_decoder = msgspec.json.Decoder(tuple[int, int, str, str, str, str, int, int, str])


def decode(raw: bytes | str) -> dict[str, str]:
    """One list entry as ``{"id": "<ts>-<v>", "event", ..., "ts"}`` (all strings, the shape the
    stream entries had, so readers of both agree)."""
    ts, v, event, op, location, state, before, after, reason = _decoder.decode(raw)
    return {
        "id": f"{ts}-{v}",
        "event": event,
        "op": op,
        "location": location,
        "state": state,
        "from": str(before),
        "to": str(after),
        "reason": reason,
        "ts": str(ts),
    }
