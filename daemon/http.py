"""The daemon's HTTP API (Starlette): health, metrics, event intake, webhooks, stock and orders.

``build_app`` takes the running daemon as a ``DaemonContext`` and reads the config through it on
every request (a reload replaces it). Every answer that is not a success is the spec's JSON error
``{"error": {"code", "message"}}``; an event request is validated whole before anything is
recorded, and recorded atomically (``Intake.append``) before the 202, so nothing is half-applied.
Who may call what (credentials, ``Origin``, ``Host``, ``Content-Type``) is ``ApiGuard``'s, in
``daemon/security.py``, in front of every route.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..adapters.base import BadWebhook, ChannelError, ParsesWebhooksAsync
from ..core.config import Config
from ..core.errors import (
    InvalidRequest,
    InvsyncError,
    NotFound,
    UnknownOrder,
    UnknownSku,
)
from ..core.events import (
    BadEvent,
    Event,
    OrderReturned,
    StockAdjusted,
    StockCounted,
    decode_events,
    event_kind,
)
from ..engine import keys
from ..metrics.definitions import EVENTS, REGISTRY
from .context import DaemonContext
from .security import (
    SECURITY_ERRORS,
    ApiGuard,
    AuthMisconfigured,
    Forbidden,
    Unauthorized,
)

__all__ = [
    "API_ERRORS",
    "MAX_BODY",
    "MAX_SMALL_BODY",
    "MAX_WAIT_S",
    "AuthMisconfigured",
    "BadSignature",
    "BadWebhookBody",
    "Forbidden",
    "MalformedEvent",
    "MethodNotAllowed",
    "PayloadTooLarge",
    "Unauthorized",
    "UnknownChannel",
    "UnknownEventLocation",
    "build_app",
]

log = structlog.get_logger("invsync.http")

#: Largest request body taken (a 10,000-event batch fits comfortably).
MAX_BODY = 5 * 1024 * 1024
#: Largest body of the small JSON requests (resolve an exception, ask for a drift check).
MAX_SMALL_BODY = 64 * 1024
#: Longest ``?wait=`` a client may ask for on ``POST /v1/events``.
MAX_WAIT_S = 30.0


# --- the API's own errors (beside the engine's, in core/errors.py) -----------------------------


class MalformedEvent(InvalidRequest):
    """An event body that does not decode or validate; the message names the path."""

    code = "BAD_EVENT"


class UnknownEventLocation(InvalidRequest):
    """An event names a location that is not in the config (the body is wrong: 400)."""

    code = "UNKNOWN_LOCATION"


class UnknownChannel(NotFound):
    """A channel that is not in the config (or, for webhooks, not running)."""

    code = "UNKNOWN_CHANNEL"


class BadWebhookBody(InvalidRequest):
    """A webhook whose signature is fine but whose content the adapter cannot read."""

    code = "BAD_WEBHOOK"


class BadSignature(InvsyncError):
    """A webhook whose signature is missing or does not match its raw body."""

    code = "BAD_SIGNATURE"
    http_status = 401


class PayloadTooLarge(InvsyncError):
    """A request body over the limit; nothing was read into the daemon, nothing applied."""

    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class ChannelLookupFailed(InvsyncError):
    """A webhook needed a call back to its channel (e.g. the order's lines) that failed for now:
    nothing was recorded, and the 503 makes the channel deliver the webhook again."""

    code = "CHANNEL_LOOKUP_FAILED"
    http_status = 503


class ChannelUnavailable(InvsyncError):
    """A webhook for an optional channel that does not run (its credential variable is unset):
    503, so the channel delivers it again once an operator has set it and restarted."""

    code = "CHANNEL_UNAVAILABLE"
    http_status = 503


class MethodNotAllowed(InvsyncError):
    """The path exists but not with this method (the ``Allow`` header lists the ones it has)."""

    code = "METHOD_NOT_ALLOWED"
    http_status = 405


#: Code -> type of every error this API answers with on its own (the client maps them back).
API_ERRORS: dict[str, type[InvsyncError]] = {
    cls.code: cls
    for cls in (
        MalformedEvent,
        UnknownEventLocation,
        UnknownChannel,
        BadWebhookBody,
        BadSignature,
        PayloadTooLarge,
        ChannelLookupFailed,
        ChannelUnavailable,
        MethodNotAllowed,
    )
} | SECURITY_ERRORS


# --- responses ---------------------------------------------------------------------------------


class JsonResponse(Response):
    """JSON encoded by msgspec (stock views and results are plain builtins)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def error_response(exc: InvsyncError, headers: Mapping[str, str] | None = None) -> Response:
    """The spec's error body for ``exc``, with its status."""
    extra = dict(headers or {})
    if isinstance(exc, Unauthorized):
        extra.setdefault("WWW-Authenticate", 'Bearer realm="invsync"')
    return JsonResponse(exc.to_json(), status_code=exc.http_status, headers=extra)


Handler = Callable[[Request], Awaitable[Response]]


def _guarded(handler: Handler) -> Handler:
    """``handler`` with typed errors answered as JSON and anything else as a logged 500."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except InvsyncError as exc:
            if exc.http_status >= 500:
                log.warning(
                    "http_error", path=request.url.path, code=exc.code, error=exc.message
                )
            return error_response(exc)
        except Exception:
            # The edge of the process: the client gets a code, the log gets the traceback.
            log.exception("http_unhandled", method=request.method, path=request.url.path)
            return error_response(InvsyncError("internal error (the daemon's log has details)"))

    return endpoint


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Routing's own 404/405 as the spec's JSON error."""
    assert isinstance(exc, HTTPException)
    error: InvsyncError
    if exc.status_code == 404:
        error = NotFound(f"no such endpoint: {request.method} {request.url.path}")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
    else:
        return JsonResponse(
            {"error": {"code": "HTTP_ERROR", "message": exc.detail}},
            status_code=exc.status_code,
            headers=exc.headers,
        )
    return error_response(error, exc.headers)


# --- request parsing ---------------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequest(f"bad Content-Length header: {declared!r}")
        if int(declared) > limit:
            raise PayloadTooLarge(f"request body of {declared} bytes is over the {limit} limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _wait_param(request: Request) -> float | None:
    raw = request.query_params.get("wait")
    if raw is None:
        return None
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not (math.isfinite(wait) and 0 <= wait <= MAX_WAIT_S):
        raise InvalidRequest(
            f"wait must be a number of seconds from 0 to {MAX_WAIT_S:g}, got {raw!r}", field="wait"
        )
    return wait


def check_references(config: Config, events: Sequence[Event]) -> None:
    """Every location and channel the events name must be in the config (else nothing is
    recorded): UnknownEventLocation (400) or UnknownChannel (404), naming the path."""
    locations = [loc.id for loc in config.locations]
    channels = [ch.id for ch in config.channels]
    for i, event in enumerate(events):
        named: list[tuple[str, str]] = []
        if isinstance(event, StockAdjusted | StockCounted | OrderReturned):
            named.append((f"$[{i}].location", event.location))
        if not isinstance(event, StockAdjusted | StockCounted):
            if event.channel is not None and event.channel not in channels:
                raise UnknownChannel(
                    f"$[{i}].channel: unknown channel {event.channel!r} "
                    f"(known: {', '.join(channels) or 'none'})",
                    path=f"$[{i}].channel",
                )
            for j, line in enumerate(getattr(event, "lines", None) or ()):
                if line.location is not None:
                    named.append((f"$[{i}].lines[{j}].location", line.location))
        for path, location in named:
            if location not in locations:
                raise UnknownEventLocation(
                    f"{path}: unknown location {location!r} (known: {', '.join(locations)})",
                    path=path,
                )


def _count(events: Sequence[Event], outcome: str) -> None:
    for event in events:
        EVENTS.labels(kind=event_kind(event), outcome=outcome).inc()


async def record_events(ctx: DaemonContext, events: list[Event], source: str) -> list[str]:
    """Check references, append atomically, count; returns the events' ids."""
    try:
        check_references(ctx.config, events)
        if events:
            await ctx.intake.append(events, source=source)
    except InvsyncError:
        _count(events, "rejected")
        raise
    _count(events, "accepted")
    return [event.id for event in events]


# --- the app -----------------------------------------------------------------------------------


def build_app(
    ctx: DaemonContext,
    *,
    max_body: int = MAX_BODY,
    routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The API of the spec's "HTTP" table served for ``ctx``.

    ``routes`` are added after the built-in ones: the live page, ``WS /v1/feed`` and the
    exception queue plug in there (``/v1/*`` ones get ``ApiGuard``'s checks like the rest).
    The credentials the config needs are loaded first (the token file generated on first
    start): AuthMisconfigured when they cannot be, and the daemon does not start.
    """
    ApiGuard.check_config(ctx.config)

    async def healthz(request: Request) -> Response:
        return JsonResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            report = await ctx.readiness()
        except InvsyncError as exc:
            report = {"ready": False, "checks": {"store": {"ok": False, "error": exc.message}}}
        return JsonResponse(report, status_code=200 if report.get("ready") else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def post_events(request: Request) -> Response:
        wait = _wait_param(request)
        body = await read_body(request, max_body)
        try:
            events = decode_events(body)
        except BadEvent as exc:
            EVENTS.labels(kind="unknown", outcome="rejected").inc()
            raise MalformedEvent(str(exc)) from exc
        ids = await record_events(ctx, events, "http")
        answer: dict[str, Any] = {"accepted": len(events), "ids": ids}
        if wait is not None:
            answer["results"] = await _results(ids, wait)
        return JsonResponse(answer, status_code=202)

    async def _results(ids: list[str], wait: float) -> dict[str, Any]:
        try:
            return await ctx.wait_processed(ids, wait)
        except InvsyncError as exc:
            # The events are recorded (that is what the 202 says); only the wait failed.
            log.warning("http_wait_failed", code=exc.code, error=exc.message)
            return {event_id: {"outcome": "pending"} for event_id in ids}

    async def webhook(request: Request) -> Response:
        channel = request.path_params["channel"]
        adapter = ctx.adapters.get(channel)
        if adapter is None:
            why = ctx.channel_unavailable(channel)
            if why is not None:
                raise ChannelUnavailable(f"channel {channel!r} is not running: {why}")
            raise UnknownChannel(f"no running channel {channel!r} takes webhooks")
        body = await read_body(request, max_body)
        try:
            if isinstance(adapter, ParsesWebhooksAsync):
                events = await adapter.parse_webhook_async(request.headers, body)
            else:
                events = adapter.parse_webhook(request.headers, body)
        except BadWebhook as exc:
            if exc.unauthorized:
                raise BadSignature(exc.message) from exc
            raise BadWebhookBody(exc.message) from exc
        except BadEvent as exc:
            EVENTS.labels(kind="unknown", outcome="rejected").inc()
            raise MalformedEvent(str(exc)) from exc
        except RecursionError:
            # An adapter's own JSON decoding of a deeply nested (signed) body: a 400, not a 500.
            raise BadWebhookBody("JSON nested too deeply") from None
        except ChannelError as exc:
            raise ChannelLookupFailed(
                f"{channel}: {type(exc).__name__}: {exc.message}; deliver the webhook again"
            ) from exc
        ids = await record_events(ctx, events, f"webhook:{channel}")
        return JsonResponse({"accepted": len(events), "ids": ids}, status_code=202)

    async def get_order(request: Request) -> Response:
        channel = request.path_params["channel"]
        order_id = request.path_params["order_id"]
        if channel not in [ch.id for ch in ctx.config.channels]:
            raise UnknownChannel(f"unknown channel {channel!r}")
        keys.check_id(order_id, "order_id")
        view = await ctx.order_view(channel, order_id)
        if view is None:
            raise UnknownOrder(f"no order {order_id!r} on channel {channel!r}")
        return JsonResponse(view)

    async def get_stock(request: Request) -> Response:
        sku = request.path_params["sku"]
        keys.check_sku(sku)
        view = await ctx.stock_view(sku)
        if view is None:
            raise UnknownSku(f"{sku} has never been stocked")
        return JsonResponse(view)

    own = [
        Route("/healthz", _guarded(healthz), methods=["GET"]),
        Route("/readyz", _guarded(readyz), methods=["GET"]),
        Route("/metrics", _guarded(metrics), methods=["GET"]),
        Route("/v1/events", _guarded(post_events), methods=["POST"]),
        Route("/webhooks/{channel}", _guarded(webhook), methods=["POST"]),
        Route("/v1/orders/{channel}/{order_id}", _guarded(get_order), methods=["GET"]),
        # :path so SKUs with a slash (allowed by the key rules) still reach the handler.
        Route("/v1/stock/{sku:path}", _guarded(get_stock), methods=["GET"]),
    ]
    return Starlette(
        routes=[*own, *routes],
        middleware=[Middleware(ApiGuard, config=lambda: ctx.config)],
        exception_handlers={HTTPException: _http_exception},
    )
