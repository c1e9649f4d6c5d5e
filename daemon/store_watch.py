"""The store watch: is the store answering, since when not, and bring the embedded one back.

Every ``every_s`` the watch PINGs the store (bounded by ``ping_timeout_s``, so a hung server,
e.g. SIGSTOPped, counts as down instead of stalling the watch). On the first failed ping it logs
``store_down``; while the embedded Valkey's process is gone it starts it again
(``EmbeddedValkey.revive``: the new server loads the AOF) and logs ``store_restarted``; once a
ping succeeds again it logs ``store_recovered`` with how long the store was away.
``invsync_redis_up``, ``invsync_store_down_seconds`` and ``invsync_store_restarts_total`` say the
same as metrics, ``report()`` says it to ``/readyz``, and ``healthy()`` turns false once the store
has been unreachable for ``unreachable_exit_s``: the systemd watchdog then stops being fed, so
systemd restarts a daemon that cannot recover on its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import structlog
from redis.exceptions import RedisError

from ..core.clock import Clock
from ..core.errors import StoreError
from ..engine.connection import Store, redact
from ..metrics import definitions as m

__all__ = ["PING_TIMEOUT_S", "WATCH_EVERY_S", "StoreWatch"]

log = structlog.get_logger("invsync.store")

WATCH_EVERY_S = 1.0
#: How long a PING may take before the store counts as down.
PING_TIMEOUT_S = 1.0


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


class StoreWatch:
    """Watches one ``Store``; ``unreachable_exit_s`` is read on each use (a reload changes it)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        unreachable_exit_s: Callable[[], float],
        every_s: float = WATCH_EVERY_S,
        ping_timeout_s: float = PING_TIMEOUT_S,
    ) -> None:
        self._store = store
        self._clock = clock
        self._limit = unreachable_exit_s
        self._every_s = every_s
        self._ping_timeout_s = ping_timeout_s
        self._down_at: float | None = None  # clock.now() of the first failed ping
        self._down_ms: int | None = None  # wall time of the same
        self._error: str | None = None
        self._gave_up = False
        self.restarts = 0

    @property
    def up(self) -> bool:
        """False from the first failed ping until the next successful one."""
        return self._down_at is None

    def down_for(self) -> float:
        """Seconds since the store stopped answering (0 while it answers)."""
        return 0.0 if self._down_at is None else max(0.0, self._clock.now() - self._down_at)

    def healthy(self) -> bool:
        """False once the store has been unreachable for ``unreachable_exit_s`` or more."""
        return self._down_at is None or self.down_for() < self._limit()

    def report(self) -> dict[str, Any]:
        """What ``/readyz`` says of the store: up or since when down, why, restarts so far."""
        out: dict[str, Any] = {"ok": self.up, "restarts": self.restarts}
        if self._down_ms is not None:
            out["down_since"] = _iso(self._down_ms)
            out["down_s"] = round(self.down_for(), 1)
            out["error"] = self._error
            out["exit_after_s"] = self._limit()
        return out

    async def run(self) -> None:
        """Check every ``every_s`` (on the clock) until cancelled."""
        while True:
            await self.check()
            await self._clock.sleep(self._every_s)

    async def check(self) -> bool:
        """PING once, restart a dead embedded server, update the state; True if it answered."""
        error = await self._ping()
        if error is None:
            self._answered()
            return True
        self._failed(error)
        embedded = self._store.embedded
        if embedded is not None:
            try:
                restarted = await embedded.revive()
            except StoreError as exc:
                log.error("store_restart_failed", error=exc.message)
            else:
                if restarted:
                    self.restarts += 1
                    m.STORE_RESTARTS.inc()
                    log.warning(
                        "store_restarted",
                        pid=embedded.pid,
                        down_s=round(self.down_for(), 2),
                        restarts=self.restarts,
                    )
                    if await self._ping() is None:
                        self._answered()
                        return True
        return False

    async def _ping(self) -> str | None:
        """None if the store answered PING in time, else why not."""
        try:
            async with asyncio.timeout(self._ping_timeout_s):
                await self._store.redis.ping()
        except TimeoutError:
            return f"no answer to PING within {self._ping_timeout_s:g} s"
        except (RedisError, OSError) as exc:
            return str(exc) or type(exc).__name__
        return None

    def _answered(self) -> None:
        if self._down_at is not None:
            log.warning("store_recovered", down_s=round(self.down_for(), 2))
        self._down_at = self._down_ms = None
        self._error = None
        self._gave_up = False
        m.REDIS_UP.set(1)
        m.STORE_DOWN_SECONDS.set(0)

    def _failed(self, error: str) -> None:
        self._error = error
        if self._down_at is None:
            self._down_at = self._clock.now()
            self._down_ms = self._clock.wall_ms()
            log.error("store_down", error=error, url=redact(self._store.url))
        m.REDIS_UP.set(0)
        m.STORE_DOWN_SECONDS.set(self.down_for())
        if not self.healthy() and not self._gave_up:
            self._gave_up = True
            log.critical(
                "store_unreachable_too_long",
                down_s=round(self.down_for(), 1),
                limit_s=self._limit(),
                action="the systemd watchdog is no longer fed",
            )
