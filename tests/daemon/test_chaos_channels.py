"""Channel chaos with real processes (issue 12, parts 7 and 8): ``invsync run`` as a subprocess,
its embedded store, and the marketplace simulators of ``invsync simulate`` (in-process, on a free
port) with their fault knobs.

- Channels answering 429s, 5xxs and timeouts for a while (seconds here, not a minute: the
  adapters' timeouts and the faults' hold are shortened by config), then recovering: every
  channel converges on the daemon's values, and no acknowledged event was lost or applied twice.
- SIGTERM with thousands of values pending on a channel that is down: they are kept in the
  store (``pending:{wholesale}``, read back here with the daemon stopped), and the restart
  pushes them without waiting for a full sync.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from invsync.core.config import Faults, load_config
from invsync.engine.connection import Store
from invsync.engine.pending import pending_key
from invsync.simulators.server import Simulator
from tests.daemon.helpers import (
    LOCATIONS,
    Api,
    Daemon,
    counted,
    data_dir,
    free_port,
    poll,
    write_config,
)

ENV = {
    "CHAOS_WHOLESALE_SECRET": "wholesale-s3cret",
    "CHAOS_PORTAL_SECRET": "portal-s3cret",
    "CHAOS_SHOPIFY_TOKEN": "shpat_chaos",
    "CHAOS_SHOPIFY_SECRET": "shopify-app-s3cret",
}
CHANNELS = ("wholesale", "portal", "shopify")


def channels(sim: str) -> str:
    """Three simulated channels with short timeouts (a hung request costs 0.5 s, not 10)."""
    return f"""
[[channels]]
id = "wholesale"
kind = "webhook"
url = "{sim}/webhooks/wholesale"
secret_env = "CHAOS_WHOLESALE_SECRET"
rate_limit_per_s = 100
batch_size = 200
options = {{ timeout_s = 0.5 }}

[[channels]]
id = "portal"
kind = "webhook"
url = "{sim}/webhooks/portal"
secret_env = "CHAOS_PORTAL_SECRET"
rate_limit_per_s = 100
options = {{ timeout_s = 0.5 }}

[[channels]]
id = "shopify"
kind = "shopify"
url = "{sim}/shopify"
token_env = "CHAOS_SHOPIFY_TOKEN"
secret_env = "CHAOS_SHOPIFY_SECRET"
rate_limit_per_s = 50
options = {{ location_id = "68000000001", timeout_s = 0.5 }}

[exceptions]
drift_check_s = 0
"""


@pytest.fixture
async def running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Simulator, Path]]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    text = LOCATIONS + channels(f"http://127.0.0.1:{port}") + f"\n[simulator]\nport = {port}\n"
    config_path = write_config(tmp_path, text)
    sim = Simulator.from_config(load_config(config_path))
    assert sorted(sim.channels) == sorted(CHANNELS)
    async with sim:
        yield sim, config_path


def failed(sim: Simulator, channel: str) -> bool:
    """Whether the simulated channel has answered a push with anything but success."""
    calls = sim.channel(channel).calls
    return any(n and not key.endswith(":ok") for key, n in calls.items())


async def converged(sim: Simulator, api: Api, skus: list[str]) -> bool:
    """Every channel shows, for every SKU, what the daemon computed for it."""
    for sku in skus:
        view = await api.stock(sku)
        if view is None:
            return False
        for channel in CHANNELS:
            if sim.channel(channel).quantities.get(sku) != view["channels"][channel]["available"]:
                return False
    return True


async def test_channels_converge_after_429s_5xxs_and_timeouts(
    running: tuple[Simulator, Path],
) -> None:
    sim, config = running
    skus = [f"SKU-{i}" for i in range(40)]
    sim.list_skus(skus)
    faults = {
        "wholesale": Faults(error_rate=1.0),  # every push a 500/502/503
        "portal": Faults(timeout_rate=1.0, timeout_s=1.0),  # every push hangs past the client
        "shopify": Faults(throttle_rate=1.0),  # every call throttled
    }
    for channel, fault in faults.items():
        sim.channel(channel).faults = fault
    with Daemon(config, env=ENV) as daemon:
        await daemon.await_event("started", timeout=60)
        async with Api(config) as api:
            # Stock moves while every channel fails: counts, then adjustments and orders.
            await api.post_events([counted(f"c-{s}", s, "wh-east", 20) for s in skus], wait=20)
            changes: list[dict[str, Any]] = []
            for i, sku in enumerate(skus[:20]):
                changes.append({"id": f"a-{sku}", "type": "stock.adjusted", "sku": sku,
                                "location": "wh-west", "delta": i + 1})
                changes.append({"id": f"o-{sku}", "type": "order.created", "channel": "portal",
                                "order_id": f"ord-{i}", "lines": [{"sku": sku, "qty": 3}]})
            await api.post_events(changes, wait=20)
            # A resent batch (the same ids) changes nothing: applied once.
            await api.post_events(changes, wait=20)
            await poll(
                lambda: all(failed(sim, c) for c in CHANNELS), 30, "failed pushes everywhere"
            )
            await asyncio.sleep(2)  # the failures go on; breakers open, backoffs grow
            assert not await converged(sim, api, skus)

            for channel in CHANNELS:  # the channels recover
                sim.channel(channel).faults = Faults()
            await poll(lambda: converged(sim, api, skus), 90, "every channel to converge", 0.5)

            for i, sku in enumerate(skus[:20]):  # each event applied exactly once
                view = await api.stock(sku)
                assert view is not None
                east, west = view["locations"]["wh-east"], view["locations"]["wh-west"]
                assert east["on_hand"] + west["on_hand"] == 20 + i + 1
                assert east["reserved"] + west["reserved"] == 3
                assert all(loc["available"] >= 0 for loc in view["locations"].values())
        assert await daemon.astop() == 0


async def kept_values(config: Path) -> dict[str, str]:
    """``pending:{wholesale}`` of the stopped daemon's store, read through the store itself."""
    async with Store(None, data_dir(config), owner=True) as store:
        raw = await store.redis.hgetall(pending_key("wholesale"))
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def test_sigterm_keeps_thousands_of_pending_values_and_the_restart_pushes_them(
    running: tuple[Simulator, Path],
) -> None:
    sim, config = running
    skus = [f"P-{i:04d}" for i in range(3000)]
    sim.list_skus(skus)
    wholesale = sim.channel("wholesale")
    wholesale.faults = Faults(error_rate=1.0)  # down at shutdown
    with Daemon(config, env=ENV) as daemon:
        await daemon.await_event("started", timeout=60)
        async with Api(config) as api:
            events = [counted(f"c-{s}", s, "wh-east", 1 + i % 50) for i, s in enumerate(skus)]
            await api.post_events(events, wait=30)

            async def pending() -> int:
                _, report = await api.request("GET", "/readyz")
                entry = report["checks"]["channels"]["channels"].get("wholesale", {})
                return int(entry.get("pending", 0))

            await poll(lambda: _at_least(pending(), 2800), 60, "3000 values pending", 0.2)
        assert await daemon.astop(timeout=60) == 0
        # Other channels may keep a few values too (still pushing when the stop came).
        kept = next(
            (e for e in daemon.events()
             if e.get("event") == "channel_pending_kept" and e.get("channel") == "wholesale"),
            None,
        )
        assert kept is not None, daemon.output()[-3000:]
        assert kept["unpushed"] == 3000

    stored = await kept_values(config)
    assert len(stored) == 3000
    for i, sku in enumerate(skus):
        available, version, _accepted_ms = stored[sku].split(":")
        assert int(available) == 1 + i % 50 and int(version) >= 1
    assert not wholesale.quantities  # nothing reached the channel before the restart

    wholesale.faults = Faults()  # back up; the restart pushes what was kept
    with Daemon(config, env=ENV, name="restart") as daemon:
        await daemon.await_event("started", timeout=60)
        await daemon.await_event("channel_pending_restored", timeout=30)

        def restored_wholesale() -> dict[str, Any] | None:
            return next(
                (e for e in daemon.events()
                 if e.get("event") == "channel_pending_restored"
                 and e.get("channel") == "wholesale"),
                None,
            )

        restored = await poll(restored_wholesale, 30, "wholesale's kept values restored")
        assert restored["skus"] == 3000
        want = {sku: 1 + i % 50 for i, sku in enumerate(skus)}
        await poll(lambda: wholesale.quantities == want, 60, "the kept values pushed", 0.2)
        assert await daemon.astop(timeout=60) == 0
    assert await kept_values(config) == {}  # taken back, and nothing left unpushed


async def _at_least(value: Any, n: int) -> bool:
    return int(await value) >= n
