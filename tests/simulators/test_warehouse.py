"""The simulated warehouse over real loopback HTTP: it checks signatures, takes each message
once, ships what was not cancelled after its pick time and reports it signed to the daemon."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web

from invsync.adapters.signing import SIGNATURE_HEADER, sign, verify
from invsync.simulators.server import Simulator

SECRET = "wh-secret"


def _message(message_id: str, kind: str, order_id: str, lines: dict[str, int]) -> bytes:
    return json.dumps({
        "type": kind, "id": message_id, "channel": "shop", "order_id": order_id,
        "location": "wh-east", "lines": [{"sku": s, "qty": q} for s, q in lines.items()],
    }).encode()


async def test_the_warehouse_picks_ships_and_reports(unused_tcp_port: int) -> None:
    reports: list[tuple[dict[str, Any], bool]] = []

    async def daemon_side(request: web.Request) -> web.Response:
        body = await request.read()
        ok = verify(SECRET, body, request.headers.get(SIGNATURE_HEADER))
        reports.append((json.loads(body), ok))
        assert request.match_info["location"] == "wh-east"
        return web.json_response({"outcome": "recorded"}, status=202)

    app = web.Application()
    app.router.add_post("/fulfillment/{location}", daemon_side)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    sim = Simulator(daemon_url=f"http://127.0.0.1:{unused_tcp_port}")
    warehouse = sim.add_warehouse("wh-east", "/warehouse/wh-east", SECRET, pick_s=0.2)
    try:
        async with sim, aiohttp.ClientSession() as session:
            url = f"{sim.url}/warehouse/wh-east"

            async def post(body: bytes, secret: str = SECRET) -> int:
                async with session.post(
                    url, data=body, headers={SIGNATURE_HEADER: sign(secret, body)}
                ) as resp:
                    return resp.status

            assert await post(_message("m1", "fulfillment.requested", "A", {"TEE": 2}),
                              secret="wrong") == 401
            assert await post(b"{not json") == 400
            assert await post(_message("m1", "fulfillment.requested", "A", {"TEE": 2})) == 202
            assert await post(_message("m1", "fulfillment.requested", "A", {"TEE": 2})) == 202
            assert await post(_message("m2", "fulfillment.requested", "B", {"CAP": 1})) == 202
            assert await post(_message("m3", "fulfillment.cancelled", "B", {"CAP": 1})) == 202
            assert [m["id"] for m in warehouse.received] == ["m1", "m2", "m3"]
            for _ in range(100):
                if reports:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # B's pick time passes too: nothing of it ships
    finally:
        await runner.cleanup()
    assert [(r["order_id"], r["lines"], ok) for r, ok in reports] == [
        ("A", [{"sku": "TEE", "qty": 2}], True)
    ]
    assert reports[0][0]["type"] == "fulfillment.shipped"
