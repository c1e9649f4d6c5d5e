"""Drift detection: read back what each channel shows and compare it with what we last pushed.

A channel whose adapter can read quantities back (``adapters.base.ReadsBack``) is checked every
``[exceptions] drift_check_s`` seconds. A difference is only reported when it survives a second
look ``drift_confirm_s`` later with our pushed value unchanged: a push in flight or a sale on the
channel whose webhook is on its way settle by themselves and are not drift. What remains becomes
a ``drift`` exception (``ExceptionQueue.report_drift``), counted in ``invsync_drift_total``.

``DriftWatch`` runs the checks: on demand (``POST /v1/channels/{channel}/drift-check``) and every
``drift_check_s`` for every running channel that can read back, all on the injectable clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

import msgspec
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..adapters.base import ChannelAdapter, ChannelError, ReadsBack, Throttled
from ..core.clock import Clock, SystemClock
from ..core.config import Config
from ..core.errors import InvalidRequest, InvsyncError
from ..engine import keys

__all__ = [
    "DriftFinding",
    "DriftReport",
    "DriftWatch",
    "check_channel",
    "drift_routes",
    "pushed_values",
]

log = structlog.get_logger("invsync.drift")

#: How many SKUs one read-back call asks for (adapters split further to their API's limit).
CHUNK = 100

#: Opens a drift incident: (channel, sku, theirs, ours) -> the record.
Report = Callable[[str, str, int, int], Awaitable[object]]
#: How long the watcher waits before looking at ``drift_check_s`` again while it is 0 (off).
IDLE_RECHECK_S = 5.0

_SYSTEM_CLOCK = SystemClock()


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


async def pushed_values(
    redis: Redis, channel: str, skus: Sequence[str] | None, *, settled_before_ms: int | None = None
) -> dict[str, int]:
    """SKU -> the availability last pushed to ``channel`` (all SKUs when ``skus`` is None).

    With ``settled_before_ms``, values acknowledged at or after that time are left out (the
    channel may not show them yet); values without a time (older format) are kept.
    """
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
        if parsed is None:  # unreadable: the channel actor rewrites it on its next push
            continue
        available, _, at_ms = parsed
        if settled_before_ms is not None and at_ms is not None and at_ms >= settled_before_ms:
            continue
        out[sku] = available
    return out


async def _read_back(
    adapter: ReadsBack, skus: list[str], deadline: float, clock: Clock
) -> dict[str, int]:
    """One read-back, waiting out the channel's throttle answers until ``deadline`` (clock)."""
    while True:
        try:
            return await adapter.read_back(skus)
        except Throttled as exc:
            wait = exc.retry_after if exc.retry_after is not None else 1.0
            if clock.now() + wait > deadline:
                raise
            await clock.sleep(wait)


async def _differences(
    adapter: ReadsBack,
    ours: Mapping[str, int],
    report: DriftReport,
    deadline: float,
    clock: Clock,
) -> dict[str, int]:
    """SKU -> their quantity, for SKUs whose read-back differs from ``ours``."""
    skus = sorted(ours)
    out: dict[str, int] = {}
    for start in range(0, len(skus), CHUNK):
        chunk = skus[start : start + CHUNK]
        theirs = await _read_back(adapter, chunk, deadline, clock)
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
    settle_s: float = 0.0,
    skus: Sequence[str] | None = None,
    within_s: float = 3600.0,
    clock: Clock = _SYSTEM_CLOCK,
) -> DriftReport:
    """Compare ``channel``'s read-back with our pushed values; report confirmed differences.

    Values pushed less than ``settle_s`` ago are not compared: marketplaces apply pushes and
    report their own sales late (Amazon's notifications travel through SQS). Throttle answers
    are waited out for up to ``within_s``. Any failure (the channel, Redis, the adapter) ends
    the check with ``error`` set: drift is looked for again on the next round, never guessed.
    Every wait (the second look, throttles) and the settle time are on ``clock``.
    """
    report = DriftReport(channel=channel)
    if not isinstance(adapter, ReadsBack):
        report.error = "this channel's adapter cannot read quantities back"
        return report
    deadline = clock.now() + within_s
    settled = clock.wall_ms() - int(settle_s * 1000)
    try:
        first = await pushed_values(redis, channel, skus, settled_before_ms=settled)
        suspects = await _differences(adapter, first, report, deadline, clock)
        report.suspected = len(suspects)
        if not suspects:
            return report
        await clock.sleep(confirm_s)
        again = await pushed_values(redis, channel, sorted(suspects))
        steady = {s: v for s, v in again.items() if first.get(s) == v}  # no push since
        theirs = await _read_back(adapter, sorted(steady), deadline, clock) if steady else {}
        for sku in sorted(steady):
            if sku in theirs and theirs[sku] != steady[sku]:
                record = await report_drift(channel, sku, theirs[sku], steady[sku])
                record_id = getattr(record, "id", None)
                report.drift.append(
                    DriftFinding(sku=sku, theirs=theirs[sku], ours=steady[sku], exception=record_id)
                )
    except ChannelError as exc:
        report.error = f"{type(exc).__name__}: {exc.message}"
    except (RedisError, InvsyncError) as exc:
        report.error = f"store unavailable: {exc}"
    except Exception as exc:  # an adapter bug must not stop the daemon's drift watcher
        log.exception("drift_check_crashed", channel=channel)
        report.error = f"{type(exc).__name__}: {exc}"
    if report.error is not None:
        log.warning("drift_check_failed", channel=channel, error=report.error)
    if report.drift:
        log.warning("drift_found", channel=channel, skus=len(report.drift))
    return report


# --- the watcher -------------------------------------------------------------------------------


class DriftWatch:
    """Drift checks of the running channels: ``check`` one now, or ``run`` them every
    ``[exceptions] drift_check_s`` (0 turns the rounds off; the setting is read each round, so a
    reload changes it). ``adapters()`` gives the channels running and not being stopped."""

    def __init__(
        self,
        *,
        config: Callable[[], Config],
        adapters: Callable[[], Mapping[str, ChannelAdapter]],
        redis: Redis,
        report: Report,
        clock: Clock,
    ) -> None:
        self._config = config
        self._adapters = adapters
        self._redis = redis
        self._report = report
        self._clock = clock

    async def check(
        self,
        channel_id: str,
        skus: list[str] | None = None,
        confirm_s: float | None = None,
        settle_s: float | None = None,
    ) -> DriftReport:
        """Read back ``channel_id`` now and report confirmed drift (``POST .../drift-check``);
        UnknownChannel (404) when it does not run."""
        adapter = self._adapters().get(channel_id)
        if adapter is None:
            from .http import UnknownChannel

            raise UnknownChannel(f"no running channel {channel_id!r}")
        settings = self._config().exceptions
        return await check_channel(
            channel_id,
            adapter,
            self._redis,
            self._report,
            confirm_s=settings.drift_confirm_s if confirm_s is None else confirm_s,
            settle_s=settings.drift_settle_s if settle_s is None else settle_s,
            skus=skus,
            clock=self._clock,
        )

    async def run(self) -> None:
        """Every ``drift_check_s``, every channel that can read back is checked, concurrently
        and each within the round: a slow or failing channel holds up no other."""
        while True:
            every = self._config().exceptions.drift_check_s
            await self._clock.sleep(every if every > 0 else IDLE_RECHECK_S)
            if every <= 0:
                continue
            channels = [ch for ch, a in self._adapters().items() if isinstance(a, ReadsBack)]
            async with asyncio.TaskGroup() as round_:
                for channel_id in channels:
                    round_.create_task(self._round(channel_id, every))

    async def _round(self, channel_id: str, within_s: float) -> None:
        try:
            async with asyncio.timeout(within_s):
                await self.check(channel_id)
        except TimeoutError:
            log.warning(
                "drift_check_failed",
                channel=channel_id,
                error=f"not finished within {within_s:g} s (drift_check_s)",
            )
        except InvsyncError as exc:  # the channel went away meanwhile (UnknownChannel)
            log.warning("drift_check_failed", channel=channel_id, error=exc.message)


# --- HTTP --------------------------------------------------------------------------------------


class _CheckRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    skus: list[str] | None = None
    confirm_s: float | None = None
    settle_s: float | None = None


Check = Callable[[str, "list[str] | None", "float | None", "float | None"], Awaitable[DriftReport]]


def drift_routes(check: Check) -> list[Route]:
    """``POST /v1/channels/{channel}/drift-check`` (body optional: ``{"skus": [...],
    "confirm_s": N, "settle_s": N}``): read the channel back now; answers the ``DriftReport``."""
    from .http import MAX_SMALL_BODY, JsonResponse, _guarded, read_body

    async def drift_check(request: Request) -> Response:
        body = await read_body(request, MAX_SMALL_BODY)  # 413 past it, never read whole
        try:
            ask = msgspec.json.decode(body or b"{}", type=_CheckRequest)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise InvalidRequest(f"bad drift-check request: {exc}") from exc
        except RecursionError:
            raise InvalidRequest("bad drift-check request: JSON nested too deeply") from None
        if ask.confirm_s is not None and not 0 <= ask.confirm_s <= 600:
            raise InvalidRequest("confirm_s must be seconds from 0 to 600")
        if ask.settle_s is not None and not 0 <= ask.settle_s <= 86_400:
            raise InvalidRequest("settle_s must be seconds from 0 to 86400")
        report = await check(request.path_params["channel"], ask.skus, ask.confirm_s, ask.settle_s)
        return JsonResponse(msgspec.to_builtins(report))

    return [
        Route("/v1/channels/{channel}/drift-check", _guarded(drift_check), methods=["POST"]),
    ]
