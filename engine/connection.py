"""Connections to the store: the one way invsync configures a redis-py client, and ``Store``.

``Store`` is the store resource of one process: the client, plus the embedded Valkey server when no
URL is configured. Engine code wraps its Redis calls in ``translate_errors`` so a store that does
not answer surfaces as ``StoreUnavailable`` instead of a redis-py exception.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import AbstractBackoff

from ..core.errors import StoreError, StoreUnavailable
from ..core.retry import Backoff
from .embedded import EmbeddedValkey

#: An idle pooled connection is PINGed before reuse after this many seconds, so a connection the
#: server or a NAT dropped while idle is replaced before a command is sent on it.
HEALTH_CHECK_INTERVAL = 15

#: Connections one process keeps to the store at most (callers beyond wait for one).
MAX_CONNECTIONS = 64

#: redis-py's pause before resending a command that met a connection or timeout error: full
#: jitter under 0.1 s, then under 0.2 s (two retries; the cap of 0.5 s is never reached).
CLIENT_RETRY = Backoff(0.05, 0.5, jitter="full")


class _ClientRetryPause(AbstractBackoff):
    """``CLIENT_RETRY`` in redis-py's backoff interface (redis-py sleeps it, not our clock)."""

    def compute(self, failures: int) -> float:
        """The pause after the ``failures``-th failure (1-based, as redis-py counts)."""
        return CLIENT_RETRY.delay(failures)


def open_redis(
    url: str,
    *,
    connect_timeout: float = 2.0,
    op_timeout: float = 5.0,
    password: str | None = None,
) -> Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` or ``unix://``); connects lazily.

    Replies are bytes. A connection or timeout error is retried twice with jittered exponential
    backoff on a fresh connection, then raised. ``op_timeout`` bounds each socket read, so
    blocking commands need their own client with a larger one.
    """
    extra: dict[str, Any] = {} if password is None else {"password": password}
    # A blocking pool: a burst of concurrent callers waits (up to op_timeout) for one of
    # MAX_CONNECTIONS connections instead of failing with "Too many connections".
    pool = BlockingConnectionPool.from_url(
        url,
        **extra,
        max_connections=MAX_CONNECTIONS,
        timeout=op_timeout,
        decode_responses=False,  # keys and fields are bytes on the wire; decode at the edges
        socket_connect_timeout=connect_timeout,
        socket_timeout=op_timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        retry=Retry(
            _ClientRetryPause(),
            retries=2,
            supported_errors=(redis_errors.ConnectionError, redis_errors.TimeoutError),
        ),
    )
    return Redis.from_pool(pool)  # the client owns the pool and closes it with itself


def redact(url: str) -> str:
    """``url`` with any password (in the userinfo or the query string) replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    if netloc == parts.netloc and all(k != "password" for k, _ in query):
        return url
    query = [(k, "***" if k == "password" else v) for k, v in query]
    # Built by hand: urlunsplit drops the empty authority of unix:///path.
    redacted = f"{parts.scheme}://{netloc}{parts.path}"
    if query:
        redacted += "?" + urlencode(query, safe="*")
    return redacted + (f"#{parts.fragment}" if parts.fragment else "")


@contextlib.asynccontextmanager
async def translate_errors(url: str | None = None) -> AsyncIterator[None]:
    """Raise ``StoreUnavailable`` for a store that does not answer; also usable as a decorator.

    redis-py connection and timeout errors (after its retries) become ``StoreUnavailable``;
    authentication failures become ``StoreError``: retrying them as is cannot help.
    """
    where = f"store at {redact(url)}" if url else "store"
    try:
        yield
    except redis_errors.AuthenticationError as e:
        raise StoreError(f"{where} refused our credentials: {_cause(e)}") from e
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as e:
        raise StoreUnavailable(f"{where} unavailable: {_cause(e)}") from e


class Store:
    """The store of one process, as an async context manager.

    ``url`` None means the embedded Valkey server in ``data_dir`` (see ``EmbeddedValkey`` for what
    ``owner`` means); otherwise ``data_dir`` is unused. Entering PINGs the store and raises
    ``StoreUnavailable`` if it does not answer within ``connect_timeout``; exiting closes the
    client, then stops the embedded server if this store is responsible for it. The client
    reconnects by itself when the store comes back after an outage.
    """

    def __init__(
        self,
        url: str | None,
        data_dir: Path,
        *,
        owner: bool = True,
        connect_timeout: float = 2.0,
        op_timeout: float = 5.0,
        password: str | None = None,
    ) -> None:
        self._password = password
        self._embedded = EmbeddedValkey(data_dir, owner=owner) if url is None else None
        self._url = url if url is not None else self._embedded_url()
        self._connect_timeout = connect_timeout
        self._op_timeout = op_timeout
        self._redis: Redis | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    def _embedded_url(self) -> str:
        assert self._embedded is not None
        return self._embedded.url

    @property
    def url(self) -> str:
        """The store's URL (the embedded server's ``unix://`` URL when none was configured)."""
        return self._url

    @property
    def redis(self) -> Redis:
        """The client; only while the store is entered."""
        if self._redis is None:
            raise RuntimeError("Store is not entered: use `async with Store(...)`")
        return self._redis

    @property
    def embedded(self) -> EmbeddedValkey | None:
        """The embedded server, or None when a URL was configured."""
        return self._embedded

    def translate_errors(self) -> contextlib.AbstractAsyncContextManager[None]:
        """``translate_errors`` naming this store's URL."""
        return translate_errors(self._url)

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            if self._embedded is not None:
                await stack.enter_async_context(self._embedded)
            client = open_redis(
                self._url,
                connect_timeout=self._connect_timeout,
                op_timeout=self._op_timeout,
                password=self._password,
            )
            stack.push_async_callback(client.aclose)
            try:
                async with translate_errors(self._url), asyncio.timeout(self._connect_timeout):
                    await client.ping()
            except TimeoutError as e:
                raise StoreUnavailable(
                    f"store at {redact(self._url)} unavailable: "
                    f"no answer to PING within {self._connect_timeout:g} s"
                ) from e
            self._redis = client
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack, self._redis = self._stack, None, None
        if stack is not None:
            await stack.aclose()


def _cause(error: BaseException) -> str:
    return str(error) or type(error).__name__
