"""The exception queue end to end: ``invsync run`` as a subprocess, each kind produced by the
condition that causes it (over real HTTP, a webhook channel pointed at a closed port), resolved
through ``POST /v1/exceptions/{id}/resolve`` and ``invsync exceptions ...``, with the resulting
stock, order and channel state checked. Also: a cross-channel return restocks the store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.helpers import (
    INVSYNC,
    LOCATIONS,
    Api,
    Daemon,
    counted,
    free_port,
    invsync,
    metric,
    poll,
    webhook_channel,
    write_config,
)
from tests.receiver import Receiver

SECRETS = {"wholesale": "wholesale-s3cret", "portal": "portal-s3cret"}
#: Ana's own API token ([server] tokens): what she resolves is recorded under her name.
ANA_TOKEN = "ana-s-api-token-0123456789"
ENV = {f"EXC_{c.upper()}_SECRET": s for c, s in SECRETS.items()} | {
    "EXC_DOWN_SECRET": "x",
    "EXC_ANA_TOKEN": ANA_TOKEN,
}


@pytest.fixture
async def receivers() -> AsyncIterator[dict[str, Receiver]]:
    out: dict[str, Receiver] = {}
    try:
        for channel, secret in SECRETS.items():
            out[channel] = await Receiver(secret).__aenter__()
        yield out
    finally:
        for receiver in out.values():
            await receiver.__aexit__(None, None, None)


def config_for(tmp_path: Path, receivers: dict[str, Receiver], *, down: bool = False) -> Path:
    text = LOCATIONS + "\n[exceptions]\nunreachable_after_s = 1\n"
    text += webhook_channel("wholesale", receivers["wholesale"].url, "EXC_WHOLESALE_SECRET")
    text += webhook_channel(
        "portal", receivers["portal"].url, "EXC_PORTAL_SECRET", locations=["store-sf"]
    )
    if down:  # nobody listens there: every push fails, the breaker opens
        url = f"http://127.0.0.1:{free_port()}/push"
        text += webhook_channel("down", url, "EXC_DOWN_SECRET")
    path = write_config(tmp_path, text)
    with path.open("a") as out:  # into the [server] table write_config appended last
        out.write('tokens = { ana = "EXC_ANA_TOKEN" }\n')
    return path


def order(event_id: str, order_id: str, sku: str, qty: int = 1) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "order.created",
        "channel": "wholesale",
        "order_id": order_id,
        "lines": [{"sku": sku, "qty": qty}],
    }


async def open_exceptions(api: Api, **query: str) -> list[dict[str, Any]]:
    path = "/v1/exceptions?" + "&".join(f"{k}={v}" for k, v in query.items())
    status, body = await api.request("GET", path)
    assert status == 200, body
    items: list[dict[str, Any]] = body["items"]
    return items


async def one(api: Api, kind: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        items = await open_exceptions(api, kind=kind)
        return items[0] if items else None

    record: dict[str, Any] = await poll(found, 20, f"an open {kind} exception")
    return record


async def cli(config: Path, *args: str, token: str | None = None) -> tuple[int, str, str]:
    """``invsync ARGS``; with ``token``, as its holder (``$INVSYNC_TOKEN``), else with the token
    the daemon generated (the operator's)."""
    if token is None:
        done = await asyncio.to_thread(invsync, config, *args)
    else:
        done = await asyncio.to_thread(
            subprocess.run,
            [INVSYNC, *args, "-c", str(config)],
            cwd=config.parent,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "INVSYNC_TOKEN": token},
        )
    return done.returncode, done.stdout, done.stderr


async def resolve(api: Api, exception_id: str, **body: Any) -> tuple[int, Any]:
    return await api.request("POST", f"/v1/exceptions/{exception_id}/resolve", body)


async def test_every_kind_is_produced_by_its_cause_and_resolved_for_real(
    tmp_path: Path, receivers: dict[str, Receiver]
) -> None:
    config = config_for(tmp_path, receivers, down=True)
    with Daemon(config, env=ENV) as daemon:
        daemon.wait_for("started")
        async with Api(config) as api:
            await api.post_events(
                [counted("c-1", "TEE", "wh-east", 1), counted("c-2", "CAP", "wh-east", 5)], wait=5
            )
            await api.post_events([order("o-1", "1001", "TEE")], wait=5)
            # oversold: the last unit went to 1001
            await api.post_events([order("o-2", "1002", "TEE")], wait=5)
            # unknown_sku
            await api.post_events([order("o-3", "1003", "GHOST", 2)], wait=5)
            # cancel_after_fulfilment
            await api.post_events([order("o-4", "1004", "CAP", 2)], wait=5)
            fulfil = {
                "id": "f-4",
                "type": "order.fulfilled",
                "channel": "wholesale",
                "order_id": "1004",
            }
            cancel = {
                "id": "x-4",
                "type": "order.cancelled",
                "channel": "wholesale",
                "order_id": "1004",
            }
            await api.post_events([fulfil], wait=5)
            await api.post_events([cancel], wait=5)
            # bad_event: an adjustment that would make stock negative
            bad = {
                "id": "a-1",
                "type": "stock.adjusted",
                "location": "wh-west",
                "sku": "CAP",
                "delta": -3,
            }
            await api.post_events([bad], wait=5)

            oversold = await one(api, "oversold")
            assert (oversold["channel"], oversold["order_id"], oversold["sku"]) == (
                "wholesale",
                "1002",
                "TEE",
            )
            assert oversold["details"]["last_unit_taken_by"]["TEE"]["order_id"] == "1001"
            assert "pushed_to_channel" in oversold["details"]
            unknown = await one(api, "unknown_sku")
            assert unknown["details"]["unknown_skus"] == ["GHOST"]
            late_cancel = await one(api, "cancel_after_fulfilment")
            assert late_cancel["details"]["fulfilled"] == 2
            bad_event = await one(api, "bad_event")
            assert bad_event["details"]["code"] == "NEGATIVE_STOCK"
            unreachable = await one(api, "channel_unreachable")
            assert unreachable["channel"] == "down"
            assert metric(await api.metrics(), "invsync_exceptions_open", kind="oversold") == 1
            assert (await api.order("wholesale", "1002") or {})["outcome"] == "rejected"

            # The CLI lists and shows them.
            code, out, err = await cli(config, "exceptions", "list", "--json")
            assert code == 0, err
            assert {r["kind"] for r in json.loads(out)} == {
                "oversold",
                "unknown_sku",
                "cancel_after_fulfilment",
                "bad_event",
                "channel_unreachable",
            }
            code, out, err = await cli(config, "exceptions", "show", oversold["id"])
            assert code == 0 and "reroute" in out and "backorder" in out, err

            # oversold -> reroute: still no stock, the attempt is recorded, it stays open.
            code, out, err = await cli(
                config, "exceptions", "resolve", oversold["id"], "--action", "reroute"
            )
            assert code == 1 and "attempt" in out, (out, err)
            # ... stock arrives at wh-west: the reroute reserves there, the channel hears of it.
            await api.post_events([counted("c-3", "TEE", "wh-west", 3)], wait=5)
            resolve_as_ana = ("exceptions", "resolve", oversold["id"], "--action", "reroute",
                              "--by", "ana")
            # The operator's token cannot act in Ana's name: refused, nothing done.
            code, out, err = await cli(config, *resolve_as_ana)
            assert code == 1 and "BY_MISMATCH" in err, (out, err)
            view = await api.order("wholesale", "1002")
            assert view is not None and view["outcome"] != "reserved"
            # Ana's own token can.
            code, out, err = await cli(config, *resolve_as_ana, token=ANA_TOKEN)
            assert code == 0, (out, err)
            view = await api.order("wholesale", "1002")
            assert view is not None and view["outcome"] == "reserved"
            assert [x["location"] for x in view["lines"]] == ["wh-west"]
            stock = await api.stock("TEE")
            assert stock is not None and stock["locations"]["wh-west"]["reserved"] == 1
            await poll(
                lambda: receivers["wholesale"].shows().get("TEE") == 2,
                10,
                "wholesale to show TEE=2 after the reroute",
            )
            status, record = await api.request("GET", f"/v1/exceptions/{oversold['id']}")
            assert (record["state"], record["resolved_by"], record["action"]) == (
                "resolved",
                "ana",
                "reroute",
            )

            # unknown_sku -> substitute with a stocked SKU.
            status, record = await resolve(api, unknown["id"], action="substitute", sku="CAP")
            assert status == 200 and record["state"] == "resolved", record
            assert record["resolved_by"] == "operator"  # the name of the token that acted
            view = await api.order("wholesale", "1003")
            assert view is not None and [x["sku"] for x in view["lines"]] == ["CAP"]
            stock = await api.stock("CAP")
            assert stock is not None and stock["locations"]["wh-east"]["reserved"] == 2

            # cancel_after_fulfilment -> cancel: nothing left to release; the channel cancelled it.
            status, record = await resolve(api, late_cancel["id"], action="cancel")
            assert status == 200, record
            assert record["resolution"]["released"] == 0
            assert record["resolution"]["channel_notified"] is False
            why = record["resolution"]["channel_not_notified_because"]
            assert "cancelled this order itself" in why

            # bad_event -> dismiss (CLI); channel_unreachable -> resync.
            code, _, err = await cli(
                config, "exceptions", "resolve", bad_event["id"], "--action", "dismiss"
            )
            assert code == 0, err
            status, record = await resolve(api, unreachable["id"], action="resync")
            assert status == 200 and record["state"] == "resolved", record

            # Errors: 409 resolved, 400 unknown action, 404 unknown id.
            status, body = await resolve(api, bad_event["id"], action="dismiss")
            assert status == 409 and body["error"]["code"] == "ALREADY_RESOLVED"
            assert (await resolve(api, oversold["id"], action="fly"))[0] == 409
            status, body = await api.request("GET", "/v1/exceptions/OVS-0000000000")
            assert status == 404 and body["error"]["code"] == "UNKNOWN_EXCEPTION"
            code, _, err = await cli(config, "exceptions", "show", "OVS-0000000000")
            assert code == 1 and "UNKNOWN_EXCEPTION" in err

            assert await open_exceptions(api) == []
            everything = await open_exceptions(api, state="all")
            assert len(everything) == 5
            await poll(lambda: _gauge_zero(api), 5, "invsync_exceptions_open to drop to 0")
        assert daemon.stop() == 0


async def _gauge_zero(api: Api) -> bool:
    return metric(await api.metrics(), "invsync_exceptions_open") == 0


async def test_unknown_action_on_an_open_exception_is_400(
    tmp_path: Path, receivers: dict[str, Receiver]
) -> None:
    config = config_for(tmp_path, receivers)
    with Daemon(config, env=ENV) as daemon:
        daemon.wait_for("started")
        async with Api(config) as api:
            await api.post_events([order("o-1", "1001", "NEVER")], wait=5)
            record = await one(api, "unknown_sku")
            status, body = await resolve(api, record["id"], action="backorder")
            assert status == 400 and body["error"]["code"] == "UNKNOWN_ACTION"
            status, body = await api.request(
                "POST", f"/v1/exceptions/{record['id']}/resolve", b"{nope"
            )
            assert status == 400
        assert daemon.stop() == 0


async def test_return_at_a_store_restocks_the_store_and_pushes_its_availability(
    tmp_path: Path, receivers: dict[str, Receiver]
) -> None:
    config = config_for(tmp_path, receivers)
    with Daemon(config, env=ENV) as daemon:
        daemon.wait_for("started")
        async with Api(config) as api:
            await api.post_events(
                [counted("c-1", "TEE", "wh-east", 5), counted("c-2", "TEE", "store-sf", 1)],
                wait=5,
            )
            # The store keeps one unit back: the store-only portal shows 0.
            await poll(lambda: receivers["portal"].shows().get("TEE") == 0, 10, "portal TEE=0")
            await api.post_events([order("o-1", "1001", "TEE", 2)], wait=5)
            view = await api.order("wholesale", "1001")
            assert view is not None and view["lines"][0]["location"] == "wh-east"
            ship = {
                "id": "f-1",
                "type": "order.fulfilled",
                "channel": "wholesale",
                "order_id": "1001",
            }
            back = {
                "id": "r-1",
                "type": "order.returned",
                "channel": "wholesale",
                "order_id": "1001",
                "location": "store-sf",
                "lines": [{"sku": "TEE", "qty": 2}],
            }
            await api.post_events([ship], wait=5)
            await api.post_events([back], wait=5)

            stock = await api.stock("TEE")
            assert stock is not None
            assert stock["locations"]["store-sf"]["on_hand"] == 3
            assert stock["locations"]["wh-east"]["on_hand"] == 3
            await poll(
                lambda: receivers["portal"].shows().get("TEE") == 2,
                10,
                "the store's portal to show the returned units",
            )
            await poll(
                lambda: receivers["wholesale"].shows().get("TEE") == 5,
                10,
                "wholesale to show both locations",
            )
            view = await api.order("wholesale", "1001")
            assert view is not None and view["lines"][0]["returned"] == 2
        assert daemon.stop() == 0
