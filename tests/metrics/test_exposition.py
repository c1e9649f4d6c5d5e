"""``GET /metrics`` of the real daemon (``invsync run`` as a subprocess, webhook channels pushing
to loopback receivers): valid for ``promtool check metrics``, every metric of the spec present,
and no SKU or order id ever used as a label value.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from invsync.metrics.definitions import LATENCY_BUCKETS
from tests.daemon.helpers import (
    LOCATIONS,
    Api,
    Daemon,
    counted,
    poll,
    webhook_channel,
    write_config,
)
from tests.receiver import SECRET, Receiver

SECRET_ENV = "METRICS_TEST_SECRET"
CHANNELS = ("web", "amazon", "ebay")
CANARY_SKU = "SKU-LABEL-CANARY"
CANARY_ORDER = "ORDER-LABEL-CANARY"

#: Every metric name of the spec ("Metrics"), plus the ones docs/metrics.md adds, with its type.
SPEC_METRICS = {
    "invsync_sync_latency_seconds": "histogram",
    "invsync_reservation_latency_seconds": "histogram",
    "invsync_events": "counter",
    "invsync_channel_pushes": "counter",
    "invsync_channel_pending_skus": "gauge",
    "invsync_actors_active": "gauge",
    "invsync_mailbox_depth": "gauge",
    "invsync_oversells": "counter",
    "invsync_exceptions_open": "gauge",
    "invsync_drift": "counter",
    "invsync_channel_breaker_open": "gauge",
    "invsync_intake_lag_seconds": "gauge",
    "invsync_redis_up": "gauge",
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
}
#: The only label names an invsync_* series may carry (all with bounded values).
BOUNDED_LABELS = {"channel", "kind", "outcome", "le"}


def order(channel: str, order_id: str, sku: str, qty: int) -> dict[str, Any]:
    return {
        "id": f"o-{uuid.uuid4().hex}",
        "type": "order.created",
        "channel": channel,
        "order_id": order_id,
        "lines": [{"sku": sku, "qty": qty}],
    }


@dataclass
class Running:
    """A daemon with one webhook channel per receiver, and its HTTP API."""

    config: Path
    daemon: Daemon
    api: Api
    receivers: dict[str, Receiver]


@contextlib.asynccontextmanager
async def daemon_with_webhooks(
    folder: Path, channels: Sequence[str] = CHANNELS
) -> AsyncIterator[Running]:
    """``invsync run`` with a ``webhook`` channel per name, each pushing to its own receiver;
    returns once the daemon has started. Everything is stopped on exit."""
    async with contextlib.AsyncExitStack() as stack:
        receivers = {ch: await stack.enter_async_context(Receiver(SECRET)) for ch in channels}
        text = LOCATIONS + "".join(
            webhook_channel(ch, r.url, SECRET_ENV, rate_limit_per_s=200)
            for ch, r in receivers.items()
        )
        config = write_config(folder, text)
        daemon = stack.enter_context(Daemon(config, env={SECRET_ENV: SECRET}))
        await daemon.await_event("started")
        api = await stack.enter_async_context(Api(config))
        yield Running(config, daemon, api, receivers)


async def drive(run: Running, skus: Sequence[str], on_hand: int = 10) -> None:
    """Stock ``skus`` (new ones: nothing reserved yet), order one of each on every channel, and
    wait until every channel has acknowledged the last value of every SKU."""
    await run.api.post_events(
        [counted(f"c-{uuid.uuid4().hex}", sku, "wh-east", on_hand) for sku in skus]
    )
    await run.api.post_events(
        [order(ch, f"O-{uuid.uuid4().hex[:12]}", sku, 1) for ch in run.receivers for sku in skus],
        wait=10,
    )
    expected = on_hand - len(run.receivers)

    def acknowledged() -> bool:
        return all(r.shows().get(sku) == expected for r in run.receivers.values() for sku in skus)

    await poll(acknowledged, 15, "every channel to acknowledge every SKU")


@pytest.fixture(scope="module")
async def exposition(tmp_path_factory: pytest.TempPathFactory) -> str:
    """/metrics after stock, orders (one oversold) and pushes of the canary SKU on 3 channels."""
    async with daemon_with_webhooks(tmp_path_factory.mktemp("exposition")) as run:
        await drive(run, [CANARY_SKU, "TEE"])
        # More than is left: oversold (a per-channel counter, an order id in the event).
        oversold = order("amazon", CANARY_ORDER, CANARY_SKU, 99)
        answer = await run.api.post_events([oversold], wait=10)
        assert answer["results"][oversold["id"]]["outcome"] != "applied", answer
        # A refused event and one for an unknown location: label values come from bounded sets.
        await run.api.request(
            "POST", "/v1/events", [counted("bad-1", CANARY_SKU, "nowhere-" + CANARY_SKU, 1)]
        )
        await run.api.request("POST", "/v1/events", b"{not json " + CANARY_SKU.encode())
        return await run.api.metrics()


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_promtool_check_metrics_finds_no_problem(exposition: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), (
        done.stdout + done.stderr
    )


def test_every_metric_of_the_spec_is_exposed_with_its_type(exposition: str) -> None:
    found = {name: family.type for name, family in families(exposition).items()}
    missing = {name: kind for name, kind in SPEC_METRICS.items() if found.get(name) != kind}
    assert not missing, f"missing or mistyped: {missing}"


def test_no_sku_or_order_id_appears_in_the_exposition(exposition: str) -> None:
    assert CANARY_SKU not in exposition
    assert CANARY_ORDER not in exposition
    for family in text_string_to_metric_families(exposition):
        if not family.name.startswith("invsync_"):
            continue
        for sample in family.samples:
            assert set(sample.labels) <= BOUNDED_LABELS, sample
            if "channel" in sample.labels:
                assert sample.labels["channel"] in CHANNELS, sample


def test_every_channel_has_latency_and_pushes_after_a_sync(exposition: str) -> None:
    by_name = families(exposition)
    counts = {
        s.labels["channel"]: s.value
        for s in by_name["invsync_sync_latency_seconds"].samples
        if s.name == "invsync_sync_latency_seconds_count"
    }
    assert set(counts) == set(CHANNELS) and all(v > 0 for v in counts.values()), counts
    ok = {
        s.labels["channel"]: s.value
        for s in by_name["invsync_channel_pushes"].samples
        if s.name == "invsync_channel_pushes_total" and s.labels["outcome"] == "ok"
    }
    assert set(ok) == set(CHANNELS) and all(v > 0 for v in ok.values()), ok
    oversold = {s.labels["channel"]: s.value for s in by_name["invsync_oversells"].samples}
    assert oversold.get("amazon") == 1, oversold


def test_latency_histograms_have_buckets_from_1ms_to_60s(exposition: str) -> None:
    by_name = families(exposition)
    for name in ("invsync_sync_latency_seconds", "invsync_reservation_latency_seconds"):
        bounds = sorted(
            {float(s.labels["le"]) for s in by_name[name].samples if s.name.endswith("_bucket")}
        )
        assert bounds == [*LATENCY_BUCKETS, float("inf")], (name, bounds)
