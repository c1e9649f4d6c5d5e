"""``invsync bench reserve``: it runs end to end and reports sane figures (not speed targets)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.daemon.helpers import invsync, write_config


def test_bench_reserve_prints_one_json_object_of_figures(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = invsync(
        config, "bench", "reserve", "--ops", "3000", "--concurrency", "16", "--json", timeout=120
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)  # all of stdout: one object, no progress lines
    assert isinstance(figures, dict)
    for key in ("ops_per_s", "p50_ms", "p99_ms", "ceiling_ops_per_s", "ratio"):
        assert isinstance(figures[key], int | float), key
        assert figures[key] > 0, key
    assert figures["p50_ms"] <= figures["p99_ms"]
    assert figures["ops"] == 3000
    assert figures["concurrency"] == 16
    print(f"\nbench: {figures}")  # info only
    # The bench uses a throw-away store of its own, never the config's.
    assert not (tmp_path / "data").exists()
