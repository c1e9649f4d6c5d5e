"""Channel health and the per-minute sync latency of the live console (daemon/channel_health.py).

The counters and the histogram are the real ones of the Prometheus registry (each test uses
channel names of its own, so what other tests pushed does not count); time is a ManualClock.
The routes are checked over real HTTP, behind the API's credential.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest

from invsync.core.clock import ManualClock
from invsync.core.config import Config, ServerConfig
from invsync.daemon.channel_health import (
    ChannelHealth,
    channel_health_routes,
    iso,
    quantile,
)
from invsync.daemon.context import DaemonContext
from invsync.daemon.http import build_app
from invsync.daemon.server import HttpServer
from invsync.metrics.definitions import CHANNEL_PUSHES, SYNC_LATENCY
from invsync.tests.receiver import until

#: 2027-01-15T08:00:00Z: a minute boundary.
START_MS = 1_800_000_000_000 - 1_800_000_000_000 % 60_000


def channel() -> str:
    return f"health-{uuid.uuid4().hex[:8]}"


def status_of(*channels: str) -> dict[str, dict[str, Any]]:
    return {
        ch: {"ready": True, "breaker": "closed", "pending": 3, "worker": "running", "restarts": 0}
        for ch in channels
    }


def test_quantile_is_prometheus_histogram_quantile() -> None:
    # 50 within 10 ms, 40 more within 100 ms, 10 more within 1 s.
    buckets = [(0.001, 0.0), (0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (math.inf, 100.0)]
    p50 = quantile(buckets, 0.5)
    p99 = quantile(buckets, 0.99)
    assert p50 is not None and p50 == pytest.approx((0.01, False))
    assert p99 is not None and p99 == pytest.approx((0.91, False))
    assert quantile([(0.1, 0.0), (math.inf, 0.0)], 0.5) is None
    # The rank in the +Inf bucket: the largest finite bound, said to be a lower bound.
    assert quantile([(0.1, 1.0), (math.inf, 10.0)], 0.99) == (0.1, True)


def test_iso_times_carry_their_zone() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000+00:00"
    assert iso(None) is None


def test_counts_pushes_and_notes_last_success_and_failure() -> None:
    ch = channel()
    clock = ManualClock(wall_ms=START_MS)
    health = ChannelHealth(lambda: status_of(ch), clock=clock)
    health.sample()
    report = health.report()["channels"][ch]
    assert report["last_success"] is None and report["last_failure"] is None
    assert report["pushes"] == {"ok": 0, "throttled": 0, "retryable": 0, "permanent": 0}
    assert report["breaker"] == "closed" and report["pending"] == 3  # the status, kept

    CHANNEL_PUSHES.labels(channel=ch, outcome="ok").inc(5)
    clock.advance(2)
    health.sample()
    CHANNEL_PUSHES.labels(channel=ch, outcome="throttled").inc(2)
    CHANNEL_PUSHES.labels(channel=ch, outcome="permanent").inc(1)
    clock.advance(3)
    report = health.report()["channels"][ch]
    assert report["pushes"] == {"ok": 5, "throttled": 2, "retryable": 0, "permanent": 1}
    assert report["failed"] == 3
    assert report["last_success_ms"] == START_MS + 2000
    assert report["last_success"] == iso(START_MS + 2000)
    assert report["last_success"].endswith("+00:00")
    assert report["last_failure_ms"] == START_MS + 5000

    # Nothing new: the times stay where they were.
    clock.advance(30)
    report = health.report()["channels"][ch]
    assert report["last_success_ms"] == START_MS + 2000
    assert report["last_failure_ms"] == START_MS + 5000


def test_latency_history_has_a_point_per_minute() -> None:
    ch = channel()
    clock = ManualClock(wall_ms=START_MS)
    health = ChannelHealth(lambda: status_of(ch), clock=clock, keep_minutes=3)
    observe = SYNC_LATENCY.labels(channel=ch).observe
    health.sample()

    # Minute 0: 50 syncs of 5 ms, 50 of 200 ms.
    for _ in range(50):
        observe(0.005)
        observe(0.2)
    clock.advance(30)
    health.sample()
    now = health.history()["channels"][ch]
    assert len(now) == 1 and now[0]["partial"] is True and now[0]["count"] == 100

    # Minute 1: 10 syncs of 2 s.
    clock.advance(40)  # 70 s: into minute 1
    for _ in range(10):
        observe(2.0)
    health.sample()
    points = health.history()["channels"][ch]
    assert [p["at_ms"] for p in points] == [START_MS, START_MS + 60_000]
    first, current = points
    assert first["partial"] is False and first["count"] == 100
    assert first["at"] == iso(START_MS)
    # p50: the rank 50 lies at the top of the (0.0025, 0.005] bucket.
    assert first["p50_s"] == pytest.approx(0.005)
    assert 0.1 < first["p99_s"] <= 0.25 and first["above"] is False
    assert current["partial"] is True and current["count"] == 10
    assert 1.0 < current["p50_s"] <= 2.5

    # A quiet minute is a point with no syncs; the ring keeps keep_minutes closed minutes.
    for _ in range(5):
        clock.advance(60)
        health.sample()
    points = health.history()["channels"][ch]
    assert len(points) == 3 + 1
    assert all(p["count"] == 0 and p["p50_s"] is None for p in points)
    assert [p["at_ms"] for p in points] == [START_MS + m * 60_000 for m in range(3, 7)]
    assert len(health.history(1)["channels"][ch]) == 2
    assert health.history(0)["channels"][ch] == [points[-1]]


def test_a_channel_removed_by_a_reload_leaves_the_report() -> None:
    kept, gone = channel(), channel()
    running = [kept, gone]
    clock = ManualClock(wall_ms=START_MS)
    health = ChannelHealth(lambda: status_of(*running), clock=clock)
    SYNC_LATENCY.labels(channel=gone).observe(0.01)
    SYNC_LATENCY.labels(channel=kept).observe(0.01)
    assert set(health.report()["channels"]) == {kept, gone}
    assert set(health.history()["channels"]) == {kept, gone}
    running.remove(gone)
    assert set(health.report()["channels"]) == {kept}
    assert set(health.history()["channels"]) == {kept}


async def test_run_samples_on_the_clock() -> None:
    ch = channel()
    clock = ManualClock(wall_ms=START_MS)
    health = ChannelHealth(lambda: status_of(ch), clock=clock, every_s=2)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(health.run())
        await until(lambda: clock.sleepers == 1)
        CHANNEL_PUSHES.labels(channel=ch, outcome="ok").inc()
        clock.advance(2)
        await until(lambda: clock.next_deadline == pytest.approx(4))  # sampled, parked again
        task.cancel()
    # The run's own sample saw the push (report() would sample again, at the same time).
    assert health._tracks[ch].last_ok_ms == START_MS + 2000


def test_refuses_a_useless_setting() -> None:
    with pytest.raises(ValueError, match="every_s"):
        ChannelHealth(dict, every_s=0)


TOKEN = "t0ken-of-the-health-test"


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[HttpServer, str]]:
    monkeypatch.setenv("INVSYNC_TEST_HEALTH_TOKEN", TOKEN)
    ch = channel()
    ctx = SimpleNamespace(config=Config(server=ServerConfig(token_env="INVSYNC_TEST_HEALTH_TOKEN")))
    health = ChannelHealth(lambda: status_of(ch), clock=ManualClock(wall_ms=START_MS))
    app = build_app(cast(DaemonContext, ctx), routes=channel_health_routes(lambda: health))
    async with HttpServer(app, "127.0.0.1", 0) as http:
        yield http, ch


async def test_routes_answer_behind_the_credential(server: tuple[HttpServer, str]) -> None:
    http, ch = server
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(base_url=http.url) as client:
        async with client.get("/v1/channels") as resp:
            assert resp.status == 401
        async with client.get("/v1/channels", headers=auth) as resp:
            assert resp.status == 200
            body = await resp.json()
            assert body["channels"][ch]["worker"] == "running"
            assert body["at"] == iso(START_MS) and body["sampled_every_s"] == 2.0
        async with client.get("/v1/channels/latency?minutes=5", headers=auth) as resp:
            assert resp.status == 200
            assert (await resp.json())["minute_s"] == 60
        for bad in ("abc", "-1", "61", "1.5"):
            async with client.get(f"/v1/channels/latency?minutes={bad}", headers=auth) as resp:
                assert resp.status == 400, bad
                error = (await resp.json())["error"]
                assert error["code"] == "INVALID_REQUEST" and "minutes" in error["message"]
