"""The Redis key layout. Every key of one SKU shares the hash tag ``{sku}``.

Layout (see docs/keys.md):

- ``inv:{SKU}``            hash  ``v`` (per-SKU version) and ``<location>:<state>`` counters
- ``hist:{SKU}``           list  operator stock movements (count/adjust), newest first, capped
- ``evt:{SKU}:<event id>`` string  an applied stock event id, expires after the idempotency TTL
- ``ord:{<channel>/<order id>}``        hash  an order record (lines, locations, state)
- ``evt:{<channel>/<order id>}:<id>``   string  an applied order event id
- ``hold:{<hold id>}``                  hash  a hold (an order record with an expiry)
- ``evt:{hold/<hold id>}:<id>``         string  an applied hold event id
- ``holds:expiry``                      zset  hold key -> expiry time (ms), swept by the reaper
- ``holdrej:{hold/<hold id>}``          string  why a hold was refused (JSON)

Hash tags keep every key of one SKU (and of one order) in one Redis Cluster slot.
"""

from __future__ import annotations

from ..core.ids import check_event_id, check_id, check_sku

__all__ = ["check_event_id", "check_id", "check_sku"]  # re-exported: key parts are checked ids

#: States tracked per (SKU, location); the hash field is ``<location>:<state>``.
STATES = ("on_hand", "reserved", "safety_stock", "damaged", "incoming")


HOLDS_EXPIRY = "holds:expiry"

#: Largest quantity (or absolute delta) a script accepts: Lua's cjson writes numbers with 14
#: significant digits, so anything larger would not survive a round trip exactly.
MAX_QTY = 10**14 - 1
INVENTORY_PATTERN = "inv:{*}"


def inventory(sku: str) -> str:
    """The hash of every counter of ``sku`` at every location, plus its version ``v``."""
    return f"inv:{{{sku}}}"


def history(sku: str) -> str:
    """The capped list of operator stock movements of ``sku`` (engine/history.py)."""
    return f"hist:{{{sku}}}"


def sku_event(sku: str, event_id: str) -> str:
    """The idempotency marker of a stock event on ``sku``."""
    return f"evt:{{{sku}}}:{event_id}"


def order_tag(channel: str, order_id: str) -> str:
    """The hash tag shared by an order's record and its event markers."""
    return f"{channel}/{order_id}"


def order(channel: str, order_id: str) -> str:
    """The record of an order placed on ``channel``."""
    return f"ord:{{{order_tag(channel, order_id)}}}"


def order_event(channel: str, order_id: str, event_id: str) -> str:
    """The idempotency marker of an event on an order."""
    return f"evt:{{{order_tag(channel, order_id)}}}:{event_id}"


def hold(hold_id: str) -> str:
    """The record of a hold (a reservation with an expiry)."""
    return f"hold:{{hold/{hold_id}}}"


def hold_event(hold_id: str, event_id: str) -> str:
    """The idempotency marker of an event on a hold."""
    return f"evt:{{hold/{hold_id}}}:{event_id}"


def hold_refusal(hold_id: str) -> str:
    """Why a hold could not be placed (kept so ``GET /v1/holds/{id}`` can say so)."""
    return f"holdrej:{{hold/{hold_id}}}"


def sku_of_inventory_key(key: bytes | str) -> str:
    """Inverse of :func:`inventory`: the SKU inside ``inv:{SKU}``."""
    text = key.decode() if isinstance(key, bytes) else key
    return text[len("inv:{") : -1]


def tag_of(key: bytes | str) -> str:
    """The hash tag inside a key: ``ord:{shopify/1001}`` -> ``shopify/1001``."""
    text = key.decode() if isinstance(key, bytes) else key
    return text[text.index("{") + 1 : text.index("}")]


def rejection(channel: str, order_id: str) -> str:
    """The record of an order that could not be reserved anywhere (oversold)."""
    return f"rej:{{{order_tag(channel, order_id)}}}"


def incoming_eta(sku: str) -> str:
    """Hash of when each location's incoming units of ``sku`` are due: location -> epoch ms."""
    return f"eta:{{{sku}}}"


def pushed(channel: str) -> str:
    """Hash of what ``channel`` was last sent: sku -> ``<available>:<version>:<ms>``
    (``format_pushed``/``parse_pushed``; older entries lack ``:<ms>``)."""
    return f"pushed:{{{channel}}}"


def format_pushed(available: int, version: int, at_ms: int) -> str:
    """A ``pushed`` hash value: what was sent, its SKU version, when the channel acknowledged."""
    return f"{available}:{version}:{at_ms}"


def parse_pushed(raw: object) -> tuple[int, int, int | None] | None:
    """``(available, version, at_ms or None)`` of a ``pushed`` hash value; None if unreadable."""
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    parts = text.split(":")
    try:
        if len(parts) == 2:
            return int(parts[0]), int(parts[1]), None
        if len(parts) == 3:
            return int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        pass
    return None


def routing(channel: str, order_id: str) -> str:
    """The router's explanation of an order's locations (candidates, scores, why)."""
    return f"route:{{{order_tag(channel, order_id)}}}"
