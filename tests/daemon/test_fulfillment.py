"""Routed orders reach the warehouse that ships them: the real daemon (a subprocess on an embedded
Valkey) hands order parts to a real HTTP warehouse over loopback, and to an EDI folder.

Checked: a signed ``fulfillment.requested`` per reserved part, its state in ``GET /v1/orders``;
cancellations reach the location; a 5xx is retried with the messages still in order; a 4xx
becomes a ``fulfillment_refused`` incident; the warehouse's signed shipment report fulfils the
order; a killed daemon loses no handoff; 940 files are written and a 945 fulfils the order.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from invsync.adapters.fulfillment.edi945 import parse_945
from invsync.adapters.signing import SIGNATURE_HEADER, sign, verify

from ..receiver import SECRET, Receiver
from .helpers import (
    Api,
    Daemon,
    counted,
    invsync,
    kill_valkey,
    poll,
    webhook_channel,
    write_config,
)

WAREHOUSE_SECRET = "warehouse-secret-for-tests"


class Warehouse:
    """A 3PL's endpoint: verifies our signature, records each message, answers as scripted."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # scripted answers, consumed one per request; then 200
        self.forged = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Warehouse:
        app = web.Application()
        app.router.add_post("/orders", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/orders"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(WAREHOUSE_SECRET, body, request.headers.get(SIGNATURE_HEADER)):
            self.forged += 1
            return web.json_response({"error": "bad signature"}, status=401)
        status = self.statuses.pop(0) if self.statuses else 200
        message = json.loads(body)
        message["_status"] = status
        message["_idempotency_key"] = request.headers.get("Idempotency-Key")
        self.messages.append(message)
        return web.json_response({"ok": 200 <= status < 300}, status=status)

    def acknowledged(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if 200 <= m["_status"] < 300]


def _config(tmp_path: Path, fulfillment: str, channel_url: str) -> Path:
    text = f"""\
[redis]
data_dir = "data"

[[locations]]
id = "wh-east"
priority = 10
fulfillment = {fulfillment}

[[locations]]
id = "store-sf"
kind = "store"
priority = 50
"""
    text += webhook_channel("partner", channel_url, "TEST_PARTNER_SECRET")
    return write_config(tmp_path, text)


def _env() -> dict[str, str]:
    return {"TEST_PARTNER_SECRET": SECRET, "TEST_WAREHOUSE_SECRET": WAREHOUSE_SECRET}


def _order(event_id: str, order_id: str, sku: str, qty: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id, "type": "order.created", "channel": "partner", "order_id": order_id,
        "lines": [{"sku": sku, "qty": qty}], **extra,
    }


async def _handoff(api: Api, order_id: str) -> dict[str, Any]:
    view = await api.order("partner", order_id)
    assert view is not None
    handoff: dict[str, Any] = view.get("handoff") or {}
    return handoff


async def _report(api: Api, location: str, body: dict[str, Any], *,
                  secret: str = WAREHOUSE_SECRET) -> tuple[int, Any]:
    raw = json.dumps(body).encode()
    return await api.request(
        "POST", f"/fulfillment/{location}", raw,
        headers={SIGNATURE_HEADER: sign(secret, raw), "Content-Type": "application/json"},
    )


async def test_webhook_handoff_request_cancel_ship_refuse_and_retry(tmp_path: Path) -> None:
    async with Warehouse() as warehouse, Receiver() as channel:
        fulfillment = (
            f'{{ kind = "webhook", url = "{warehouse.url}", '
            'secret_env = "TEST_WAREHOUSE_SECRET", retry = { base_s = 0.05, cap_s = 0.2 } }'
        )
        config = _config(tmp_path, fulfillment, channel.url)
        with Daemon(config, env=_env()) as daemon:
            await daemon.await_event("started", timeout=60)
            async with Api(config) as api:
                await api.post_events(
                    [counted("c1", "TEE", "wh-east", 10), counted("c2", "TEE", "store-sf", 10)],
                    wait=5,
                )
                # 1. A reserved order: one signed request to the warehouse, acknowledged.
                await api.post_events(
                    [_order("o1", "ORD-1", "TEE", 2, ship_to={"country": "US", "region": "NY"})],
                    wait=5,
                )
                await poll(lambda: len(warehouse.acknowledged()) >= 1, 15, "the request")
                [request] = warehouse.messages
                assert request["type"] == "fulfillment.requested"
                assert request["order_id"] == "ORD-1" and request["channel"] == "partner"
                assert request["location"] == "wh-east"
                assert request["lines"] == [{"sku": "TEE", "qty": 2}]
                assert request["ship_to"] == {"country": "US", "region": "NY"}
                assert request["_idempotency_key"] == request["id"]
                part = (await _handoff(api, "ORD-1"))["wh-east"]
                for _ in range(100):
                    if part["state"] == "acknowledged":
                        break
                    await asyncio.sleep(0.05)
                    part = (await _handoff(api, "ORD-1"))["wh-east"]
                assert part["state"] == "acknowledged" and part["lines"] == {"TEE": 2}

                # 2. The warehouse is down (503 twice), then a cancellation is queued behind
                # the second order's request: both arrive, in order, once it answers.
                warehouse.statuses = [503, 503]
                await api.post_events([_order("o2", "ORD-2", "TEE", 1)], wait=5)
                await api.post_events(
                    [{"id": "x2", "type": "order.cancelled", "channel": "partner",
                      "order_id": "ORD-2"}],
                    wait=5,
                )
                await poll(lambda: len(warehouse.acknowledged()) >= 3, 20, "retried messages")
                ord2 = [m for m in warehouse.messages if m["order_id"] == "ORD-2"]
                assert [m["_status"] for m in ord2] == [503, 503, 200, 200]
                assert [m["type"] for m in ord2 if m["_status"] == 200] == [
                    "fulfillment.requested", "fulfillment.cancelled"
                ]
                assert [m["seq"] for m in ord2 if m["_status"] == 200] == [1, 2]

                # 3. A refusal (422) becomes an incident with the order's context.
                warehouse.statuses = [422]
                await api.post_events([_order("o3", "ORD-3", "TEE", 1)], wait=5)

                async def refused() -> Any:
                    status, body = await api.request("GET", "/v1/exceptions?state=open")
                    assert status == 200, body
                    found = [x for x in body["items"] if x["kind"] == "fulfillment_refused"]
                    return found or None

                [incident] = await poll(refused, 15, "the fulfillment_refused incident")
                assert incident["order_id"] == "ORD-3" and incident["channel"] == "partner"
                assert incident["details"]["location"] == "wh-east"
                assert incident["details"]["status"] == 422
                assert {o["action"] for o in incident["options"]} == {"resend", "dismiss"}
                assert (await _handoff(api, "ORD-3"))["wh-east"]["state"] == "refused"
                # The operator resends once the warehouse is fixed: it arrives again.
                status, body = await api.request(
                    "POST", f"/v1/exceptions/{incident['id']}/resolve", {"action": "resend"}
                )
                assert status == 200, body
                await poll(
                    lambda: sum(1 for m in warehouse.acknowledged()
                                if m["order_id"] == "ORD-3") == 1,
                    15, "the resent request",
                )

                # 4. The warehouse reports the shipment (signed): the order is fulfilled.
                status, body = await _report(api, "wh-east", {
                    "type": "fulfillment.shipped", "id": "ship-1", "channel": "partner",
                    "order_id": "ORD-1", "lines": [{"sku": "TEE", "qty": 2}],
                })
                assert status == 202, body

                async def fulfilled() -> Any:
                    view = await api.order("partner", "ORD-1")
                    return view if view and view["state"] == "fulfilled" else None

                await poll(fulfilled, 10, "ORD-1 fulfilled")
                # A forged report is refused and changes nothing.
                status, _ = await _report(api, "wh-east", {
                    "type": "fulfillment.shipped", "id": "ship-x", "channel": "partner",
                    "order_id": "ORD-3",
                }, secret="wrong")
                assert status == 401
                # A report for a location that takes no signed reports: 404.
                status, _ = await _report(api, "store-sf", {
                    "type": "fulfillment.shipped", "id": "ship-y", "channel": "partner",
                    "order_id": "ORD-3",
                })
                assert status == 404
                assert warehouse.forged == 0
                metrics = await api.metrics()
                assert 'invsync_fulfillment_messages_total{location="wh-east",' in metrics
                assert 'outcome="refused"' in metrics


async def test_a_killed_daemon_loses_no_handoff(tmp_path: Path) -> None:
    """Orders accepted while the warehouse is down, then SIGKILL: the restarted daemon delivers
    every request exactly once per message id, none for an order that was not reserved."""
    async with Warehouse() as warehouse, Receiver() as channel:
        warehouse.statuses = [503] * 1000
        fulfillment = (
            f'{{ kind = "webhook", url = "{warehouse.url}", '
            'secret_env = "TEST_WAREHOUSE_SECRET", retry = { base_s = 0.05, cap_s = 0.2 } }'
        )
        config = _config(tmp_path, fulfillment, channel.url)
        daemon = Daemon(config, env=_env())
        try:
            daemon.start()
            await daemon.await_event("started", timeout=60)
            async with Api(config) as api:
                await api.post_events([counted("c1", "TEE", "wh-east", 5)], wait=5)
                orders = [_order(f"o{i}", f"ORD-{i}", "TEE", 1) for i in range(8)]
                await api.post_events(orders, wait=10)  # 5 reserved, 3 oversold
                await poll(lambda: len(warehouse.messages) >= 2, 10, "attempts")
            daemon.kill()
        finally:
            daemon.kill()
        warehouse.statuses = []
        with Daemon(config, name="again", env=_env()) as again:
            await again.await_event("started", timeout=60)
            await poll(lambda: len({m["id"] for m in warehouse.acknowledged()}) >= 5, 20,
                       "the requests after the restart")
            await asyncio.sleep(0.5)
            acked = warehouse.acknowledged()
            assert sorted(m["order_id"] for m in acked) == [f"ORD-{i}" for i in range(5)]
            assert len({m["id"] for m in acked}) == len(acked)  # each message once
            assert await again.astop(signal.SIGTERM) == 0
        kill_valkey(config)


X945 = (
    "ISA*00*          *00*          *ZZ*3PL            *ZZ*BRAND          *"
    "261203*1200*U*00401*000000077*0*P*>~\n"
    "GS*SW*3PL*BRAND*20261203*1200*77*X*004010~\n"
    "ST*945*0001~\n"
    "W06*F*{ref}*20261203*SHIP-9~\n"
    "LX*1~\n"
    "W12*CC*2*2*0*EA**SK*TEE~\n"
    "W03*2~\n"
    "SE*6*0001~\n"
    "GE*1*77~\n"
    "IEA*1*000000077~\n"
)


async def test_edi940_files_out_and_945_shipments_in(tmp_path: Path) -> None:
    async with Receiver() as channel:
        fulfillment = (
            '{ kind = "edi940", folder = "out", inbox = "in", sender_id = "BRAND", '
            'receiver_id = "3PL", poll_s = 0.2, retry = { base_s = 0.05, cap_s = 0.2 } }'
        )
        config = _config(tmp_path, fulfillment, channel.url)
        with Daemon(config, env=_env()) as daemon:
            await daemon.await_event("started", timeout=60)
            async with Api(config) as api:
                await api.post_events([counted("c1", "TEE", "wh-east", 10)], wait=5)
                await api.post_events([_order("o1", "ORD-1", "TEE", 2)], wait=5)
                out = tmp_path / "out"
                await poll(lambda: list(out.glob("940_*.edi")) or None, 15, "a 940 file")
                [file] = list(out.glob("940_*.edi"))
                text = file.read_text()
                assert text.startswith("ISA*") and "ST*940*0001~" in text
                assert "W01*2*EA**SK*TEE~" in text and "N9*CO*partner/ORD-1~" in text
                ref = next(s for s in text.split("~") if s.strip().startswith("W05")).split("*")[2]
                handoff = await _handoff(api, "ORD-1")
                assert handoff["wh-east"]["ref"] == ref
                # The 3PL ships and drops a 945 in the inbox: the order is fulfilled.
                inbox = tmp_path / "in"
                inbox.mkdir(exist_ok=True)
                (inbox / "945_1.edi").write_text(X945.format(ref=ref))

                async def fulfilled() -> Any:
                    view = await api.order("partner", "ORD-1")
                    return view if view and view["state"] == "fulfilled" else None

                await poll(fulfilled, 15, "ORD-1 fulfilled by the 945")
                await poll(lambda: (inbox / "processed" / "945_1.edi").exists() or None, 5,
                           "the 945 moved to processed/")
                # A 945 naming a part we never sent is set aside, and an incident says so.
                (inbox / "945_2.edi").write_text(X945.format(ref="IS99999999"))
                await poll(lambda: (inbox / "rejected" / "945_2.edi").exists() or None, 10,
                           "the unknown 945 rejected")
                assert parse_945(X945.format(ref=ref))[0].lines == {"TEE": 2}


def test_a_missing_warehouse_secret_stops_check_config_and_the_start(tmp_path: Path) -> None:
    fulfillment = (
        '{ kind = "webhook", url = "http://127.0.0.1:9/wms", secret_env = "TEST_NO_SUCH_SECRET" }'
    )
    config = _config(tmp_path, fulfillment, "http://127.0.0.1:9/push")
    done = invsync(config, "check-config")
    assert done.returncode == 2
    assert "location 'wh-east': fulfillment: environment variable TEST_NO_SUCH_SECRET" in (
        done.stderr
    )
