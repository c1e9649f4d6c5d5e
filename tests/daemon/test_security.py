"""Secure by default (daemon/security.py), over real loopback HTTP and websockets, a real store and
real ``invsync`` processes: the API token generated on first start (0600, reused), the browser
checks (``Origin``, ``Host``, ``Content-Type``), the page's sign-in link and session cookie, the
feed's ``Origin`` check, ``[server] auth = "none"`` on loopback only, and the CLI finding the token
with no extra step.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import redis.asyncio as aioredis
import websockets
from websockets.asyncio.client import connect

from invsync.core.config import ConfigError, RedisConfig, ServerConfig, load_config
from invsync.daemon.client import DaemonClient
from invsync.daemon.feed import FeedHub
from invsync.daemon.http import build_app
from invsync.daemon.intake import STREAM
from invsync.daemon.page import page_routes
from invsync.daemon.security import (
    TOKEN_FILE,
    AuthMisconfigured,
    Unauthorized,
    client_token,
    cookie_name,
    token_path,
)
from invsync.daemon.server import HttpServer
from tests.daemon import test_http
from tests.daemon.helpers import (
    LOCATIONS,
    Daemon,
    api_token,
    base_url,
    data_dir,
    ok,
    write_config,
)
from tests.daemon.test_http import ApiContext

ctx = test_http.ctx  # the API's test context (a real engine and intake on the test store)

EVIL = "http://evil.example"


def zero(event_id: str = "evil-1") -> bytes:
    """The attack of the issue: a count that zeroes the stock."""
    return json.dumps(
        [{"id": event_id, "type": "stock.counted", "sku": "TEE", "location": "wh-east",
          "on_hand": 0}]
    ).encode()


async def _snapshot(skus: list[str], channels: list[str]) -> list[dict[str, Any]]:
    return [{"sku": "TEE", "channel": "web", "available": 5, "version": 1}]


@pytest.fixture
async def api(ctx: ApiContext) -> AsyncIterator[HttpServer]:
    """The API with the feed and the page, on the default config (the token generated in the
    data directory)."""
    async with FeedHub() as hub:
        app = build_app(ctx, routes=[hub.route(_snapshot), *page_routes()])
        async with HttpServer(app, "127.0.0.1", 0) as server:
            yield server


async def call(
    server: HttpServer, method: str, path: str, *, data: bytes | None = None, **headers: str
) -> tuple[int, Any, Any]:
    """(status, decoded body, response headers) of one request with exactly ``headers``."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, server.url + path, data=data, headers=headers, allow_redirects=False
        ) as resp,
    ):
        raw = await resp.read()
        body = json.loads(raw) if resp.content_type == "application/json" else raw.decode()
        return resp.status, body, resp.headers


def bearer(ctx: ApiContext) -> str:
    token = client_token(ctx.config)
    assert token is not None
    return f"Bearer {token}"


# --- the token ---------------------------------------------------------------------------------


async def test_the_token_is_generated_once_private_and_reused(ctx: ApiContext) -> None:
    path = token_path(ctx.config)
    assert not path.exists()
    build_app(ctx)
    token = path.read_text().strip()
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    build_app(ctx)  # a restart: the same token
    assert path.read_text().strip() == token
    assert client_token(ctx.config) == token  # what the CLI sends

    path.chmod(0o644)  # readable by other users: refused, the daemon does not start
    with pytest.raises(AuthMisconfigured) as refused:
        build_app(ctx)
    assert "chmod 600" in refused.value.message and str(path) in refused.value.message


async def test_weak_or_missing_tokens_stop_the_start(
    ctx: ApiContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEC_TEST_TOKEN", "short")
    ctx.config = msgspec.structs.replace(
        ctx.config, server=ServerConfig(token_env="SEC_TEST_TOKEN")
    )
    with pytest.raises(AuthMisconfigured, match=r"\$SEC_TEST_TOKEN holds a 5-character token"):
        build_app(ctx)
    ctx.config = msgspec.structs.replace(
        ctx.config, server=ServerConfig(tokens={"ana": "SEC_TEST_UNSET"})
    )
    monkeypatch.delenv("SEC_TEST_UNSET", raising=False)
    with pytest.raises(AuthMisconfigured, match=r"server\.tokens\.ana names \$SEC_TEST_UNSET"):
        build_app(ctx)


# --- the measured holes: foreign origin, text/plain, foreign Host ------------------------------


async def test_a_text_plain_post_from_a_foreign_origin_is_refused_and_records_nothing(
    ctx: ApiContext, api: HttpServer, redis: aioredis.Redis
) -> None:
    # As a browser would send it from another site's page, even with the session cookie.
    status, _, headers = await call(api, "GET", f"/?token={client_token(ctx.config)}")
    assert status == 303
    cookie = headers["Set-Cookie"].split(";")[0]
    status, body, _ = await call(
        api, "POST", "/v1/events", data=zero(), Origin=EVIL, Cookie=cookie,
        **{"Content-Type": "text/plain"},
    )
    assert (status, body["error"]["code"]) == (403, "ORIGIN_NOT_ALLOWED")
    assert EVIL in body["error"]["message"]
    # A browser request without Origin that says it is cross-site is refused too.
    status, body, _ = await call(
        api, "POST", "/v1/events", data=zero(), Cookie=cookie,
        **{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
    )
    assert (status, body["error"]["code"]) == (403, "ORIGIN_NOT_ALLOWED")
    # Not JSON, even with the right token and no Origin: 415.
    status, body, _ = await call(
        api, "POST", "/v1/events", data=zero(), Authorization=bearer(ctx),
        **{"Content-Type": "text/plain"},
    )
    assert (status, body["error"]["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    assert "application/json" in body["error"]["message"]
    status, body, _ = await call(
        api, "POST", "/v1/events", data=zero(), Authorization=bearer(ctx)
    )
    assert status == 415
    assert await redis.xlen(STREAM) == 0

    # The same body from the page itself (same origin, cookie, JSON) goes through.
    status, body, _ = await call(
        api, "POST", "/v1/events", data=zero("ok-1"), Cookie=cookie,
        Origin=api.url, **{"Content-Type": "application/json"},
    )
    assert (status, body["ids"]) == (202, ["ok-1"])
    assert await redis.xlen(STREAM) == 1


async def test_a_foreign_host_is_refused_even_with_the_token(
    ctx: ApiContext, api: HttpServer, redis: aioredis.Redis
) -> None:
    json_body = {"Content-Type": "application/json", "Authorization": bearer(ctx)}
    status, body, _ = await call(
        api, "POST", "/v1/events", data=zero(), Host=f"evil.example:{api.port}", **json_body
    )
    assert (status, body["error"]["code"]) == (403, "HOST_NOT_ALLOWED")
    assert "evil.example" in body["error"]["message"]
    status, body, _ = await call(api, "GET", "/", Host="evil.example")
    assert (status, body["error"]["code"]) == (403, "HOST_NOT_ALLOWED")  # nor the page
    assert await redis.xlen(STREAM) == 0
    for host in (f"localhost:{api.port}", f"[::1]:{api.port}", "192.0.2.7", "app.localhost"):
        status, body, _ = await call(api, "GET", "/v1/stock/NONE", Host=host, **json_body)
        assert (status, body["error"]["code"]) == (404, "UNKNOWN_SKU"), host
    # Open paths (health, metrics, signed webhooks) are not the browser's business.
    assert (await call(api, "GET", "/healthz", Host="evil.example"))[0] == 200


async def test_allowed_hosts_and_origins_extend_the_lists(
    ctx: ApiContext, api: HttpServer
) -> None:
    ctx.config = msgspec.structs.replace(
        ctx.config,
        server=ServerConfig(
            allowed_hosts=("inventory.example.com",),
            allowed_origins=("https://ops.example.com",),
        ),
    )
    headers = {"Authorization": bearer(ctx)}
    status, _, _ = await call(api, "GET", "/v1/stock/NONE", Host="Inventory.Example.com", **headers)
    assert status == 404
    status, _, _ = await call(
        api, "GET", "/v1/stock/NONE", Origin="https://ops.example.com", **headers
    )
    assert status == 404
    for origin in ("https://ops.example.com.evil.example", "null", "http://ops.example.com"):
        status, body, _ = await call(api, "GET", "/v1/stock/NONE", Origin=origin, **headers)
        assert (status, body["error"]["code"]) == (403, "ORIGIN_NOT_ALLOWED"), origin


# --- credentials -------------------------------------------------------------------------------


async def test_v1_and_the_feed_need_a_credential_by_default(
    ctx: ApiContext, api: HttpServer
) -> None:
    status, body, headers = await call(api, "GET", "/v1/stock/TEE")
    assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED")
    assert str(token_path(ctx.config)) in body["error"]["message"]  # where the token is
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, body, _ = await call(api, "GET", "/v1/stock/TEE", Authorization="Bearer " + "x" * 43)
    assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(api.url.replace("http", "ws") + "/v1/feed", open_timeout=5):
            pass
    assert refused.value.response.status_code == 401
    for path in ("/healthz", "/readyz", "/metrics", "/", "/static/app.js"):
        assert (await call(api, "GET", path))[0] == 200, path


async def test_the_sign_in_link_sets_a_session_cookie_and_goes_to_the_clean_url(
    ctx: ApiContext, api: HttpServer
) -> None:
    token = client_token(ctx.config)
    assert token is not None
    status, _, headers = await call(api, "GET", f"/?token={token}")
    assert (status, headers["Location"]) == (303, "./")
    assert headers["Cache-Control"] == "no-store"
    set_cookie = headers["Set-Cookie"]
    name, _, rest = set_cookie.partition("=")
    value = rest.split(";")[0]
    assert name == cookie_name(api.port)
    assert "httponly" in set_cookie.lower() and "samesite=strict" in set_cookie.lower()
    assert token not in value  # the cookie proves the token, it does not carry it
    cookie = f"{name}={value}"

    status, body, _ = await call(api, "GET", "/v1/stock/NONE", Cookie=cookie)
    assert (status, body["error"]["code"]) == (404, "UNKNOWN_SKU")  # through the guard
    status, body, _ = await call(api, "GET", "/?token=not-the-token")
    assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
    status, body, _ = await call(api, "GET", "/v1/stock/NONE", Cookie=f"{name}=operator.f00d")
    assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED")

    # The feed takes the cookie from its own page, and refuses any other origin even with it.
    feed = api.url.replace("http", "ws") + "/v1/feed"
    async with connect(feed, additional_headers={"Cookie": cookie}, origin=api.url) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"op": "subscribe"}))
        assert json.loads(await ws.recv())["type"] == "snapshot"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(feed, additional_headers={"Cookie": cookie}, origin=EVIL):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body)["error"]["code"] == "ORIGIN_NOT_ALLOWED"

    # Rotating the token signs every browser out.
    path = token_path(ctx.config)
    path.unlink()
    ctx.config = msgspec.structs.replace(ctx.config)  # a reload: a new config object
    build_app(ctx)  # generates a new token, as a restart does
    status, body, _ = await call(api, "GET", "/v1/stock/NONE", Cookie=cookie)
    assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED")
    assert "session is no longer valid" in body["error"]["message"]


async def test_a_client_without_the_token_file_says_where_it_looked(
    ctx: ApiContext, api: HttpServer, tmp_path: Path
) -> None:
    elsewhere = msgspec.structs.replace(
        ctx.config,
        redis=RedisConfig(data_dir=tmp_path / "other"),
        server=ServerConfig(port=api.port),
    )
    async with DaemonClient.for_config(elsewhere) as client:
        with pytest.raises(Unauthorized) as refused:
            await client.stock("TEE")
    assert str(tmp_path / "other" / TOKEN_FILE) in refused.value.message

    (tmp_path / "other" / TOKEN_FILE).mkdir(parents=True, mode=0o700)  # not a file
    async with DaemonClient.for_config(elsewhere) as client:
        assert await client.alive()  # health needs no token: the client still works
        with pytest.raises(Unauthorized) as refused:
            await client.stock("TEE")
    assert "cannot read the API token" in refused.value.message


# --- auth = "none" -----------------------------------------------------------------------------


def test_auth_none_is_refused_unless_the_host_is_loopback(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(LOCATIONS + '\n[server]\nhost = "0.0.0.0"\nauth = "none"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert refused.value.key == "server.auth" and "loopback" in refused.value.message
    path.write_text(LOCATIONS + '\n[server]\nauth = "none"\ntoken_env = "SOME_TOKEN"\n')
    with pytest.raises(ConfigError, match=r"server\.auth"):
        load_config(path)
    path.write_text(LOCATIONS + '\n[server]\ntokens = { operator = "SOME_TOKEN" }\n')
    with pytest.raises(ConfigError, match=r"server\.tokens\.operator"):
        load_config(path)
    path.write_text(LOCATIONS + '\n[server]\nallowed_origins = ["https://ops.example.com/x"]\n')
    with pytest.raises(ConfigError, match=r"server\.allowed_origins\[0\]"):
        load_config(path)
    path.write_text(LOCATIONS + '\n[server]\nhost = "127.0.0.1"\nauth = "none"\n')
    assert load_config(path).server.auth == "none"


async def test_auth_none_still_refuses_foreign_origins(ctx: ApiContext, api: HttpServer) -> None:
    ctx.config = msgspec.structs.replace(ctx.config, server=ServerConfig(auth="none"))
    status, _, _ = await call(api, "GET", "/v1/stock/NONE")
    assert status == 404  # open on loopback, by choice
    status, body, _ = await call(
        api, "POST", "/v1/events", data=zero(), Origin=EVIL, **{"Content-Type": "text/plain"}
    )
    assert (status, body["error"]["code"]) == (403, "ORIGIN_NOT_ALLOWED")


# --- the real daemon ---------------------------------------------------------------------------


def test_the_daemon_generates_its_token_and_the_cli_uses_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, LOCATIONS)
    with Daemon(config) as daemon:
        daemon.wait_for("started", timeout=30)
        path = data_dir(config) / TOKEN_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = api_token(config)
        # Not a terminal: the log says where the page is and where the token is, not the token.
        page = daemon.wait_for("live_page")
        assert page["url"] == base_url(config) + "/"
        assert str(path) in page["sign_in"]
        assert token not in daemon.output()
        # The operator commands find the token themselves.
        ok(config, "stock", "set", "TEE", "--location", "wh-east", "--on-hand", "7")
        view = json.loads(ok(config, "stock", "show", "TEE", "--json"))
        assert view["locations"]["wh-east"]["on_hand"] == 7
        assert daemon.stop() == 0
    with Daemon(config, name="again") as daemon:  # a restart keeps the token
        daemon.wait_for("started", timeout=30)
        assert api_token(config) == token
        assert daemon.stop() == 0
    os.chmod(path, 0o640)  # readable by the group: the daemon refuses to start on it
    with Daemon(config, name="unsafe") as daemon:
        assert daemon.proc is not None
        assert daemon.proc.wait(timeout=30) != 0
        assert "chmod 600" in daemon.output()


def test_the_sign_in_link_is_logged_only_to_a_terminal(ctx: ApiContext) -> None:
    from structlog.testing import capture_logs

    from invsync.daemon.security import announce_page, page_link

    build_app(ctx)
    token = client_token(ctx.config)
    assert token is not None
    link = page_link(ctx.config, 8123)
    assert link == f"http://127.0.0.1:8123/?token={token}"
    with capture_logs() as logged:
        announce_page(ctx.config, 8123, interactive=True)
        announce_page(ctx.config, 8123, interactive=False)
    terminal, journal = logged
    assert terminal["url"] == link
    assert journal["url"] == "http://127.0.0.1:8123/" and token not in json.dumps(journal)
