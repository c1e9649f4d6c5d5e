"""The simulator server: every simulated channel under its ``url`` path, on one port.

``invsync simulate`` runs it from the config. Channels whose ``url`` starts with
``http://{simulator.host}:{simulator.port}/`` are mounted at the rest of that url, each by its
kind's module (``simulators/<kind>.py``, a ``create(channel, faults, rng)``). Control routes for
operators and tests live under ``/_sim``:

- ``GET /_sim/channels``: each channel's catalogue (``listed``), quantities, call counts and
  faults.
- ``GET /_sim/demo``: what the living demo did (orders shipped and cancelled, store sales,
  receipts, incoming units, surprises staged); 404 when it does not run.
- ``PUT /_sim/{channel}/quantities/{sku}`` ``{"quantity": N}``: change it behind our back (the
  SKU is listed on that channel from then on).
- ``POST /_sim/{channel}/catalogue`` ``{"skus": [...]}``: the seller lists those SKUs on that
  channel; ``POST /_sim/catalogue`` lists them on every channel. A simulator refuses a quantity
  for a SKU that is not listed, as its marketplace does.
- ``PUT /_sim/{channel}/faults``: replace the channel's faults (``[simulator] faults`` shape).
- ``POST /_sim/{channel}/orders`` ``{"lines": [{"sku", "qty"}]}`` (optional): a buyer orders;
  its notification goes to the daemon at once. ``POST /_sim/{channel}/orders/{id}/{status}``
  (cancelled, fulfilled, refunded) changes it and notifies.

With ``[simulator] orders_per_minute`` > 0 a generator places random orders on the channels
that notify, against listed stock, so the daemon sees realistic traffic. Given the daemon's API
token (``token``), the living demo (``demo.py``) runs too: orders are cancelled or shipped,
stores sell, locations receive stock, and now and then an oversell or a drift is staged;
``GET /_sim/demo`` shows what it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import random
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import urlsplit

import aiohttp
import msgspec
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..core.config import Channel, Config, Faults, SimulatorConfig, resolve_secret
from ..core.fulfillment_config import WebhookFulfillment
from .core import NO_FAULTS, SimChannel, SimLine, SimOrder, json_response
from .daemon_api import DaemonApi
from .demo import Demo
from .warehouse import SimWarehouse

__all__ = ["SIMULATOR_MODULES", "Simulator", "make_sim_channel"]

log = structlog.get_logger("invsync.simulate")

#: Channel kind -> the module of this package (``simulators/<name>.py``) that simulates it.
SIMULATOR_MODULES: dict[str, str] = {
    "webhook": "webhook",
    "shopify": "shopify",
    "amazon": "amazon",
    "ebay": "ebay",
    "walmart": "walmart",
    "tiktok": "tiktok",
}


class _Lines(msgspec.Struct, kw_only=True):
    lines: list[SimLine] | None = None
    order_id: str | None = None


class _Quantity(msgspec.Struct, kw_only=True):
    quantity: int


class _Catalogue(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    skus: list[str]


def make_sim_channel(
    channel: Channel, faults: Faults = NO_FAULTS, rng: random.Random | None = None
) -> SimChannel | None:
    """The simulator of ``channel``'s kind, or None when the kind has none.

    Raises ValueError (MissingSecret names the variable) when the channel's config cannot work.
    """
    name = SIMULATOR_MODULES.get(channel.kind)
    if name is None:
        return None
    # Imported on first use: `invsync simulate` loads only the marketplaces its config names.
    module = importlib.import_module(f"{__package__}.{name}")
    create = cast(Callable[[Channel, Faults, random.Random], SimChannel], module.create)
    return create(channel, faults, rng or random.Random())


class Simulator:
    """The simulator server as an async context manager.

    ``port`` 0 picks a free port (``url`` tells which). ``daemon_url`` is where order
    notifications go (``{daemon_url}/webhooks/{channel}``); None keeps them to ``sent``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        daemon_url: str | None = None,
        orders_per_minute: float = 0.0,
        seed: int | None = None,
        settings: SimulatorConfig | None = None,
        token: Callable[[], str | None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.daemon_url = daemon_url.rstrip("/") if daemon_url else None
        self.orders_per_minute = orders_per_minute
        self.rng = random.Random(seed)
        #: The demo's settings ([simulator]) and the daemon's API token, read when needed: the
        #: demo runs with both (and a daemon_url).
        self.settings = settings or SimulatorConfig(orders_per_minute=orders_per_minute)
        self.token = token
        #: SKUs listed by list_skus, bundle SKUs (not received, not sold in stores), and the
        #: store locations whose tills sell
        self.catalogue: set[str] = set()
        self.bundles: set[str] = set()
        self.stores: list[str] = []
        self.demo: Demo | None = None
        self.channels: dict[str, SimChannel] = {}
        #: location id -> its simulated warehouse (webhook fulfillment locations)
        self.warehouses: dict[str, SimWarehouse] = {}
        self._shipping: list[asyncio.Task[None]] = []
        #: (channel id, HTTP status from the daemon or None, the order) of each notification
        self.sent: list[tuple[str, int | None, SimOrder]] = []
        self._app = Starlette(routes=self._control_routes())
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._traffic: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        daemon_url: str | None = None,
        token: Callable[[], str | None] | None = None,
    ) -> Simulator:
        """The simulator of every channel in ``config`` whose url points at ``[simulator]``;
        with ``token`` (the daemon's API token, read when needed) the living demo too."""
        sim_cfg = config.simulator
        if daemon_url is None:
            host = config.server.host
            host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            daemon_url = f"http://{host}:{config.server.port}"
        sim = cls(
            host=sim_cfg.host,
            port=sim_cfg.port,
            daemon_url=daemon_url,
            orders_per_minute=sim_cfg.orders_per_minute,
            seed=sim_cfg.seed,
            settings=sim_cfg,
            token=token,
        )
        sim.bundles = {b.sku for b in config.bundles}
        sim.stores = [loc.id for loc in config.locations if loc.kind == "store"]
        prefix = f"http://{sim_cfg.host}:{sim_cfg.port}/"
        for channel in config.channels:
            if not channel.enabled or not (channel.url or "").startswith(prefix):
                continue
            faults = sim_cfg.channel_faults.get(channel.id, sim_cfg.faults)
            if sim.add(channel, faults) is None:
                log.warning("channel_not_simulated", channel=channel.id, kind=channel.kind)
        for location in config.locations:
            fulfillment = location.fulfillment
            if not isinstance(fulfillment, WebhookFulfillment):
                continue
            if not fulfillment.url.startswith(prefix):
                continue
            secret = resolve_secret(fulfillment.secret_env)
            if not secret:
                log.warning("warehouse_not_simulated", location=location.id,
                            reason=f"{fulfillment.secret_env} is not set")
                continue
            sim.add_warehouse(location.id, urlsplit(fulfillment.url).path, secret,
                              pick_s=sim_cfg.pick_s)
        return sim

    def add_warehouse(
        self, location: str, path: str, secret: str, *, pick_s: float = 15.0
    ) -> SimWarehouse:
        """Mount a simulated warehouse for ``location`` at ``path``."""
        warehouse = SimWarehouse(location, secret, pick_s=pick_s,
                                 rng=random.Random(self.rng.random()))
        self.warehouses[location] = warehouse
        self._app.router.routes.append(warehouse.route(path.rstrip("/") or "/"))
        return warehouse

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        return f"http://{self.host}:{self.port}"

    def add(self, channel: Channel, faults: Faults = NO_FAULTS) -> SimChannel | None:
        """Mount the simulator of ``channel`` at its url's path (may be called while running)."""
        sim = make_sim_channel(channel, faults, random.Random(self.rng.random()))
        if sim is None:
            return None
        path = urlsplit(channel.url or "").path.rstrip("/")
        if not path:
            raise ValueError(f"channel '{channel.id}': its url needs a path to mount it under")
        self.channels[channel.id] = sim
        for route in sim.routes():
            # Prefixed routes, not a Mount: a Mount answers its own path with a 307 to "path/".
            assert isinstance(route, Route), "simulators declare plain routes"
            full = (path + route.path).rstrip("/") or "/"
            methods = sorted(route.methods or ()) or None
            self._app.router.routes.append(Route(full, route.endpoint, methods=methods))
        return sim

    def number_orders_from(self, first: int) -> None:
        """Number every channel's next orders from ``first`` (see SimChannel)."""
        for sim in self.channels.values():
            sim.number_orders_from(first)

    def channel(self, channel_id: str) -> SimChannel:
        """The simulated channel with that id (KeyError when none)."""
        return self.channels[channel_id]

    def list_skus(self, skus: Iterable[str], channel_id: str | None = None) -> int:
        """List ``skus`` on one channel (KeyError when there is no such channel) or, with None,
        on every channel; how many channels that was."""
        wanted = list(skus)
        self.catalogue.update(wanted)
        targets = (
            list(self.channels.values()) if channel_id is None else [self.channels[channel_id]]
        )
        for sim in targets:
            sim.list_skus(wanted)
        return len(targets)

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        config = uvicorn.Config(
            self._app, host=self.host, port=self.port, log_level="warning", lifespan="off",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(), name="simulator-http")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start (port in use, ...)
                raise RuntimeError("the simulator server stopped before it started")
            await asyncio.sleep(0.01)
        if self.port == 0:
            self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self._session = aiohttp.ClientSession()
        if self.daemon_url:
            for warehouse in self.warehouses.values():
                self._shipping.append(asyncio.create_task(
                    warehouse.run(self._session, self.daemon_url),
                    name=f"warehouse-{warehouse.location}",
                ))
        if self.daemon_url and self.token is not None:
            self.demo = Demo(
                settings=self.settings, channels=self.channels, notify=self.notify,
                api=DaemonApi(self._session, self.daemon_url, self.token),
                warehouses=set(self.warehouses), stores=self.stores,
                skus=sorted(self.catalogue - self.bundles), rng=random.Random(self.rng.random()),
            )
            self.demo.start()
        if self.orders_per_minute > 0 and self.daemon_url:
            self._traffic = asyncio.create_task(self._generate_orders(), name="simulator-orders")
        log.info("simulator_started", url=self.url, channels=sorted(self.channels))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in [*self._shipping, *([self._traffic] if self._traffic else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.demo is not None:
            await self.demo.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await self._task
        if self._session is not None:
            await self._session.close()

    async def serve_forever(self) -> None:
        """Run until cancelled (``invsync simulate``)."""
        assert self._task is not None, "enter the simulator first"
        await asyncio.shield(self._task)

    # -- orders -----------------------------------------------------------------------------

    async def notify(self, channel_id: str, order: SimOrder) -> int | None:
        """Send ``order``'s notification to the daemon; the daemon's HTTP status (None: no
        daemon, no notification format, or it did not answer)."""
        sim = self.channels[channel_id]
        made = sim.order_notification(order)
        status: int | None = None
        if made is not None and self.daemon_url and self._session is not None:
            headers, body = made
            try:
                async with self._session.post(
                    f"{self.daemon_url}/webhooks/{channel_id}",
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as resp:
                    status = resp.status
                    if status >= 300:
                        log.warning("notification_refused", channel=channel_id, status=status,
                                    body=(await resp.read())[:200].decode("utf-8", "replace"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("notification_failed", channel=channel_id, error=str(exc))
        self.sent.append((channel_id, status, order))
        return status

    def _notifying(self) -> list[SimChannel]:
        """Channels the order generator places orders on: those with stock that notify the
        daemon, and those whose orders the daemon polls (eBay: ``orders_polled``)."""
        return [
            sim for sim in self.channels.values()
            if any(qty > 0 for qty in sim.quantities.values())
            and (
                getattr(sim, "orders_polled", False)
                or sim.order_notification(SimOrder(order_id="probe", lines=())) is not None
            )
        ]

    async def _generate_orders(self) -> None:
        interval = 60.0 / self.orders_per_minute
        while True:
            await asyncio.sleep(self.rng.expovariate(1.0 / interval))
            candidates = self._notifying()
            if not candidates:
                continue
            sim = self.rng.choice(candidates)
            order = sim.place_order()
            if order is None:
                continue
            if self.demo is not None:
                await self.demo.sold(sim.id, order)
            else:
                await self.notify(sim.id, order)

    # -- control routes ---------------------------------------------------------------------

    def _control_routes(self) -> list[BaseRoute]:
        async def channels(request: Request) -> Response:
            return json_response({"channels": [s.state() for s in self.channels.values()]})

        async def demo(request: Request) -> Response:
            if self.demo is None:
                return json_response({"error": "the demo is not running (no daemon token)"}, 404)
            return json_response(self.demo.state())

        def _sim(request: Request) -> SimChannel:
            return self.channels[request.path_params["channel"]]

        async def set_quantity(request: Request) -> Response:
            body = msgspec.json.decode(await request.body(), type=_Quantity)
            _sim(request).set_quantity(request.path_params["sku"], body.quantity)
            return json_response({"ok": True})

        async def list_skus(request: Request) -> Response:
            body = msgspec.json.decode(await request.body(), type=_Catalogue)
            if any(not sku.strip() for sku in body.skus):
                return json_response({"error": "skus: a SKU must not be empty"}, 400)
            channel_id = request.path_params.get("channel")
            count = self.list_skus(body.skus, channel_id)
            return json_response({"ok": True, "channels": count, "skus": len(set(body.skus))})

        async def set_faults(request: Request) -> Response:
            _sim(request).faults = msgspec.json.decode(await request.body(), type=Faults)
            return json_response({"ok": True})

        async def place_order(request: Request) -> Response:
            raw = await request.body()
            body = msgspec.json.decode(raw, type=_Lines) if raw.strip() else _Lines()
            sim = _sim(request)
            order = sim.place_order(body.lines, order_id=body.order_id)
            if order is None:
                return json_response({"error": "nothing is listed on this channel"}, 409)
            status = await self.notify(sim.id, order)
            return json_response({"order": msgspec.to_builtins(order), "daemon_status": status})

        async def change_order(request: Request) -> Response:
            sim = _sim(request)
            status = request.path_params["status"]
            if status not in ("cancelled", "fulfilled", "refunded"):
                return json_response({"error": f"unknown status {status!r}"}, 400)
            order = sim.change_order(request.path_params["order_id"], status)
            daemon = await self.notify(sim.id, order)
            return json_response({"order": msgspec.to_builtins(order), "daemon_status": daemon})

        def guarded(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
            async def run(request: Request) -> Response:
                try:
                    return cast(Response, await handler(request))
                except KeyError as exc:
                    return json_response({"error": f"unknown {exc}"}, 404)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    return json_response({"error": str(exc)}, 400)

            return run

        return [
            Route("/_sim/channels", guarded(channels), methods=["GET"]),
            Route("/_sim/demo", guarded(demo), methods=["GET"]),
            Route("/_sim/{channel}/quantities/{sku:path}", guarded(set_quantity), methods=["PUT"]),
            Route("/_sim/catalogue", guarded(list_skus), methods=["POST"]),
            Route("/_sim/{channel}/catalogue", guarded(list_skus), methods=["POST"]),
            Route("/_sim/{channel}/faults", guarded(set_faults), methods=["PUT"]),
            Route("/_sim/{channel}/orders", guarded(place_order), methods=["POST"]),
            Route(
                "/_sim/{channel}/orders/{order_id}/{status}",
                guarded(change_order),
                methods=["POST"],
            ),
        ]
