"""Drift detection: read back what each channel shows and compare it with what we last pushed.

A channel whose adapter can read quantities back (``adapters.base.ReadsBack``) is checked every
``[exceptions] drift_check_s`` seconds. A difference is only reported when it survives a second
look ``drift_confirm_s`` later with our pushed value unchanged: a push in flight or a sale on the
channel whose webhook is on its way settle by themselves and are not drift. What remains becomes
a ``drift`` exception (``ExceptionQueue.report_drift``), counted in ``invsync_drift_total``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

import msgspec
import structlog
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..adapters.base import ChannelAdapter, ChannelError, ReadsBack
from ..engine import keys
from ..engine.errors import InvalidRequest

__all__ = ["DriftFinding", "DriftReport", "check_channel", "drift_routes", "pushed_values"]

log = structlog.get_logger("invsync.drift")

#: How many SKUs one read-back call asks for (adapters split further to their API's limit).
CHUNK = 100

Report = Callable[[str, str, int, int], Awaitable[object]]


class DriftFinding(msgspec.Struct, frozen=True, kw_only=True):
    """One SKU whose channel quantity differs from what we pushed, after confirmation."""

    sku: str
    theirs: int
    ours: int
    exception: str | None = None


class DriftReport(msgspec.Struct, kw_only=True):
    """What one check of one channel found."""

    channel: str
    checked: int = 0
    not_listed: int = 0
    suspected: int = 0
    drift: list[DriftFinding] = []
    error: str | None = None


async def pushed_values(redis: Redis, channel: str, skus: Sequence[str] | None) -> dict[str, int]:
    """SKU -> the availability last pushed to ``channel`` (all SKUs when ``skus`` is None)."""
    key = keys.pushed(channel)
    if skus is None:
        raw = await redis.hgetall(key)
        items = list(raw.items())
    else:
        values = await redis.hmget(key, list(skus)) if skus else []
        items = [(sku, v) for sku, v in zip(skus, values, strict=True) if v is not None]
    out: dict[str, int] = {}
    for field, value in items:
        sku = field.decode() if isinstance(field, bytes) else str(field)
        parsed = keys.parse_pushed(value)
        if parsed is not None:  # unreadable: the channel actor rewrites it on its next push
            out[sku] = parsed[0]
    return out


async def _differences(
    adapter: ReadsBack, ours: Mapping[str, int], report: DriftReport
) -> dict[str, int]:
    """SKU -> their quantity, for SKUs whose read-back differs from ``ours``."""
    skus = sorted(ours)
    out: dict[str, int] = {}
    for start in range(0, len(skus), CHUNK):
        chunk = skus[start : start + CHUNK]
        theirs = await adapter.read_back(chunk)
        report.checked += len(chunk)
        for sku in chunk:
            if sku not in theirs:
                report.not_listed += 1
            elif theirs[sku] != ours[sku]:
                out[sku] = theirs[sku]
    return out


async def check_channel(
    channel: str,
    adapter: ChannelAdapter,
    redis: Redis,
    report_drift: Report,
    *,
    confirm_s: float,
    skus: Sequence[str] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> DriftReport:
    """Compare ``channel``'s read-back with our pushed values; report confirmed differences.

    A channel error (throttled, unreachable) ends the check with ``error`` set: drift is looked
    for again on the next round, never guessed.
    """
    report = DriftReport(channel=channel)
    if not isinstance(adapter, ReadsBack):
        report.error = "this channel's adapter cannot read quantities back"
        return report
    try:
        first = await pushed_values(redis, channel, skus)
        suspects = await _differences(adapter, first, report)
        report.suspected = len(suspects)
        if not suspects:
            return report
        await sleep(confirm_s)
        again = await pushed_values(redis, channel, sorted(suspects))
        steady = {s: v for s, v in again.items() if first.get(s) == v}  # no push since
        theirs = await adapter.read_back(sorted(steady)) if steady else {}
    except ChannelError as exc:
        report.error = f"{type(exc).__name__}: {exc.message}"
        log.warning("drift_check_failed", channel=channel, error=report.error)
        return report
    for sku in sorted(steady):
        if sku in theirs and theirs[sku] != steady[sku]:
            record = await report_drift(channel, sku, theirs[sku], steady[sku])
            record_id = getattr(record, "id", None)
            report.drift.append(
                DriftFinding(sku=sku, theirs=theirs[sku], ours=steady[sku], exception=record_id)
            )
    if report.drift:
        log.warning("drift_found", channel=channel, skus=len(report.drift))
    return report


# --- HTTP --------------------------------------------------------------------------------------


class _CheckRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    skus: list[str] | None = None
    confirm_s: float | None = None


Check = Callable[[str, "list[str] | None", "float | None"], Awaitable[DriftReport]]


def drift_routes(check: Check) -> list[Route]:
    """``POST /v1/channels/{channel}/drift-check`` (body optional: ``{"skus": [...],
    "confirm_s": N}``): read the channel back now; answers the ``DriftReport``."""
    from .http import JsonResponse, _guarded

    async def drift_check(request: Request) -> Response:
        body = await request.body()
        try:
            ask = msgspec.json.decode(body or b"{}", type=_CheckRequest)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise InvalidRequest(f"bad drift-check request: {exc}") from exc
        if ask.confirm_s is not None and not 0 <= ask.confirm_s <= 600:
            raise InvalidRequest("confirm_s must be seconds from 0 to 600")
        report = await check(request.path_params["channel"], ask.skus, ask.confirm_s)
        return JsonResponse(msgspec.to_builtins(report))

    return [
        Route("/v1/channels/{channel}/drift-check", _guarded(drift_check), methods=["POST"]),
    ]
