"""Fail fast on configuration (issue 12, part 5) and ``[metrics] port``, with ``invsync run`` as
a real process.

The measured hole: with a channel's credential variable unset, the daemon logged
``channel_not_started``, answered ``/readyz`` 200 as if all were well, and the channel's webhooks
got 404. Now the start stops naming the variable, unless the channel is marked ``optional``:
then ``/readyz`` names it (200, ``degraded``) and its webhooks answer 503 naming the variable.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from tests.daemon.helpers import (
    LOCATIONS,
    Daemon,
    base_url,
    free_port,
    http_get,
    webhook_channel,
    write_config,
)

UNSET = "INVSYNC_TEST_UNSET_SECRET"


def config_with(tmp_path: Path, **settings: object) -> Path:
    url = f"http://127.0.0.1:{free_port()}/push"  # never reached: the channel cannot start
    return write_config(tmp_path, LOCATIONS + webhook_channel("wholesale", url, UNSET, **settings))


def post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_channel_without_its_credential_stops_the_start(tmp_path: Path) -> None:
    config = config_with(tmp_path)
    with Daemon(config) as daemon:
        assert daemon.proc is not None
        code = daemon.proc.wait(timeout=60)
        assert code != 0, daemon.output()
        failed = daemon.event("daemon_failed")
        assert failed is not None, daemon.output()
        assert failed["code"] == "CHANNEL_NOT_STARTED"
        assert f"environment variable {UNSET} is not set" in failed["error"]
        assert "channel 'wholesale'" in failed["error"]
        assert "optional = true" in failed["error"]
        assert daemon.event("started") is None


def test_an_optional_channel_without_credentials_is_named_and_its_webhooks_answer_503(
    tmp_path: Path,
) -> None:
    metrics_port = free_port()
    config = config_with(tmp_path, optional=True)
    config.write_text(config.read_text() + f"\n[metrics]\nport = {metrics_port}\n")
    with Daemon(config) as daemon:
        started = daemon.wait_for("started", timeout=60)
        assert started["channels"] == []
        status, body = http_get(config, "/readyz")
        report = json.loads(body)
        assert status == 200, report  # ready (intake works), degraded: the channel is named
        assert report["degraded"] == ["wholesale"]
        assert report["checks"]["channels"]["not_ready"] == ["wholesale"]
        entry = report["checks"]["channels"]["channels"]["wholesale"]
        assert entry["ready"] is False
        assert UNSET in entry["reason"]

        status, answer = post(base_url(config) + "/webhooks/wholesale", b"{}")
        assert status == 503, answer
        error = answer["error"]
        assert isinstance(error, dict)
        assert error["code"] == "CHANNEL_UNAVAILABLE"
        assert UNSET in error["message"]

        # [metrics] port: the exposition on a listener of its own, and nothing else there.
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            assert r.status == 200
            assert b"invsync_events_total" in r.read()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/v1/events", timeout=5)
            raise AssertionError("the metrics port must serve /metrics only")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
        assert daemon.stop() == 0
