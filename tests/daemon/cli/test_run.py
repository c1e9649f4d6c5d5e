"""``invsync check-config``, run as a subprocess (``invsync run`` is exercised by the daemon's
own tests, and by the stock tests that go through a running daemon)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.daemon.helpers import CONFIG, INVSYNC, REPO, data_dir, invsync, ok, write_config

# --- check-config ---------------------------------------------------------------------------


def dev_credentials() -> dict[str, str]:
    """The development credentials ``make run`` sets (deploy/run-dev.sh) for the shipped config."""
    script = (REPO / "deploy" / "run-dev.sh").read_text()
    return dict(re.findall(r': "\$\{(INVSYNC_[A-Z_]+):=([^}]*)\}"', script))


def check_config(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``invsync check-config`` with exactly the INVSYNC_* variables of ``env`` set."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("INVSYNC_")}
    return subprocess.run(
        [INVSYNC, "check-config", "-c", str(config)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**base, **env},
    )


def test_check_config_accepts_the_shipped_config() -> None:
    credentials = dev_credentials()
    assert len(credentials) >= 10, credentials
    done = check_config(REPO / "config.toml", credentials)
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout
    assert "3 location(s), 7 channel(s), 1 bundle(s)" in done.stdout


def test_check_config_names_every_channel_whose_credential_is_unset() -> None:
    credentials = dev_credentials()
    del credentials["INVSYNC_SHOPIFY_TOKEN"]
    del credentials["INVSYNC_WHOLESALE_SECRET"]
    done = check_config(REPO / "config.toml", credentials)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "channel 'shopify': token_env: environment variable INVSYNC_SHOPIFY_TOKEN" in done.stderr
    assert "channel 'wholesale': secret_env: environment variable INVSYNC_WHOLESALE_SECRET" in (
        done.stderr
    )
    assert "would not start" in done.stderr
    assert "amazon" not in done.stderr  # its variables are set


def test_check_config_skip_env_checks_the_file_only() -> None:
    done = check_config(REPO / "config.toml", {})
    assert done.returncode == 2  # no credential set: every channel named
    base = {k: v for k, v in os.environ.items() if not k.startswith("INVSYNC_")}
    done = subprocess.run(
        [INVSYNC, "check-config", "--skip-env", "-c", str(REPO / "config.toml")],
        capture_output=True, text=True, timeout=60, check=False, env=base,
    )
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout


def test_check_config_only_warns_of_an_optional_channel_without_credentials(
    tmp_path: Path,
) -> None:
    text = (REPO / "config.toml").read_text()
    shopify = 'id = "shopify"\nkind = "shopify"\n'
    text = text.replace(shopify, shopify + "optional = true\n")
    assert "optional = true" in text
    config = tmp_path / "config.toml"
    config.write_text(text)
    credentials = dev_credentials()
    del credentials["INVSYNC_SHOPIFY_TOKEN"]
    done = check_config(config, credentials)
    assert done.returncode == 0, done.stderr
    assert "warning: optional channel 'shopify'" in done.stderr
    assert "INVSYNC_SHOPIFY_TOKEN" in done.stderr
    assert "OK" in done.stdout


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
