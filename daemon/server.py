"""``HttpServer``: the API app served by uvicorn inside the daemon's own event loop.

The daemon owns the process's signals (SIGTERM drains, SIGHUP reloads), so uvicorn is told not to
install handlers; the listening socket is bound here first, so a port in use is a clear error
instead of uvicorn's ``sys.exit``, and ``port = 0`` gives a free port (read back from ``port``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import structlog
import uvicorn
from starlette.types import ASGIApp

from ..core.errors import InvsyncError

__all__ = ["HttpServer", "ServerStartError"]

log = structlog.get_logger("invsync.http")


#: Largest websocket message a client may send (the feed's subscriptions).
WS_MAX_MESSAGE = 1024 * 1024


class ServerStartError(InvsyncError):
    """The HTTP listener could not start (address in use, no such host, no permission)."""

    code = "SERVER_START_FAILED"
    http_status = 500


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handlers, telling when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon owns SIGTERM/SIGINT/SIGHUP

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


def http_protocol() -> str:
    """uvicorn's HTTP/1.1 implementation: ``httptools`` (the C parser of llhttp, a dependency)
    where it imports, else the pure-Python ``h11``, which parses every request line and header
    in Python (issue 14: a hot cost of small ``POST /v1/events`` requests under load). The
    choice is explicit so a missing wheel is a slower daemon, not a code path nobody chose.

    The event loop is not uvicorn's to pick: the server runs inside the daemon's own loop
    (``daemon/loop.py``: uvloop where installed)."""
    if importlib.util.find_spec("httptools") is None:  # pragma: no cover - a dependency
        return "h11"
    return "httptools"


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); ServerStartError naming host:port if it fails."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ServerStartError(f"cannot listen on {shown}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # Restarts must not wait for TIME_WAIT; this does not allow two live listeners.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServerStartError(f"cannot listen on {shown}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


class HttpServer:
    """Serves ``app`` on (host, port) while entered; exiting shuts it down gracefully.

    Entering returns once the socket listens (``port`` is then the bound port, also for 0);
    exiting stops accepting, lets in-flight requests finish (at most ``grace_s`` seconds, then
    cancels them) and waits for the server task.
    """

    def __init__(self, app: ASGIApp, host: str, port: int, *, grace_s: int = 5) -> None:
        self.host = host
        self._requested_port = port
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=http_protocol(),
            ws="websockets-sansio",
            lifespan="off",
            access_log=False,
            log_config=None,  # structlog is configured by the daemon; uvicorn must not touch it
            server_header=False,
            timeout_graceful_shutdown=grace_s,
            # A feed client's message is a subscription: 1 MiB is thousands of SKUs; a bigger
            # frame closes the connection (1009) instead of being read whole (16 MiB default).
            ws_max_size=WS_MAX_MESSAGE,
        )
        self._server = _Uvicorn(self._config)
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the one the OS chose when asked for 0)."""
        if self._port is None:
            raise RuntimeError("HttpServer is not running: use `async with HttpServer(...)`")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` of the listener."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> Self:
        sock = _bind(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        self._task = asyncio.create_task(
            self._server.serve(sockets=[sock]), name=f"http-server-{self._port}"
        )
        listening = asyncio.create_task(self._server.listening.wait())
        try:
            await asyncio.wait({self._task, listening}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled while starting: leave nothing running
            await self._abort(sock)
            raise
        finally:
            listening.cancel()
        if not self._server.listening.is_set():
            task = self._task
            await self._abort(sock)
            error = task.exception() if task.done() and not task.cancelled() else None
            raise ServerStartError(
                f"HTTP server on {self.host}:{self._port} did not start"
            ) from error
        log.info("http_listening", host=self.host, port=self._port)
        return self

    async def _abort(self, sock: socket.socket) -> None:
        task, self._task, self._port = self._task, None, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sock.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        try:
            await task
        finally:
            self._port = None
            log.info("http_stopped", host=self.host)
