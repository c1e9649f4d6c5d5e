"""``DaemonClient`` and the operator CLI going through the API, against a real ``HttpServer``.

The server runs in the test's event loop on the ``ApiContext`` of ``test_http``; the CLI runs as
a subprocess (``invsync stock ... -c CONFIG``) whose config points at that server and the test
Redis.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import redis.asyncio as aioredis

from invsync.core.config import ServerConfig
from invsync.core.errors import StoreUnavailable
from invsync.daemon.client import DaemonClient, DaemonUnavailable
from invsync.daemon.http import (
    Forbidden,
    MalformedEvent,
    Unauthorized,
    UnknownChannel,
    UnknownEventLocation,
    build_app,
)
from invsync.daemon.intake import STREAM
from invsync.daemon.security import client_token
from invsync.daemon.server import HttpServer
from tests.daemon import test_http
from tests.daemon.helpers import INVSYNC
from tests.daemon.test_http import TOKEN_ENV, ApiContext, closed_port

# The test context's fixtures, shared with the API's own tests.
ctx = test_http.ctx
down_ctx = test_http.down_ctx
token_ctx = test_http.token_ctx


#: Port of a test server -> the API token its app generated (what the CLI reads from the file).
_TOKENS: dict[int, str | None] = {}


def serve(ctx: ApiContext) -> HttpServer:
    """The API on ``ctx`` (default body limit), its token noted for ``client_for``."""
    app = build_app(ctx)

    class Server(HttpServer):
        async def __aenter__(self) -> Server:
            await super().__aenter__()
            _TOKENS[self.port] = client_token(ctx.config)
            return self

    return Server(app, "127.0.0.1", 0)


@pytest.fixture
async def server(ctx: ApiContext) -> AsyncIterator[HttpServer]:
    """The API on the test context, with the default body limit (imports send 1,000 rows)."""
    async with serve(ctx) as srv:
        yield srv


def client_for(srv: HttpServer, **server: object) -> DaemonClient:
    """A client of ``srv`` holding its token, unless ``server`` names a ``token_env``."""
    token = None if "token_env" in server else _TOKENS.get(srv.port)
    return DaemonClient(ServerConfig(host="127.0.0.1", port=srv.port, **server), token=token)  # type: ignore[arg-type]


def count(event_id: str, qty: int, sku: str = "TEE") -> dict[str, object]:
    return {"id": event_id, "type": "stock.counted", "location": "wh-east", "sku": sku,
            "on_hand": qty}


# --- the client --------------------------------------------------------------------------------


async def test_post_events_waits_for_the_results(server: HttpServer) -> None:
    async with client_for(server) as client:
        reply = await client.post_events([count("c-1", 7)], wait=5)
        assert reply["accepted"] == 1
        assert reply["ids"] == ["c-1"]
        assert reply["results"] == {"c-1": {"outcome": "applied"}}
        view = await client.stock("TEE")
    assert view is not None
    assert view["locations"]["wh-east"]["on_hand"] == 7


async def test_post_events_without_wait_only_records(
    server: HttpServer, redis: aioredis.Redis
) -> None:
    async with client_for(server) as client:
        reply = await client.post_events([count("c-1", 7), count("c-2", 8, "CAP")])
    assert reply == {"accepted": 2, "ids": ["c-1", "c-2"]}
    assert await redis.xlen(STREAM) == 2


async def test_unknown_sku_and_order_are_none(server: HttpServer) -> None:
    async with client_for(server) as client:
        assert await client.stock("NEVER") is None
        assert await client.order("web", "404") is None
        await client.post_events(
            [count("c", 3), {"id": "o", "type": "order.created", "channel": "web",
                             "order_id": "A-1", "lines": [{"sku": "TEE", "qty": 2}]}],
            wait=5,
        )
        order = await client.order("web", "A-1")
    assert order is not None
    assert order["state"] == "reserved"


async def test_skus_with_url_characters_round_trip(server: HttpServer) -> None:
    async with client_for(server) as client:
        for sku in ("A/B", "50%OFF", "Q?x=1#frag", "CAFÉ"):
            await client.post_events([count(f"id-{len(sku)}", 1, sku)], wait=5)
            view = await client.stock(sku)
            assert view is not None and view["sku"] == sku


async def test_errors_come_back_typed(server: HttpServer) -> None:
    async with client_for(server) as client:
        with pytest.raises(UnknownEventLocation) as bad_location:
            await client.post_events([{**count("x", 1), "location": "nowhere"}])
        assert bad_location.value.http_status == 400
        assert "nowhere" in bad_location.value.message
        with pytest.raises(MalformedEvent) as malformed:
            await client.post_events([{**count("x", 1), "on_hand": -1}])
        assert "$[0].on_hand" in malformed.value.message
        with pytest.raises(UnknownChannel):
            await client.order("etsy", "1")


async def test_a_store_outage_is_store_unavailable(down_ctx: ApiContext) -> None:
    async with serve(down_ctx) as srv:
        async with client_for(srv) as client:
            assert await client.alive()  # the daemon answers, its store does not
            with pytest.raises(StoreUnavailable):
                await client.post_events([count("x", 1)])
            with pytest.raises(StoreUnavailable):
                await client.stock("TEE")


async def test_a_stopped_daemon_is_daemon_unavailable() -> None:
    port = closed_port()
    async with DaemonClient(ServerConfig(host="0.0.0.0", port=port)) as client:
        assert client.base_url == f"http://127.0.0.1:{port}"
        assert not await client.alive()
        with pytest.raises(DaemonUnavailable) as down:
            await client.post_events([count("x", 1)])
        assert f"127.0.0.1:{port}" in down.value.message
        with pytest.raises(DaemonUnavailable):
            await client.stock("TEE")


async def test_the_token_comes_from_token_env(
    token_ctx: ApiContext, server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_for(server, token_env=TOKEN_ENV) as client:
        assert await client.stock("NEVER") is None  # authorised: 404, not 401

    monkeypatch.setenv("SOME_OTHER_TOKEN", "guess")
    async with client_for(server, token_env="SOME_OTHER_TOKEN") as client:
        with pytest.raises(Forbidden):
            await client.stock("TEE")

    async with client_for(server, token_env="NOT_SET_ANYWHERE") as client:
        with pytest.raises(Unauthorized) as refused:
            await client.stock("TEE")
        assert "$NOT_SET_ANYWHERE" in refused.value.message
        assert await client.alive()  # health needs no token


# --- the CLI through the daemon ----------------------------------------------------------------


def write_config(folder: Path, redis_url: str, port: int) -> Path:
    path = folder / "config.toml"
    path.write_text(
        # data_dir: where the test server's app generated the API token the CLI reads.
        f'[redis]\nurl = "{redis_url}"\ndata_dir = "."\n\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n\n'
        '[[locations]]\nid = "wh-east"\npriority = 10\n\n'
        '[[locations]]\nid = "wh-west"\npriority = 20\n\n'
        '[[channels]]\nid = "web"\nkind = "shopify"\noptions = { location_id = 1 }\n'
    )
    return path


class Done(msgspec.Struct):
    returncode: int
    stdout: str
    stderr: str


async def cli(config: Path, *args: str) -> Done:
    """``invsync ARGS -c CONFIG`` as a subprocess, awaited (the server keeps serving)."""
    proc = await asyncio.create_subprocess_exec(
        INVSYNC, *args, "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def live(
    server: HttpServer, redis_url: str, tmp_path: Path
) -> AsyncIterator[Path]:
    """A config whose daemon (the test server) is running."""
    yield write_config(tmp_path, redis_url, server.port)


@pytest.fixture
def stopped(redis_url: str, tmp_path: Path) -> Path:
    """A config whose daemon is not running (nothing listens on its port)."""
    return write_config(tmp_path, redis_url, closed_port())


async def test_stock_set_goes_through_the_daemon(live: Path, redis: aioredis.Redis) -> None:
    done = await cli(live, "stock", "set", "TEE", "--location", "wh-east", "--on-hand", "9",
                     "--event-id", "count-1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("TEE  (version 1)")
    # The daemon's view (it knows what channels were sent): channel, available, pushed, when.
    assert re.search(r"(?m)^web +9 +9 +\S", done.stdout), done.stdout
    rows = await redis.xrange(STREAM)
    assert [(json.loads(f[b"e"])["id"], f[b"src"]) for _, f in rows] == [("count-1", b"http")]

    done = await cli(live, "stock", "adjust", "TEE", "--location", "wh-east", "--delta", "-2")
    assert done.returncode == 0, done.stderr
    shown = await cli(live, "stock", "show", "TEE", "--json")
    view = json.loads(shown.stdout)
    assert view["locations"]["wh-east"]["on_hand"] == 7
    assert view["channels"]["web"]["pushed"] == 7
    assert await redis.xlen(STREAM) == 2


async def test_a_refused_change_exits_1_with_its_code(live: Path) -> None:
    await cli(live, "stock", "set", "TEE", "--location", "wh-east", "--on-hand", "5")
    done = await cli(live, "stock", "adjust", "TEE", "--location", "wh-east", "--delta", "-6")
    assert done.returncode == 1
    assert "NEGATIVE_STOCK" in done.stderr
    view = json.loads((await cli(live, "stock", "show", "TEE", "--json")).stdout)
    assert view["locations"]["wh-east"]["on_hand"] == 5


async def test_a_malformed_change_exits_2(live: Path, redis: aioredis.Redis) -> None:
    done = await cli(live, "stock", "set", "TEE", "--location", "wh-east", "--on-hand", "1",
                     "--event-id", "has{braces}")
    assert done.returncode == 2, done.stderr
    assert await redis.xlen(STREAM) == 0


async def test_set_and_adjust_refuse_when_the_daemon_is_not_running(
    stopped: Path, redis: aioredis.Redis
) -> None:
    for command in (
        ["stock", "set", "TEE", "--location", "wh-east", "--on-hand", "3"],
        ["stock", "adjust", "TEE", "--location", "wh-east", "--delta", "3"],
    ):
        done = await cli(stopped, *command)
        assert done.returncode == 1
        assert "is not running" in done.stderr
        assert "127.0.0.1:" in done.stderr
        assert "--direct" in done.stderr
    assert await redis.exists("inv:{TEE}") == 0


async def test_direct_changes_a_stopped_daemons_store_and_show_reads_it(stopped: Path) -> None:
    done = await cli(stopped, "stock", "set", "TEE", "--location", "wh-east", "--on-hand", "4",
                     "--direct")
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    done = await cli(stopped, "stock", "adjust", "TEE", "--location", "wh-east", "--delta", "1",
                     "--direct")
    assert done.returncode == 0, done.stderr
    shown = await cli(stopped, "stock", "show", "TEE", "--json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["locations"]["wh-east"]["on_hand"] == 5
    assert view["channels"]["web"]["pushed"] is None  # read from the store, not the daemon
    missing = await cli(stopped, "stock", "show", "NEVER")
    assert missing.returncode == 1 and "UNKNOWN_SKU" in missing.stderr


async def test_direct_warns_when_the_daemon_runs(live: Path) -> None:
    done = await cli(live, "stock", "set", "TEE", "--location", "wh-east", "--on-hand", "4",
                     "--direct")
    assert done.returncode == 0, done.stderr
    assert "warning" in done.stderr and "is running" in done.stderr


def big_csv(folder: Path, rows: int) -> Path:
    path = folder / "stock.csv"
    lines = ["sku,location,on_hand"] + [
        f"SKU-{i // 2},{('wh-east', 'wh-west')[i % 2]},{i % 97}" for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_import_goes_through_the_daemon_in_chunks(
    live: Path, redis: aioredis.Redis
) -> None:
    csv_file = big_csv(live.parent, 2500)
    done = await cli(live, "stock", "import", str(csv_file))
    assert done.returncode == 0, done.stderr
    assert "2500 applied, 0 already applied, 0 refused" in done.stdout
    assert await redis.xlen(STREAM) == 2500
    done = await cli(live, "stock", "import", str(csv_file))
    assert "0 applied, 2500 already applied, 0 refused" in done.stdout
    view = json.loads((await cli(live, "stock", "show", "SKU-1249", "--json")).stdout)
    assert view["locations"]["wh-west"]["on_hand"] == 2499 % 97


async def test_import_loads_a_stopped_daemons_store_directly(
    stopped: Path, redis: aioredis.Redis
) -> None:
    csv_file = big_csv(stopped.parent, 10)
    done = await cli(stopped, "stock", "import", str(csv_file))
    assert done.returncode == 0, done.stderr
    assert "10 applied" in done.stdout
    assert await redis.xlen(STREAM) == 0
    assert await redis.exists("inv:{SKU-4}") == 1


async def test_a_bad_import_file_sends_nothing(live: Path, redis: aioredis.Redis) -> None:
    path = live.parent / "bad.csv"
    path.write_text("sku,location,on_hand\nTEE,wh-east,3\nCAP,wh-north,1\n")
    done = await cli(live, "stock", "import", str(path))
    assert done.returncode == 2
    assert "nothing imported" in done.stderr
    assert await redis.xlen(STREAM) == 0
