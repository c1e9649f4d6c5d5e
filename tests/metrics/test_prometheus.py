"""A real Prometheus server scrapes the real daemon: the sync latency histogram of every channel
arrives, every PromQL expression of the Grafana dashboard and of the alert rules evaluates without
error, and the rule group loads healthy.

Prometheus (Debian package ``prometheus``) is started here on a loopback port with a generated
config (1 s scrapes of the daemon, ``metrics/alerts.yml`` as its rule file, storage in tmp_path).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.daemon.helpers import free_port, poll, server_port
from tests.metrics.test_exposition import Running, daemon_with_webhooks, drive

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "metrics" / "grafana" / "invsync.json"
RULES = REPO / "metrics" / "alerts.yml"
CHANNELS = ("web", "amazon", "ebay")

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus not installed (Debian: apt-get install prometheus)",
)


def dashboard_queries() -> list[str]:
    """Every ``targets[].expr`` of the dashboard (rows' nested panels too), with Grafana's
    variables replaced as Grafana would for "All" over a 1 m step."""

    def walk(panels: list[dict[str, Any]]) -> Iterator[str]:
        for panel in panels:
            for target in panel.get("targets", ()):
                yield target["expr"]
            yield from walk(panel.get("panels", []))

    out = []
    for expr in walk(json.loads(DASHBOARD.read_text())["panels"]):
        # A multi-value variable is a regex: only meaningful after =~ (or !~).
        for use in re.finditer(r"\$\{?channel\b", expr):
            assert re.search(r'[=!]~"$', expr[: use.start()]), f"$channel outside =~: {expr}"
        expr = re.sub(r"\$\{channel(?::\w+)?\}|\$channel\b", ".*", expr)
        expr = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "1m", expr)
        assert "$" not in expr, f"unknown variable in {expr}"
        out.append(expr)
    return out


def test_the_dashboard_is_provisioning_ready() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "invsync" and board["title"] == "invsync"
    assert "id" not in board or board["id"] is None
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["channel"]["definition"] == (
        "label_values(invsync_channel_pending_skus, channel)"
    )
    panels = [p for p in board["panels"] if p["type"] != "row"]
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    titles = " | ".join(p["title"] for p in panels).lower()
    for wanted in (
        "sync latency",
        "pushes by outcome",
        "pending skus",
        "reservations/s",
        "reservation latency",
        "oversells",
        "exceptions open",
        "actors active",
        "mailbox depth",
        "intake lag",
        "circuit breaker",
    ):
        assert wanted in titles, wanted


class Prometheus:
    """A ``prometheus`` process on 127.0.0.1 and its HTTP API."""

    def __init__(self, folder: Path, daemon_port: int) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "prometheus.log"
        config = folder / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            f"rule_files:\n  - {RULES}\n"
            "scrape_configs:\n"
            "  - job_name: invsync\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{daemon_port}']\n"
        )
        assert PROMETHEUS is not None
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={folder / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        """A successful API answer's ``data``; fails on an HTTP or PromQL error."""
        async with self.session.get(self.url + path, params=params) as resp:
            body = await resp.json()
        assert resp.status == 200 and body["status"] == "success", (path, params, body)
        return body["data"]  # type: ignore[no-any-return]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """``/api/v1/query``: the result vector (a scalar answer comes back as one sample)."""
        data = await self.get("/api/v1/query", query=expr)
        if data["resultType"] == "vector":
            return data["result"]  # type: ignore[no-any-return]
        return [{"metric": {}, "value": data["result"]}]

    async def ready(self) -> bool:
        assert self.proc.poll() is None, f"prometheus exited: {self.log.read_text()[-3000:]}"
        try:
            async with self.session.get(self.url + "/-/ready") as resp:
                return resp.status == 200
        except aiohttp.ClientConnectionError:
            return False

    async def close(self) -> None:
        await self.session.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


async def latency_counts(prom: Prometheus) -> dict[str, float]:
    """Channel -> ``invsync_sync_latency_seconds_count`` as Prometheus last scraped it."""
    result = await prom.query('invsync_sync_latency_seconds_count{job="invsync"}')
    return {r["metric"]["channel"]: float(r["value"][1]) for r in result}


async def test_prometheus_scrapes_the_daemon_and_evaluates_the_dashboard_and_rules(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    async with daemon_with_webhooks(tmp_path, CHANNELS) as run:
        prom = Prometheus(tmp_path, server_port(run.config))
        try:
            await scrape_and_evaluate(run, prom)
        finally:
            await prom.close()
    assert time.monotonic() - started < 45


async def scrape_and_evaluate(run: Running, prom: Prometheus) -> None:
    await poll(prom.ready, 20, "prometheus to be ready")

    async def scraped() -> bool:
        return [float(r["value"][1]) for r in await prom.query('up{job="invsync"}')] == [1.0]

    await poll(scraped, 15, "prometheus to scrape the daemon (up == 1)", step=0.2)

    # Two rounds, a scrape apart: rate() over the 1 m windows sees the counters move.
    await drive(run, ["TEE", "CAP", "MUG"])

    async def every_channel_counted() -> dict[str, float] | None:
        counts = await latency_counts(prom)
        ok = set(counts) == set(CHANNELS) and all(v > 0 for v in counts.values())
        return counts if ok else None

    first = await poll(every_channel_counted, 15, "the latency of every channel", step=0.2)
    await drive(run, ["HAT", "SOCK", "BAG"])

    async def moved_again() -> bool:
        counts = await latency_counts(prom)
        return all(counts.get(ch, 0) > first[ch] for ch in CHANNELS)

    await poll(moved_again, 15, "a second scrape of every channel's latency", step=0.2)

    # The channel variable: label_values(invsync_channel_pending_skus, channel).
    values = await prom.get(
        "/api/v1/label/channel/values", **{"match[]": "invsync_channel_pending_skus"}
    )
    assert sorted(values) == sorted(CHANNELS)

    # The rule group: loaded and evaluated healthy (health is "unknown" before the first run).
    async def rules_evaluated() -> list[dict[str, Any]] | None:
        groups = (await prom.get("/api/v1/rules"))["groups"]
        rules = [rule for group in groups if group["name"] == "invsync" for rule in group["rules"]]
        return rules if rules and all(r["health"] != "unknown" for r in rules) else None

    rules = await poll(rules_evaluated, 10, "the invsync rule group to be evaluated", step=0.2)
    assert {r["name"]: r["health"] for r in rules} == {r["name"]: "ok" for r in rules}
    assert len(rules) == RULES.read_text().count("- alert: ")

    # Every expression of the dashboard and of the rules evaluates without error.
    dashboard = dashboard_queries()
    empty = []
    for expr in dashboard + [rule["query"] for rule in rules]:
        if not await prom.query(expr) and expr in dashboard:
            empty.append(expr)
    # Dashboard panels over metrics the run has produced must show data.
    populated = (
        "invsync_sync_latency_seconds",
        "invsync_channel_pushes_total",
        "invsync_channel_pending_skus",
        "invsync_reservation_latency_seconds",
        "invsync_events_total",
        "invsync_actors_active",
        "invsync_mailbox_depth",
        "invsync_intake_lag_seconds",
        "process_resident_memory_bytes",
    )
    blank = [expr for expr in empty if any(name in expr for name in populated)]
    assert not blank, f"dashboard queries with no data: {blank}"
