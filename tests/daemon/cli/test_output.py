"""What the commands print for a person: the sample file, tables with headers, ISO 8601 times with
their zone, and log lines as JSON or console text (a real terminal, a pseudo-tty, for ``auto``)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from invsync.daemon import importer
from invsync.daemon.cli.tables import iso_time, render_stock
from tests.daemon.helpers import INVSYNC, base_url, invsync, kill_valkey, ok

ISO_WITH_ZONE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)"

# --- stock sample ------------------------------------------------------------------------------


def test_the_sample_is_the_same_every_time_and_imports_cleanly(
    config: Path, tmp_path: Path
) -> None:
    first = ok(config, "stock", "sample", "--rows", "3000")
    lines = first.splitlines()
    assert lines[0] == "sku,location,on_hand" and len(lines) == 3001
    # Another run writes the same rows (a shorter sample is the start of a longer one); another
    # seed, other quantities only.
    assert ok(config, "stock", "sample", "--rows", "7").splitlines() == lines[:8]
    reseeded = ok(config, "stock", "sample", "--rows", "3000", "--seed", "1").splitlines()
    assert reseeded != lines
    assert [r.rsplit(",", 1)[0] for r in reseeded] == [r.rsplit(",", 1)[0] for r in lines]
    # The importer takes it whole: 1,000 SKUs at each of the config's three locations.
    path = tmp_path / "stock.csv"
    path.write_text(first)
    _, rows = importer.parse(path, ["wh-east", "wh-west", "store-sf"])
    assert len(rows) == 3000 and len({r.sku for r in rows}) == 1000
    assert all(0 <= r.on_hand <= 200 for r in rows)


def test_a_sample_of_no_rows_is_refused(config: Path) -> None:
    done = invsync(config, "stock", "sample", "--rows", "0")
    assert done.returncode == 2 and "--rows" in done.stderr and done.stdout == ""


def test_the_sample_stops_quietly_when_its_reader_has_seen_enough(config: Path) -> None:
    done = subprocess.run(
        f"{INVSYNC} stock sample -c {config} | head -3",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.splitlines()[0] == "sku,location,on_hand"
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


# --- tables and times --------------------------------------------------------------------------


def test_times_are_iso_8601_with_their_zone() -> None:
    ms = 1_764_800_000_000
    shown = iso_time(ms)
    assert re.fullmatch(ISO_WITH_ZONE, shown)
    assert datetime.fromisoformat(shown).timestamp() == ms / 1000
    assert iso_time(None) == "-" and iso_time("soon") == "-"


def test_stock_show_has_headed_tables_and_explains_pushed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    view = {
        "sku": "TEE",
        "version": 3,
        "locations": {
            "wh-east": {
                "on_hand": 40, "reserved": 2, "available": 38, "safety_stock": 0,
                "damaged": 0, "incoming": 5,
            }
        },
        "channels": {
            "shopify": {"available": 38, "pushed": 40, "pushed_version": 2,
                        "pushed_ms": 1_764_800_000_000},
            "ebay": {"available": 19, "pushed": None, "pushed_version": None},
        },
    }
    render_stock(view)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "TEE  (version 3)"
    assert lines[1].split() == [
        "location", "on_hand", "reserved", "available", "safety_stock", "damaged", "incoming",
    ]
    assert lines[2].split() == ["wh-east", "40", "2", "38", "0", "0", "5"]
    header = next(line for line in lines if line.startswith("channel"))
    assert header.split() == ["channel", "available", "pushed", "pushed", "at"]
    shopify = next(line for line in lines if line.startswith("shopify"))
    assert re.fullmatch(rf"shopify +38 +40 +{ISO_WITH_ZONE}", shopify)
    assert re.fullmatch(r"ebay +19 +- +not pushed yet", next(
        line for line in lines if line.startswith("ebay")
    ))
    assert "pushed: the last value the channel acknowledged" in out
    assert "differ while a push is on its way" in out  # 38 shown, 40 last pushed
    assert all(line == line.rstrip() for line in lines)  # no trailing blanks in a pipe


# --- log lines ---------------------------------------------------------------------------------


def _first_lines(config: Path, *args: str, want: str, timeout: float = 60) -> str:
    """``invsync run`` with stdout in a pipe until ``want`` shows up; its output so far."""
    proc = subprocess.Popen(
        [INVSYNC, "run", "-c", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = ""
    try:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        while want not in seen:
            assert time.monotonic() < deadline, seen
            line = proc.stdout.readline()
            assert line, f"invsync run stopped:\n{seen}"
            seen += line
        return seen
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        kill_valkey(config)


def test_a_pipe_gets_json_lines_and_no_token(config: Path) -> None:
    seen = _first_lines(config, want='"event": "started"')
    events = [json.loads(line) for line in seen.splitlines()]
    page = next(e for e in events if e["event"] == "live_page")
    assert page["url"] == base_url(config) + "/" and "token=<" in page["sign_in"]
    assert all(re.fullmatch(r"\d{4}-.*Z", e["timestamp"]) for e in events)


def test_log_format_console_is_readable_text(config: Path) -> None:
    seen = _first_lines(config, "--log-format", "console", want="] started ")
    headline = f"invsync is running: live page at {base_url(config)}/ ("
    assert headline in seen
    assert not any(line.startswith("{") for line in seen.splitlines())
    started = next(line for line in seen.splitlines() if "] started " in line)
    assert re.match(rf"{ISO_WITH_ZONE} \[info", started) and "startup_s=" in started
    assert "\x1b[" not in seen  # no colour codes off a terminal


def test_the_config_can_ask_for_console_lines_and_the_flag_wins(config: Path) -> None:
    config.write_text(config.read_text() + '\n[logging]\nformat = "console"\n')
    assert "invsync is running" in _first_lines(config, want="] started ")
    seen = _first_lines(config, "--log-format", "json", want='"event": "started"')
    assert all(line.startswith("{") for line in seen.splitlines())


def test_a_bad_log_format_names_the_key(config: Path) -> None:
    config.write_text(config.read_text() + '\n[logging]\nformat = "xml"\n')
    done = invsync(config, "check-config", "--skip-env")
    assert done.returncode == 2 and "logging.format" in done.stderr, done.stderr


def test_a_terminal_gets_console_lines_with_the_sign_in_link(config: Path) -> None:
    """stdout is a real pseudo-terminal: ``auto`` chooses console text, and the start-up line
    is the sign-in link with the token (a terminal is the operator's own screen)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [INVSYNC, "run", "-c", str(config)],
        stdout=slave,
        stderr=slave,
        env={**os.environ, "NO_COLOR": "1"},
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"this link signs your browser in" not in seen:
            assert time.monotonic() < deadline, seen
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                with contextlib.suppress(OSError):
                    seen += os.read(master, 65536)
            assert proc.poll() is None, seen
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
        os.close(master)
        kill_valkey(config)
    text = seen.decode()
    token = (config.parent / "data" / "api-token").read_text().strip()
    assert f"invsync is running: open {base_url(config)}/?token={token} " in text
    assert '{"' not in text  # console lines, not JSON


def test_an_import_at_a_terminal_shows_a_progress_bar(config: Path, tmp_path: Path) -> None:
    """stderr is a real pseudo-terminal: the import draws its bar there (no daemon runs, so it
    goes straight into the store), then the summary line stays."""
    path = tmp_path / "stock.csv"
    path.write_text(
        "sku,location,on_hand\n" + "".join(f"S{i},wh-east,{i}\n" for i in range(2000))
    )
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [INVSYNC, "stock", "import", str(path), "-c", str(config)],
        stdout=slave,
        stderr=slave,
        env={**os.environ, "NO_COLOR": "1"},
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None or select.select([master], [], [], 0)[0]:
            assert time.monotonic() < deadline, seen
            if select.select([master], [], [], 0.5)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        os.close(master)
        kill_valkey(config)
    text = seen.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "importing stock.csv into the store" in text
    assert "2000 applied, 0 already applied, 0 refused" in text
