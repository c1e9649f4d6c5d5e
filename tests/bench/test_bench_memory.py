"""``invsync bench memory``: it runs end to end on the shipped config with every channel on the
simulators, and reports plausible figures (shape and bounds, not targets or timings)."""

from __future__ import annotations

import json

from invsync.bench.memory import shipped_config
from tests.daemon.helpers import invsync

SKUS = 1500


def test_bench_memory_prints_store_and_daemon_bytes_per_sku() -> None:
    done = invsync(
        shipped_config(),
        "bench",
        "memory",
        "--skus",
        str(SKUS),
        "--settle-s",
        "2",
        "--json",
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    f = json.loads(done.stdout)  # all of stdout: one object, no progress lines
    print(f"\nbench: {f}")  # info only
    assert f["skus"] == SKUS
    assert f["channels"] == 7  # every channel of the shipped config ran
    # A SKU costs the store its counters, a history entry, an event marker and a field of each
    # channel's pushed hash: hundreds of bytes, not the 4 KB a one-entry stream took.
    assert 150 < f["store_bytes_per_sku"] < 2500, f
    assert 0 < f["daemon_rss_bytes_per_sku"] < 100_000, f
    usage = f["one_sku_memory_usage"]
    assert set(usage) == {"inv", "hist", "evt"}
    assert all(n > 0 for n in usage.values()), usage
    assert usage["hist"] < 1000, usage
    assert f["store_used_mb"] > f["store_baseline_mb"] > 0
    assert f["daemon_rss_mb"] >= f["daemon_rss_baseline_mb"] > 0
    assert f["intake_entries"] < SKUS / 3  # acknowledged entries are trimmed within a second
    assert set(f["pending"]) == set(f["pushed"]) and len(f["pushed"]) == 7
    assert sum(f["pushed"].values()) > 0  # the channels were pushed to
