"""The incident queue's pure rules: when a backorder can arrive, how many units an order lacks,
which channel outages became incidents, which lines a cancellation names. No I/O here; the
queue and its action runner call these with what they read from the store."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from .records import ExceptionRecord

__all__ = [
    "DAY_MS",
    "OutageTracker",
    "backorder_eta",
    "cancel_lines",
    "date_text",
    "shortfall",
]

DAY_MS = 86_400_000


def backorder_eta(
    incoming: Mapping[str, int],
    short: Mapping[str, int],
    lead_days: int,
    now_ms: int,
    due: Mapping[str, int] | None = None,
) -> tuple[int | None, str | None]:
    """When the missing units are expected: (ms, None), or (None, why not). ``incoming`` and
    ``short`` are SKU -> units (incoming over the order's locations; units missing); ``due`` is
    SKU -> the date its incoming units are due where a count said so (else ``lead_days``).
    The last SKU to arrive dates the whole order."""
    lacking = {sku: n for sku, n in short.items() if incoming.get(sku, 0) < n}
    if not short:
        return None, "nothing is short"
    if lacking:
        detail = ", ".join(
            f"{s}: {incoming.get(s, 0)} incoming, {n} short" for s, n in lacking.items()
        )
        return None, f"no incoming units cover the shortage ({detail})"
    fallback = now_ms + lead_days * DAY_MS
    return max((due or {}).get(sku, fallback) for sku in short), None


def shortfall(
    shortages: Sequence[Mapping[str, Any]], lines: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """SKU -> units missing: from the engine's shortages, else the order's whole lines."""
    out: dict[str, int] = {}
    for s in shortages:
        sku = str(s.get("sku"))
        out[sku] = out.get(sku, 0) + max(0, int(s.get("requested", 0)) - int(s.get("free", 0)))
    if not any(out.values()):
        out = {}
        for line in lines:
            out[str(line["sku"])] = out.get(str(line["sku"]), 0) + int(line["qty"])
    return out


def cancel_lines(record: ExceptionRecord, order: Any) -> list[tuple[str, int]] | None:
    """The lines to cancel on the channel: the record's order lines (a rejected order was never
    reserved, so its event's lines), else the stored order's, None (the whole order) when neither
    is known."""
    raw = record.details.get("lines")
    if isinstance(raw, list) and raw:
        return [(str(x["sku"]), int(x["qty"])) for x in raw if isinstance(x, dict)]
    if order is not None and order.lines:
        return [(x.sku, x.qty) for x in order.lines]
    return None


def date_text(ms: int, *, seconds: bool = False) -> str:
    """``ms`` since the epoch as a UTC date (``2027-01-15``), or date and time with ``seconds``."""
    fmt = "%Y-%m-%dT%H:%M:%SZ" if seconds else "%Y-%m-%d"
    return time.strftime(fmt, time.gmtime(ms / 1000))


class OutageTracker:
    """Channel id -> when its breaker left ``closed``; says which outages became exceptions.

    ``changed`` is called from the breaker's on_change (sync); ``due``/``recovered`` are read by
    the queue's periodic tick. No I/O here.
    """

    def __init__(self) -> None:
        self.since: dict[str, float] = {}
        self.recovered: set[str] = set()

    def changed(self, channel: str, closed: bool, now: float) -> None:
        """The breaker of ``channel`` changed state."""
        if closed:
            if self.since.pop(channel, None) is not None:
                self.recovered.add(channel)
        else:
            self.since.setdefault(channel, now)
            self.recovered.discard(channel)

    def due(self, now: float, after_s: float) -> dict[str, float]:
        """Channels unreachable for at least ``after_s``: channel -> outage start."""
        return {ch: t for ch, t in self.since.items() if now - t >= after_s}

    def take_recovered(self) -> set[str]:
        """Channels whose breaker closed since the last call."""
        out, self.recovered = self.recovered, set()
        return out
