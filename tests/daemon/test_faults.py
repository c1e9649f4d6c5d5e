"""A failing channel, end to end: ``invsync run`` pushing to a real receiver that throttles,
fails, hangs and recovers, beside a healthy channel that must not wait for it."""

from __future__ import annotations

import time
from pathlib import Path

from tests.daemon.helpers import (
    LOCATIONS,
    Api,
    Daemon,
    counted,
    kill_valkey,
    metric,
    poll,
    webhook_channel,
    write_config,
)
from tests.receiver import Answer, Receiver

ENV = {"FAULTS_FLAKY_SECRET": "flaky-s3cret", "FAULTS_HEALTHY_SECRET": "healthy-s3cret"}
#: The flaky channel's adapter timeout (``options.timeout_s``, read by adapters/webhook.py).
TIMEOUT_S = 0.5
RETRY_AFTER_S = 1.0
#: How soon the healthy channel must show a change while the other one is failing.
HEALTHY_WITHIN_S = 2.0


async def test_a_failing_channel_backs_off_trips_recovers_and_never_delays_the_others(
    tmp_path: Path,
) -> None:
    async with (
        Receiver(ENV["FAULTS_FLAKY_SECRET"]) as flaky,
        Receiver(ENV["FAULTS_HEALTHY_SECRET"]) as healthy,
    ):
        config = write_config(
            tmp_path,
            LOCATIONS
            + webhook_channel(
                "flaky",
                flaky.url,
                "FAULTS_FLAKY_SECRET",
                rate_limit_per_s=20,
                options={"timeout_s": TIMEOUT_S},
            )
            + webhook_channel("healthy", healthy.url, "FAULTS_HEALTHY_SECRET", rate_limit_per_s=20),
        )
        # Two throttles, two server errors, then hangs until the test heals it. The breaker
        # opens after five consecutive failures (the two 500s and three hangs).
        throttled = Answer(status=429, headers={"Retry-After": f"{RETRY_AFTER_S:g}"})
        flaky.answer(throttled, throttled, Answer(status=500), Answer(status=500))
        flaky.default = Answer(hang=True)

        daemon = Daemon(config, env=ENV).start()
        try:
            await daemon.await_event("started")
            async with Api(config) as api:

                async def change(n: int, on_hand: int) -> float:
                    """Count SKU A; the healthy channel shows it within HEALTHY_WITHIN_S."""
                    changed = time.monotonic()
                    await api.post_events(counted(f"c-{n}", "A", "wh-east", on_hand))
                    await poll(
                        lambda: healthy.shows().get("A") == on_hand,
                        HEALTHY_WITHIN_S,
                        f"the healthy channel to show A={on_hand} (flaky has had "
                        f"{len(flaky.requests)} requests)",
                        0.01,
                    )
                    return time.monotonic() - changed

                lags = [await change(1, 10)]  # flaky: throttled
                await poll(lambda: len(flaky.requests) >= 3, 10, "the first 500", 0.01)
                lags.append(await change(2, 7))  # flaky: failing
                await poll(lambda: len(flaky.requests) >= 5, 20, "the first hang", 0.01)
                lags.append(await change(3, 5))  # flaky: hanging

                async def breaker_open() -> bool:
                    report = await api.readyz()
                    return bool(
                        report["checks"]["channels"]["channels"]["flaky"]["breaker"] == "open"
                    )

                began = time.monotonic()
                await poll(breaker_open, 60, "the flaky channel's breaker to open", 0.02)
                opened_after = time.monotonic() - began
                assert metric(await api.metrics(), "invsync_channel_breaker_open", channel="flaky")

                healed = time.monotonic()
                flaky.default = Answer()
                await poll(lambda: flaky.shows().get("A") == 5, 60, "flaky to converge", 0.02)
                recovered_after = time.monotonic() - healed
                view = await api.stock("A")
                assert view is not None
                assert view["channels"]["flaky"]["pushed"] == 5
                assert view["channels"]["healthy"]["pushed"] == 5
                text = await api.metrics()
            print(
                f"\nhealthy lags {[round(x, 2) for x in lags]} s; breaker open "
                f"{opened_after:.1f} s after the first hang; flaky converged "
                f"{recovered_after:.1f} s after healing; {len(flaky.requests)} requests"
            )

            requests = flaky.requests
            statuses = [r.status for r in requests]
            assert statuses[:4] == [429, 429, 500, 500]
            assert statuses[-1] == 200
            # No request while Retry-After runs.
            for before, after in ((requests[0], requests[1]), (requests[1], requests[2])):
                assert after.at - before.at >= RETRY_AFTER_S - 0.05
            # A hang is given up at the adapter's timeout (the receiver sees the disconnect).
            hangs = [r for r in requests if r.status is None]
            assert len(hangs) >= 3
            for hang in hangs:
                assert hang.ended is not None
                assert TIMEOUT_S - 0.05 <= hang.ended - hang.at < TIMEOUT_S + 1.5
            # Once open, the breaker lets nothing through for its cool-down (1 s at first).
            fifth = requests[6]
            assert fifth.status is None and fifth.ended is not None
            assert requests[7].at - fifth.ended >= 1.0 - 0.05
            assert metric(text, "invsync_channel_pushes_total", channel="flaky", outcome="ok") >= 1
            assert metric(
                text, "invsync_channel_pushes_total", channel="flaky", outcome="throttled"
            )
            assert metric(
                text, "invsync_channel_pushes_total", channel="flaky", outcome="retryable"
            )
            assert metric(text, "invsync_sync_latency_seconds_count", channel="flaky") >= 1
            assert await daemon.astop() == 0
        finally:
            daemon.kill()
            kill_valkey(config)


async def test_a_sku_the_channel_refuses_for_good_becomes_a_push_refused_exception(
    tmp_path: Path,
) -> None:
    async with Receiver(ENV["FAULTS_FLAKY_SECRET"]) as portal:
        config = write_config(
            tmp_path, LOCATIONS + webhook_channel("portal", portal.url, "FAULTS_FLAKY_SECRET")
        )
        refusal = {"sku": "GONE", "status": "error", "retryable": False, "error": "no such sku"}
        # Refuse GONE for good, whatever else the batch carries; take the rest.
        portal.default = Answer(
            body=lambda payload: {
                "results": [refusal for u in payload["updates"] if u["sku"] == "GONE"]
            }
        )
        daemon = Daemon(config, env=ENV).start()
        try:
            await daemon.await_event("started")
            async with Api(config) as api:
                await api.post_events(
                    [
                        counted("c-gone", "GONE", "wh-east", 4),
                        counted("c-kept", "KEPT", "wh-east", 6),
                    ]
                )
                await poll(lambda: portal.shows().get("KEPT") == 6, 10, "KEPT at the portal")

                async def refused() -> list[dict[str, object]]:
                    status, body = await api.request("GET", "/v1/exceptions?kind=push_refused")
                    assert status == 200, body
                    items: list[dict[str, object]] = body["items"]
                    return items

                (record,) = await poll(refused, 10, "the push_refused exception")
                assert (record["channel"], record["sku"], record["state"]) == (
                    "portal",
                    "GONE",
                    "open",
                )
                details = record["details"]
                assert isinstance(details, dict)
                assert details["available"] == 4 and "no such sku" in details["reason"]
                assert "GONE" not in portal.shows()
            assert await daemon.astop() == 0
        finally:
            daemon.kill()
            kill_valkey(config)
