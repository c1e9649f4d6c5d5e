"""Channel health and sync latency over time, as the live console shows them.

``ChannelHealth`` samples the daemon's own metrics (``invsync_channel_pushes_total`` and the
``invsync_sync_latency_seconds`` histogram, read from the Prometheus registry: the numbers an
operator's Grafana shows, never a second count kept beside them) every ``SAMPLE_EVERY_S``, and
keeps per channel:

- the pushes by outcome since start, and when an acknowledged (``ok``) or a failed push
  (``throttled``, ``retryable``, ``permanent``) was last seen: to within one sampling period,
  since the counters carry no time;
- per minute, the number of acknowledged syncs and their p50/p99 (estimated from the histogram's
  buckets as Prometheus' ``histogram_quantile`` does), for the last ``HISTORY_MINUTES`` minutes
  in a ring buffer, plus the minute in progress.

``channel_health_routes`` serves it: ``GET /v1/channels`` (the channel manager's status, the
breaker and the queue of pending SKUs, with the counters above) and ``GET /v1/channels/latency``
(the history). Both behind the API's credential (docs/api.md).
"""

from __future__ import annotations

import datetime
import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..core.clock import Clock, SystemClock
from ..core.errors import InvalidRequest
from ..metrics.definitions import CHANNEL_PUSHES, PUSH_OUTCOMES, SYNC_LATENCY

__all__ = [
    "HISTORY_MINUTES",
    "SAMPLE_EVERY_S",
    "ChannelHealth",
    "channel_health_routes",
    "iso",
    "quantile",
]

log = structlog.get_logger("invsync.channel_health")

#: How often the counters and the histogram are read (also how precise "last success" is).
SAMPLE_EVERY_S = 2.0
#: Minutes of latency history kept per channel (the minute in progress comes on top).
HISTORY_MINUTES = 60
MINUTE_MS = 60_000
#: The outcomes of ``invsync_channel_pushes_total`` that are a failed push.
FAILED = ("throttled", "retryable", "permanent")

#: Cumulative histogram buckets, ``(le, count)`` sorted by ``le`` (the last one is +Inf).
Buckets = list[tuple[float, float]]
#: Channel id -> what ``ChannelManager.status()`` says of it.
Status = Callable[[], Mapping[str, Mapping[str, Any]]]


def iso(ms: int | None) -> str | None:
    """Milliseconds since the epoch as ISO-8601 UTC with its zone (``+00:00``), or None."""
    if ms is None:
        return None
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds")


def quantile(buckets: Buckets, q: float) -> tuple[float, bool] | None:
    """Prometheus' ``histogram_quantile`` on cumulative buckets: linear within the bucket that
    holds the rank. ``(seconds, above)``, ``above`` when the rank lies past the largest finite
    bound (the value is then that bound); None without observations."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower = below = 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower, True
            return lower + (le - lower) * (rank - below) / (count - below), False
        lower, below = le, count
    return lower, True


def _minus(now: Buckets, base: Buckets | None) -> Buckets:
    """The observations between two readings (all of ``now`` without a usable base)."""
    if base is None or len(base) != len(now):
        return now
    out = [(le, count - base[i][1]) for i, (le, count) in enumerate(now)]
    return now if any(count < 0 for _, count in out) else out  # a reset: start over


def _point(start_ms: int, buckets: Buckets, *, partial: bool) -> dict[str, Any]:
    p50 = quantile(buckets, 0.5)
    p99 = quantile(buckets, 0.99)
    return {
        "at": iso(start_ms),
        "at_ms": start_ms,
        "count": int(buckets[-1][1]) if buckets else 0,
        "p50_s": None if p50 is None else round(p50[0], 6),
        "p99_s": None if p99 is None else round(p99[0], 6),
        "above": p99 is not None and p99[1],
        "partial": partial,
    }


class _Track:
    """What is kept of one channel between samples."""

    __slots__ = ("last_buckets", "last_failure_ms", "last_ok_ms", "minute", "minute_base",
                 "points", "pushes")  # fmt: skip

    def __init__(self, keep: int) -> None:
        self.pushes: dict[str, float] | None = None  # at the last sample
        self.last_ok_ms: int | None = None
        self.last_failure_ms: int | None = None
        self.minute: int | None = None  # start (ms) of the minute in progress
        self.minute_base: Buckets | None = None  # the histogram when that minute began
        self.last_buckets: Buckets | None = None
        self.points: deque[dict[str, Any]] = deque(maxlen=keep)


def _read_pushes() -> dict[str, dict[str, float]]:
    """Channel -> outcome -> pushes since the process started."""
    out: dict[str, dict[str, float]] = {}
    for family in CHANNEL_PUSHES.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                channel = sample.labels["channel"]
                out.setdefault(channel, {})[sample.labels["outcome"]] = sample.value
    return out


def _read_latency() -> dict[str, Buckets]:
    """Channel -> cumulative buckets of the sync latency histogram."""
    out: dict[str, Buckets] = {}
    for family in SYNC_LATENCY.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])  # "+Inf" parses as inf
                out.setdefault(sample.labels["channel"], []).append((le, sample.value))
    for buckets in out.values():
        buckets.sort()
    return out


class ChannelHealth:
    """Samples the push counters and the latency histogram of the channels ``status`` names;
    ``report()`` and ``history()`` are what ``GET /v1/channels`` and ``.../latency`` answer.

    ``run()`` samples every ``every_s`` until cancelled (a daemon chore); ``sample()`` is one
    round, also taken by each report so that it is current.
    """

    def __init__(
        self,
        status: Status,
        *,
        clock: Clock | None = None,
        every_s: float = SAMPLE_EVERY_S,
        keep_minutes: int = HISTORY_MINUTES,
    ) -> None:
        if every_s <= 0 or keep_minutes < 1:
            raise ValueError("every_s must be > 0 and keep_minutes >= 1")
        self._status = status
        self._clock: Clock = clock or SystemClock()
        self.every_s = every_s
        self.keep_minutes = keep_minutes
        self._tracks: dict[str, _Track] = {}

    async def run(self) -> None:
        """Sample every ``every_s`` seconds until cancelled."""
        while True:
            self.sample()
            await self._clock.sleep(self.every_s)

    def sample(self) -> None:
        """Read the counters and the histogram once and update every channel's track."""
        now_ms = self._clock.wall_ms()
        channels = set(self._status())
        for gone in set(self._tracks) - channels:  # removed by a reload
            del self._tracks[gone]
        pushes = _read_pushes()
        latency = _read_latency()
        for channel in channels:
            track = self._tracks.get(channel)
            if track is None:
                track = self._tracks[channel] = _Track(self.keep_minutes)
            self._count(track, pushes.get(channel, {}), now_ms)
            buckets = latency.get(channel)
            if buckets is not None:
                self._roll(track, buckets, now_ms)

    @staticmethod
    def _count(track: _Track, counts: dict[str, float], now_ms: int) -> None:
        before = track.pushes
        if before is not None:
            if counts.get("ok", 0.0) > before.get("ok", 0.0):
                track.last_ok_ms = now_ms
            if any(counts.get(o, 0.0) > before.get(o, 0.0) for o in FAILED):
                track.last_failure_ms = now_ms
        track.pushes = dict(counts)

    @staticmethod
    def _roll(track: _Track, buckets: Buckets, now_ms: int) -> None:
        minute = now_ms - now_ms % MINUTE_MS
        if track.minute is None:
            track.minute, track.minute_base = minute, track.last_buckets or buckets
        elif minute > track.minute:
            # The minute that ended holds what the samples taken within it saw; what came
            # after its last sample counts to the new minute.
            end = track.last_buckets or buckets
            track.points.append(_point(track.minute, _minus(end, track.minute_base), partial=False))
            track.minute, track.minute_base = minute, end
        track.last_buckets = buckets

    def report(self) -> dict[str, Any]:
        """``GET /v1/channels``: per channel its status, pushes by outcome, last success and
        last failure (ISO and ms), sampled now."""
        self.sample()
        channels: dict[str, Any] = {}
        for channel, status in sorted(self._status().items()):
            track = self._tracks.get(channel)
            counts = (track.pushes if track else None) or {}
            entry = dict(status)
            entry["pushes"] = {o: int(counts.get(o, 0.0)) for o in PUSH_OUTCOMES}
            entry["failed"] = sum(entry["pushes"][o] for o in FAILED)
            ok_ms = track.last_ok_ms if track else None
            failure_ms = track.last_failure_ms if track else None
            entry["last_success"], entry["last_success_ms"] = iso(ok_ms), ok_ms
            entry["last_failure"], entry["last_failure_ms"] = iso(failure_ms), failure_ms
            channels[channel] = entry
        return {
            "at": iso(self._clock.wall_ms()),
            "sampled_every_s": self.every_s,
            "channels": channels,
        }

    def history(self, minutes: int | None = None) -> dict[str, Any]:
        """``GET /v1/channels/latency``: per channel, a point per minute, oldest first, the
        minute in progress last (``"partial": true``); at most ``minutes`` closed ones."""
        self.sample()
        keep = self.keep_minutes if minutes is None else minutes
        channels: dict[str, list[dict[str, Any]]] = {}
        for channel, track in sorted(self._tracks.items()):
            points = list(track.points)[-keep:] if keep > 0 else []
            if track.minute is not None and track.last_buckets is not None:
                now = _minus(track.last_buckets, track.minute_base)
                points.append(_point(track.minute, now, partial=True))
            channels[channel] = points
        return {"minute_s": MINUTE_MS // 1000, "channels": channels}


def channel_health_routes(health: Callable[[], ChannelHealth]) -> list[Route]:
    """``GET /v1/channels`` and ``GET /v1/channels/latency[?minutes=N]``, for
    ``build_app(ctx, routes=...)`` (behind its credential check and JSON error mapping)."""
    from .http import JsonResponse, _guarded

    async def channels(request: Request) -> Response:
        return JsonResponse(health().report())

    async def latency(request: Request) -> Response:
        raw = request.query_params.get("minutes")
        keep = health().keep_minutes
        minutes: int | None = None
        if raw is not None:
            try:
                minutes = int(raw)
            except ValueError:
                minutes = -1
            if not 0 <= minutes <= keep:
                raise InvalidRequest(f"minutes must be a whole number 0 to {keep}, got {raw!r}")
        return JsonResponse(health().history(minutes))

    return [
        Route("/v1/channels", _guarded(channels), methods=["GET"]),
        Route("/v1/channels/latency", _guarded(latency), methods=["GET"]),
    ]
