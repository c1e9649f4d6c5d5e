"""The alert rules (``metrics/alerts.yml``): valid for Prometheus, unit-tested with promtool
(``metrics/alerts_test.yml``), and each one complete (severity, summary, description, a runbook
anchor that exists in docs/operations.md) and both fired and held silent by the unit tests.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "metrics" / "alerts.yml"
RULE_TESTS = REPO / "metrics" / "alerts_test.yml"
OPERATIONS = REPO / "docs" / "operations.md"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian: apt-get install prometheus)",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=30, check=False, cwd=REPO
    )


def alert_blocks() -> dict[str, str]:
    """Alert name -> its text in alerts.yml (up to the next rule)."""
    parts = re.split(r"^\s*- alert: ", RULES.read_text(), flags=re.M)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_blocks())} rules found" in done.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_rules_cover_every_alert_of_the_issue() -> None:
    assert set(alert_blocks()) == {
        "InvsyncDown",
        "InvsyncSyncLatencyHigh",
        "InvsyncOversell",
        "InvsyncDrift",
        "InvsyncChannelBreakerOpen",
        "InvsyncChannelBacklogGrowing",
        "InvsyncRedisUnreachable",
        "InvsyncExceptionsGrowing",
        "InvsyncIntakeLag",
    }


def test_every_alert_has_severity_summary_description_and_a_runbook_that_exists() -> None:
    anchors = {
        slug(line.lstrip("#"))
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    for name, block in alert_blocks().items():
        assert re.search(r"severity: (critical|warning)\n", block), name
        assert "summary:" in block and "description:" in block, name
        runbook = re.search(r'runbook_url: "docs/operations\.md#([\w-]+)"', block)
        assert runbook, f"{name} has no runbook_url into docs/operations.md"
        assert runbook.group(1) in anchors, f"{name}: no #{runbook.group(1)} in operations.md"


def test_every_alert_is_fired_and_held_silent_by_the_unit_tests() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for block in re.split(r"^\s*- eval_time: ", RULE_TESTS.read_text(), flags=re.M)[1:]:
        name = re.search(r"alertname: (\w+)", block)
        assert name, block
        (silent if "exp_alerts: []" in block else fired).add(name.group(1))
    assert fired == set(alert_blocks())
    assert silent == set(alert_blocks())
