"""``DaemonClient``: the operator CLI's way to the running daemon, through its HTTP API.

The address comes from the config's ``[server]`` section; the token from ``client_token``
(``$INVSYNC_TOKEN``, the variable ``token_env`` names, or the token file the daemon generated in
its data directory: daemon/security.py). Errors come back as the
typed ``InvsyncError`` the daemon answered with (by its code); a daemon that does not answer at
all is ``DaemonUnavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiohttp
import msgspec
from yarl import URL

from ..core.config import Config, ServerConfig, resolve_secret
from ..core.errors import (
    BY_CODE,
    Conflict,
    InvalidRequest,
    InvsyncError,
    NotFound,
    StoreError,
    StoreUnavailable,
)
from .http import API_ERRORS, Forbidden, PayloadTooLarge, Unauthorized
from .incidents import EXCEPTION_ERRORS
from .incidents.routes import ByMismatch
from .security import TokenUnreadable, UnsupportedMediaType, client_token, token_path

__all__ = ["DaemonClient", "DaemonUnavailable"]

#: Every code the API answers with -> its type (the API's own codes win over the engine's).
_BY_CODE: dict[str, type[InvsyncError]] = {
    **BY_CODE,
    StoreError.code: StoreError,
    StoreUnavailable.code: StoreUnavailable,
    NotFound.code: NotFound,
    **API_ERRORS,
    **EXCEPTION_ERRORS,
    ByMismatch.code: ByMismatch,
}
#: For a code this client does not know: the nearest type by HTTP status.
_BY_STATUS: dict[int, type[InvsyncError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    503: StoreUnavailable,
}


class DaemonUnavailable(InvsyncError):
    """No daemon answers at the configured address (not running, or not reachable)."""

    code = "DAEMON_UNAVAILABLE"
    http_status = 503


def _connect_host(host: str) -> str:
    """Where to connect for a listener on ``host``: a wildcard address means this machine."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


class DaemonClient:
    """The running daemon's API, as an async context manager (one connection pool).

    ``token`` is sent as ``Authorization: Bearer``; None means the value of the variable
    ``server.token_env`` names (``for_config`` finds the token the way the CLI does).
    """

    def __init__(
        self,
        server: ServerConfig,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 2.0,
        token_hint: str | None = None,
    ) -> None:
        host = _connect_host(server.host)
        self.address = f"[{host}]:{server.port}" if ":" in host else f"{host}:{server.port}"
        self.base_url = f"http://{self.address}"
        self._token = token if token is not None else resolve_secret(server.token_env)
        self._token_hint = token_hint or (
            f"server.token_env names ${server.token_env}, which is not set here"
            if server.token_env
            else None
        )
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_config(cls, config: Config, **options: Any) -> DaemonClient:
        """A client of the daemon ``config`` names, with the token ``client_token`` finds. A
        token file it cannot read is no error yet (health needs none): a refusal says why."""
        hint = None
        if config.server.auth != "none" and config.server.token_env is None:
            hint = f"no token in {token_path(config)}: has the daemon started with this config?"
        try:
            token = client_token(config)
        except TokenUnreadable as exc:
            token, hint = None, exc.message
        return cls(config.server, token=token, token_hint=hint, **options)

    async def __aenter__(self) -> Self:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        self._session = aiohttp.ClientSession(headers=headers)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- the API ------------------------------------------------------------------------------

    async def alive(self, *, timeout_s: float = 1.0) -> bool:
        """Whether an invsync daemon answers ``GET /healthz`` within ``timeout_s``."""
        try:
            status, body = await self._call("GET", "/healthz", timeout_s=timeout_s)
        except InvsyncError:
            return False
        return status == 200 and isinstance(body, dict) and body.get("status") == "ok"

    async def post_events(
        self, events: list[dict[str, Any]], wait: float | None = None
    ) -> dict[str, Any]:
        """Record ``events`` (all or none); with ``wait``, also wait up to that many seconds
        for them to be processed: ``{"accepted", "ids"[, "results"]}``."""
        params = {} if wait is None else {"wait": f"{wait:g}"}
        _, body = await self._ok(
            "POST",
            "/v1/events",
            params=params,
            data=msgspec.json.encode(events),
            timeout_s=self._timeout_s + (wait or 0.0),
        )
        return self._object(body)

    async def stock(self, sku: str) -> dict[str, Any] | None:
        """The stock view of ``sku`` (``GET /v1/stock/{sku}``), or None if never stocked."""
        try:
            _, body = await self._ok("GET", f"/v1/stock/{quote(sku, safe='')}")
        except InvsyncError as exc:
            if exc.code == "UNKNOWN_SKU":
                return None
            raise
        return self._object(body)

    async def order(self, channel: str, order_id: str) -> dict[str, Any] | None:
        """An order's state, or None if there is no such order on the channel."""
        path = f"/v1/orders/{quote(channel, safe='')}/{quote(order_id, safe='')}"
        try:
            _, body = await self._ok("GET", path)
        except InvsyncError as exc:
            if exc.code == "UNKNOWN_ORDER":
                return None
            raise
        return self._object(body)

    async def hold(self, hold_id: str) -> dict[str, Any] | None:
        """A hold's state (``GET /v1/holds/{hold_id}``), or None if there is no such hold."""
        try:
            _, body = await self._ok("GET", f"/v1/holds/{quote(hold_id, safe='')}")
        except InvsyncError as exc:
            if exc.code == "UNKNOWN_HOLD":
                return None
            raise
        return self._object(body)

    async def exceptions(
        self,
        *,
        state: str = "open",
        kind: str | None = None,
        channel: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """``GET /v1/exceptions``: records newest first (``state`` open, resolved, ... or all)."""
        params = {"state": state, "limit": str(limit)}
        if kind is not None:
            params["kind"] = kind
        if channel is not None:
            params["channel"] = channel
        _, body = await self._ok("GET", "/v1/exceptions", params=params)
        items = self._object(body).get("items", [])
        return list(items) if isinstance(items, list) else []

    async def exception(self, exception_id: str) -> dict[str, Any]:
        """``GET /v1/exceptions/{id}`` (UnknownException when there is none)."""
        _, body = await self._ok("GET", f"/v1/exceptions/{quote(exception_id, safe='')}")
        return self._object(body)

    async def resolve_exception(
        self,
        exception_id: str,
        action: str,
        *,
        by: str | None = None,
        sku: str | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/exceptions/{id}/resolve``: run the action; the record after it. The
        daemon records the token's name as ``resolved_by``; a ``by`` that differs is refused."""
        ask: dict[str, Any] = {"action": action}
        if by is not None:
            ask["by"] = by
        if sku is not None:
            ask["sku"] = sku
        if note is not None:
            ask["note"] = note
        path = f"/v1/exceptions/{quote(exception_id, safe='')}/resolve"
        _, body = await self._ok("POST", path, data=msgspec.json.encode(ask))
        return self._object(body)

    async def drift_check(
        self,
        channel: str,
        *,
        skus: list[str] | None = None,
        confirm_s: float | None = None,
        settle_s: float | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/channels/{channel}/drift-check``: read the channel back now."""
        ask: dict[str, Any] = {}
        if skus:
            ask["skus"] = skus
        if confirm_s is not None:
            ask["confirm_s"] = confirm_s
        if settle_s is not None:
            ask["settle_s"] = settle_s
        path = f"/v1/channels/{quote(channel, safe='')}/drift-check"
        wait = self._timeout_s + (confirm_s or 0) + 60  # the confirmation wait is the daemon's
        _, body = await self._ok("POST", path, data=msgspec.json.encode(ask), timeout_s=wait)
        return self._object(body)

    # -- plumbing -----------------------------------------------------------------------------

    async def _ok(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        status, body = await self._call(method, path, **kw)
        if not 200 <= status < 300:
            raise self._error(status, body)
        return status, body

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        timeout_s: float | None = None,
    ) -> tuple[int, Any]:
        if self._session is None:
            raise RuntimeError("DaemonClient is not entered: use `async with DaemonClient(...)`")
        total = self._timeout_s if timeout_s is None else timeout_s
        timeout = aiohttp.ClientTimeout(total=total, connect=min(self._connect_timeout_s, total))
        headers = {"Content-Type": "application/json"} if data is not None else None
        url = URL(self.base_url + path, encoded=True)
        try:
            async with self._session.request(
                method, url, params=params, data=data, headers=headers, timeout=timeout
            ) as response:
                raw = await response.read()
                status = response.status
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, ConnectionRefusedError)
            reason = "connection refused" if refused else exc.os_error.strerror or str(exc)
            raise DaemonUnavailable(
                f"no invsync daemon answers at {self.address}: {reason}", reason=reason
            ) from exc
        except TimeoutError as exc:
            raise DaemonUnavailable(
                f"the daemon at {self.address} did not answer within {total:g} s",
                reason=f"no answer within {total:g} s",
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            # Connected, then lost: a POST may or may not have been recorded. Retrying it with
            # the same event ids is safe (ids are idempotency keys).
            raise DaemonUnavailable(
                f"the daemon at {self.address} dropped the connection ({exc}); "
                "retrying with the same event ids is safe",
                reason=f"connection lost: {exc}",
            ) from exc
        try:
            body = msgspec.json.decode(raw) if raw else None
        except msgspec.DecodeError:
            body = raw.decode("utf-8", "replace")[:200]
        return status, body

    def _error(self, status: int, body: Any) -> InvsyncError:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict) or not isinstance(error.get("code"), str):
            return InvsyncError(
                f"unexpected answer from {self.address}: HTTP {status} {body!r}", status=status
            )
        code: str = error["code"]
        message = str(error.get("message", ""))
        details = {k: v for k, v in error.items() if k not in ("code", "message")}
        if status == 401 and self._token is None and self._token_hint:
            message += f" ({self._token_hint})"
        cls = _BY_CODE.get(code)
        if cls is None:
            cls = _BY_STATUS.get(status, InvsyncError)
            details["server_code"] = code
        return cls(message, **details)

    @staticmethod
    def _object(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvsyncError(f"expected a JSON object from the daemon, got {body!r}")
        return body
