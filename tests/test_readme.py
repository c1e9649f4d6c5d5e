"""The README's commands work as written: its quick start, and the block tried while `make run`
is up, run line by line against a live daemon and its simulators (what `make run` starts).

The block runs in a folder of its own holding the shipped config.toml (its ports moved to free
ones, so a developer's own `make run` on 8080/8090 is left alone) and a `.venv` link to this
virtualenv, so `.venv/bin/invsync`, `data/api-token` and `stock.csv` resolve as they do in a
clone. deploy/run-dev.sh, the script `make run` runs, starts the simulators, the daemon and the
demo stock. A line ending in a comment with "(exit N)" must exit N; every other line exits 0.

Two lines are scaled down (SCALED), as their size is what the benchmarks measure, not what this
test checks: ``bench reserve`` makes 2,000 reservations instead of 200,000, and the sample has
3,000 rows instead of 100,000 (the same command and file format, the same first rows); and
the config's ``[exceptions] drift_confirm_s`` is 1 s instead of 10.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.helpers import free_port, kill_valkey

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: The sentence that introduces the block tried while `make run` is up.
TRY_IT = "While it is up, try in a second terminal:"
#: How long the demo may take to come up (a busy 2-core machine; usually about 10 s).
START_TIMEOUT_S = 180
LINE_TIMEOUT_S = 300
#: README text -> what the test runs instead (each must be found in the block).
SCALED = {
    "invsync bench reserve ": "invsync bench reserve --ops 2000 --concurrency 16 --skus 100 ",
    "--rows 100000": "--rows 3000",
}


def code_blocks(text: str) -> list[tuple[int, list[str]]]:
    """Each fenced block of ``text``: (offset of its opening fence, its lines)."""
    return [
        (found.start(), found.group(1).splitlines())
        for found in re.finditer(r"^```[a-z]*\n(.*?)^```$", text, re.M | re.S)
    ]


def tried_while_running() -> list[str]:
    """The commands of the README's block that follows TRY_IT."""
    text = README.read_text()
    start = text.index(TRY_IT)
    offset, lines = next((o, lines) for o, lines in code_blocks(text) if o > start)
    assert text[start:offset].strip() == TRY_IT, "the block must follow the sentence"
    return [line for line in lines if line.strip()]


def expected_exit(line: str) -> int:
    """The exit code a README line promises in its comment, "(exit N)"; 0 otherwise."""
    _, _, comment = line.partition("  #")
    found = re.search(r"\(exit (\d+)\)", comment)
    return int(found.group(1)) if found else 0


def test_the_quick_start_is_two_commands() -> None:
    text = README.read_text()
    quick = text[text.index("## Quick start") :]
    _, lines = code_blocks(quick)[0]
    commands = [line.split("#")[0].strip() for line in lines if line.strip()]
    assert commands == ["make run", "make test"]


def test_exit_codes_are_read_from_the_comments() -> None:
    assert expected_exit("invsync channels drift-check ebay   # drift (exit 1)") == 1
    assert expected_exit("invsync check-config   # exit 2 naming the key on a bad config") == 0
    assert expected_exit("invsync stock show X") == 0


def _demo_config(folder: Path, port: int, sim_port: int) -> Path:
    """The shipped config with the daemon on ``port`` and the simulators on ``sim_port``."""
    text = (ROOT / "config.toml").read_text()
    text = re.sub(r"(?m)^port = 8080$", f"port = {port}", text)
    text = re.sub(r"(?m)^port = 8090$", f"port = {sim_port}", text)
    text = text.replace("127.0.0.1:8090/", f"127.0.0.1:{sim_port}/")
    assert "8090" not in re.sub(r"#.*", "", text) and f"port = {port}" in text
    # The drift check's second look comes after 1 s instead of 10 (the README's line is timed
    # by [exceptions] drift_confirm_s, which it does not set).
    text = re.sub(r"(?m)^drift_settle_s = .*$", r"\g<0>\ndrift_confirm_s = 1", text, count=1)
    assert "drift_confirm_s = 1" in text
    path = folder / "config.toml"
    path.write_text(text)
    return path


@contextlib.contextmanager
def make_run(folder: Path, config: Path) -> Iterator[Path]:
    """deploy/run-dev.sh (what `make run` runs) in ``folder``; yields its stderr file once the
    demo stock is loaded. Stopped with SIGINT as Ctrl-C would, then killed if need be."""
    venv_bin = Path(sys.executable).parent
    (folder / ".venv").symlink_to(venv_bin.parent)
    out, err = folder / "make-run.out", folder / "make-run.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            ["sh", str(ROOT / "deploy" / "run-dev.sh"), str(venv_bin), str(config)],
            cwd=folder,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "live page" not in err.read_text(errors="replace"):
            assert proc.poll() is None, f"make run stopped:\n{err.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no demo after {START_TIMEOUT_S} s:\n" + (
                err.read_text()[-3000:]
            )
            time.sleep(0.5)
        yield err
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        kill_valkey(config)


@pytest.mark.slow
def test_every_command_of_the_readme_works_against_make_run(tmp_path: Path) -> None:
    lines = tried_while_running()
    block = "\n".join(lines)
    assert all(text in block for text in SCALED), "SCALED names text the README no longer has"
    port, sim_port = free_port(), free_port()
    config = _demo_config(tmp_path, port, sim_port)
    with make_run(tmp_path, config):
        for line in lines:
            command = line.replace("localhost:8080", f"localhost:{port}").replace(
                "localhost:8090", f"localhost:{sim_port}"
            )
            for text, scaled in SCALED.items():
                command = command.replace(text, scaled)
            done = subprocess.run(
                ["bash", "-o", "pipefail", "-c", command],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=LINE_TIMEOUT_S,
            )
            assert done.returncode == expected_exit(line), (
                f"{line}\nexit {done.returncode}\nstdout:\n{done.stdout[-2000:]}\n"
                f"stderr:\n{done.stderr[-2000:]}"
            )
            assert "Traceback" not in done.stderr, (line, done.stderr)
    # What the block made: the sample file, as `stock sample` wrote it.
    sample = (tmp_path / "stock.csv").read_text().splitlines()
    assert sample[0] == "sku,location,on_hand" and len(sample) == 3_001
