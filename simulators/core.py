"""What every simulated marketplace shares: its quantity book, fault injection, order making,
and reading its channel's config (options and the secrets they name).

A ``SimChannel`` is one channel of the config served under its ``url`` path by the simulator
server (``server.py``). Subclasses (one module per marketplace) supply ``routes()``, their own
throttle and error answers, and the marketplace's order notification format. A simulator knows
the credentials the channel's config names (the same environment variables the daemon reads), so
it can tell a right one from a wrong one; it reads them here, not through the adapters.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, ClassVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..core.config import Channel, Faults, resolve_secret

__all__ = [
    "NO_FAULTS",
    "Handler",
    "MissingSecret",
    "SimChannel",
    "SimLine",
    "SimOrder",
    "json_response",
    "option_text",
    "optional_secret",
    "required_secret",
    "secret_if_set",
]

Handler = Callable[[Request], Awaitable[Response]]

_encode = msgspec.json.Encoder().encode

NO_FAULTS = Faults()


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer encoded with msgspec (Structs and dicts alike)."""
    return Response(_encode(body), status_code=status, headers=headers,
                    media_type="application/json")


class MissingSecret(ValueError):
    """A secret the channel's config names is not in the environment (or is empty); the message
    names the config key and the variable, e.g. ``channel 'shop': token_env: environment
    variable SHOP_TOKEN is not set (or empty)``."""

    def __init__(self, channel: str, key: str, env: str | None) -> None:
        self.channel = channel
        self.key = key
        self.env = env
        what = f"environment variable {env} is not set (or empty)" if env else "not configured"
        super().__init__(f"channel '{channel}': {key}: {what}")


def _env_name(channel: Channel, key: str) -> str | None:
    """The variable ``key`` names: a field (``token_env``, ``secret_env``) or ``options.<name>``."""
    if key.startswith("options."):
        value = channel.options.get(key.removeprefix("options."))
        if value is not None and not isinstance(value, str):
            raise ValueError(f"channel '{channel.id}': {key} must name an environment variable")
        return value
    named: str | None = getattr(channel, key)  # token_env, secret_env: str | None
    return named


def required_secret(channel: Channel, key: str) -> str:
    """The secret ``key`` names (``token_env``, ``options.client_secret_env``...); MissingSecret
    when it names none or an unset variable."""
    env = _env_name(channel, key)
    value = resolve_secret(env)
    if value is None:
        raise MissingSecret(channel.id, key, env)
    return value


def optional_secret(channel: Channel, key: str) -> str | None:
    """None when ``key`` names no variable; else its secret (MissingSecret when unset)."""
    return None if _env_name(channel, key) is None else required_secret(channel, key)


def secret_if_set(channel: Channel, key: str) -> str | None:
    """The secret ``key`` names, or None when it names none or the variable is unset: for
    credentials the simulated marketplace may simply not have issued yet."""
    return resolve_secret(_env_name(channel, key))


def option_text(channel: Channel, name: str, default: str | None = None) -> str:
    """``options.<name>`` as text; ValueError naming it when absent or empty (and no default)."""
    value = channel.options.get(name, default)
    if value is None or isinstance(value, bool) or str(value) == "":
        raise ValueError(f"channel '{channel.id}': options.{name} is required for {channel.kind}")
    return str(value)


class SimLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a simulated order."""

    sku: str
    qty: int


class SimOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order placed on a simulated marketplace, before it is put in that marketplace's shape."""

    order_id: str
    lines: tuple[SimLine, ...]
    #: "created", "cancelled", "fulfilled" or "refunded"
    status: str = "created"
    country: str = "US"
    region: str = "CA"
    created_ms: int = 0


class SimChannel:
    """One simulated channel: its catalogue, the quantity it was told per SKU, its faults and
    its call log.

    The catalogue (``listed``) is what the seller has listed on the marketplace: a real
    marketplace refuses a quantity for a SKU the seller never listed there, each in its own way,
    and each simulator answers so for a SKU that ``is_listed`` says is not. SKUs are listed by
    ``list_skus`` (the ``/_sim/.../catalogue`` control route, ``invsync simulate --catalogue``)
    or by setting their quantity behind the daemon's back (``set_quantity``).

    ``clock`` (monotonic) drives the rate limits, ``wall`` (epoch seconds) timestamps.
    """

    kind: ClassVar[str] = ""

    def __init__(
        self,
        channel: Channel,
        *,
        faults: Faults = NO_FAULTS,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.channel = channel
        self.faults = faults
        self.rng = rng or random.Random()
        self.clock = clock
        self.wall = wall
        self.quantities: dict[str, int] = {}
        #: The SKUs the seller has listed on this channel (its catalogue).
        self.listed: set[str] = set()
        #: operation -> answers by outcome, e.g. calls["inventorySetQuantities:throttled"]
        self.calls: Counter[str] = Counter()
        self.log: deque[dict[str, Any]] = deque(maxlen=1000)
        self.orders: dict[str, SimOrder] = {}
        self._order_ids = itertools.count(1001)

    @property
    def id(self) -> str:
        """The channel id (also the last part of the daemon's webhook path)."""
        return self.channel.id

    # -- what subclasses provide ------------------------------------------------------------

    def routes(self) -> Sequence[BaseRoute]:
        """The marketplace's routes, relative to the channel's mount path."""
        raise NotImplementedError

    def throttle_response(self) -> Response:
        """The marketplace's "slow down" answer (default: 429 with Retry-After: 1)."""
        return json_response({"error": "rate limit exceeded"}, 429, {"Retry-After": "1"})

    def error_response(self, status: int) -> Response:
        """The marketplace's answer to an internal failure."""
        return json_response({"error": "internal error", "status": status}, status)

    def order_notification(self, order: SimOrder) -> tuple[dict[str, str], bytes] | None:
        """Headers and body of the marketplace's notification of ``order``, signed as the
        marketplace signs it; None when this channel sends none."""
        return None

    # -- shared behaviour -------------------------------------------------------------------

    def route(self, path: str, handler: Handler, *, methods: list[str], operation: str) -> Route:
        """A route whose handler runs behind fault injection and is counted under ``operation``."""

        async def wrapped(request: Request) -> Response:
            injected = await self.inject_faults(operation)
            response = injected if injected is not None else await handler(request)
            outcome = "ok" if response.status_code < 400 else str(response.status_code)
            self.calls[f"{operation}:{outcome}"] += 1
            self.log.append(
                {"operation": operation, "status": response.status_code, "at": self.wall()}
            )
            return response

        return Route(path, wrapped, methods=methods)

    async def inject_faults(self, operation: str) -> Response | None:
        """Latency always; then at most one of timeout, 5xx, throttle by their rates."""
        f = self.faults
        if f.latency_ms > 0:
            await asyncio.sleep(f.latency_ms / 1000)
        roll = self.rng.random()
        if roll < f.timeout_rate:
            self.calls[f"{operation}:timeout"] += 1
            await asyncio.sleep(f.timeout_s)
            return self.error_response(504)
        roll -= f.timeout_rate
        if roll < f.error_rate:
            return self.error_response(self.rng.choice((500, 502, 503)))
        roll -= f.error_rate
        if roll < f.throttle_rate:
            self.calls[f"{operation}:throttled"] += 1
            return self.throttle_response()
        return None

    def is_listed(self, sku: str) -> bool:
        """Whether the seller has listed ``sku`` on this channel."""
        return sku in self.listed

    def list_skus(self, skus: Iterable[str]) -> None:
        """The seller lists ``skus`` on this channel (nothing in stock until a quantity is set
        or pushed); already listed SKUs stay as they are."""
        self.listed.update(skus)

    def set_quantity(self, sku: str, quantity: int) -> None:
        """Change a quantity behind the daemon's back (a manual edit on the marketplace); a SKU
        given a quantity is listed."""
        self.listed.add(sku)
        self.quantities[sku] = quantity

    def place_order(
        self, lines: Sequence[SimLine] | None = None, *, order_id: str | None = None
    ) -> SimOrder | None:
        """A buyer orders on this marketplace: the units leave its listing at once, as they do
        on the real one. Random lines from listed stock when none are given; None when nothing
        is listed."""
        if lines is None:
            listed = [sku for sku, qty in self.quantities.items() if qty > 0]
            if not listed:
                return None
            sku = self.rng.choice(sorted(listed))
            lines = (SimLine(sku=sku, qty=min(self.quantities[sku], self.rng.choice((1, 1, 2)))),)
        order = SimOrder(
            order_id=order_id or str(next(self._order_ids)),
            lines=tuple(lines),
            region=self.rng.choice(("CA", "NY", "WA", "TX")),
            created_ms=int(self.wall() * 1000),
        )
        for line in order.lines:
            if line.sku in self.quantities:
                self.quantities[line.sku] = max(0, self.quantities[line.sku] - line.qty)
        self.orders[order.order_id] = order
        return order

    def number_orders_from(self, first: int) -> None:
        """Number the next orders placed here from ``first`` (``invsync simulate`` starts each
        run where no earlier run's orders are, so a daemon that kept its store does not take a
        new sale for the redelivery of an old one)."""
        self._order_ids = itertools.count(first)

    def change_order(self, order_id: str, status: str) -> SimOrder:
        """Cancel, fulfil or refund an order placed here; KeyError when there is none."""
        order = msgspec.structs.replace(self.orders[order_id], status=status)
        self.orders[order_id] = order
        if status == "cancelled":
            for line in order.lines:
                if line.sku in self.quantities:
                    self.quantities[line.sku] += line.qty
        return order

    def state(self) -> dict[str, Any]:
        """What ``GET /_sim/channels`` shows of this channel."""
        return {
            "id": self.id,
            "kind": self.kind,
            "listed": sorted(self.listed),
            "quantities": dict(sorted(self.quantities.items())),
            "calls": dict(sorted(self.calls.items())),
            "faults": msgspec.to_builtins(self.faults),
            "orders": len(self.orders),
        }
