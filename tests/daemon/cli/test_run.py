"""``invsync check-config``, run as a subprocess (``invsync run`` is exercised by the daemon's
own tests, and by the stock tests that go through a running daemon)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon.helpers import CONFIG, REPO, data_dir, invsync, ok, write_config

# --- check-config ---------------------------------------------------------------------------


def test_check_config_accepts_the_shipped_config() -> None:
    done = invsync(REPO / "config.toml", "check-config")
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout
    assert "3 location(s), 7 channel(s), 1 bundle(s)" in done.stdout


def test_check_config_accepts_a_written_config(config: Path) -> None:
    out = ok(config, "check-config")
    assert "OK" in out
    assert "3 location(s), 4 channel(s), 1 bundle(s)" in out
    assert not data_dir(config).exists(), "check-config must not start a store"


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


BROKEN = {
    "unknown key": (CONFIG + "\n[server]\nprot = 8080\n", ["server.prot", "unknown key"]),
    "bad percent": (
        CONFIG.replace("percent = 50", "percent = 150"),
        ["channels[2].percent", "between 0 and 100", "150"],
    ),
    "unknown location in a channel": (
        CONFIG.replace('["wh-east", "wh-west"]', '["wh-east", "wh-north"]'),
        ["channels[3].locations[1]", "unknown location 'wh-north'"],
    ),
    "TOML syntax": (
        CONFIG.replace("buffer = 2", "buffer = = 2"),
        [f"line {_line_of(CONFIG, 'buffer = 2')}", "invalid TOML"],
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_check_config_names_the_key_and_exits_2(tmp_path: Path, case: str) -> None:
    text, fragments = BROKEN[case]
    config = write_config(tmp_path, text)
    done = invsync(config, "check-config")
    assert done.returncode == 2
    assert done.stdout == ""
    for fragment in fragments:
        assert fragment in done.stderr
    assert not data_dir(config).exists()
