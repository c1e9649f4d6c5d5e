"""The daemon's periodic chores: release lapsed holds, trim the intake stream, and let the
incident queue act on what is due (outages that lasted, auto-resolutions). Each runs until
cancelled, sleeps on the injectable clock, and logs a failed round instead of stopping.

``keep_running`` runs any long-lived task of the daemon (these chores, the intake consumer, the
MQTT intake, the drift watch, the metrics sampler, the store watch) so that an error it did not
expect is logged and the task started again after a backoff, instead of ending the daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from redis.exceptions import RedisError

from ..core.clock import Clock
from ..core.errors import InvsyncError
from ..core.retry import Backoff
from ..engine.engine import Engine
from .holds import Notify, hold_lapsed
from .incidents import ExceptionQueue
from .intake import Intake

__all__ = ["keep_running", "reap_holds", "tick_incidents", "trim_intake"]

log = structlog.get_logger("invsync.daemon")

REAP_EVERY_S = 1.0
#: Acknowledged intake entries are dropped within a second (a million-row import would
#: otherwise sit in the store as ~200 MB of stream for minutes).
TRIM_EVERY_S = 1.0
TICK_EVERY_S = 0.5
#: The pause before a crashed task runs again: 0.1 s doubling to 10 s, equal jitter.
RESTART = Backoff(0.1, 10.0, jitter="equal")
#: A task that ran this long before failing starts again from the shortest pause.
STABLE_S = 60.0


async def keep_running(name: str, run: Callable[[], Awaitable[None]], *, clock: Clock) -> None:
    """Await ``run()`` until it returns; when it raises, log it and run it again after a
    backoff (``RESTART``). Cancellation ends it, as it ends ``run()``."""
    failures = 0
    while True:
        started = clock.now()
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if clock.now() - started >= STABLE_S:
                failures = 0
            delay = RESTART.delay(failures)
            failures += 1
            log.error(
                "task_crashed",
                task=name,
                error=f"{type(exc).__name__}: {exc}",
                restart_in_s=round(delay, 2),
                exc_info=exc,
            )
            await clock.sleep(delay)


async def reap_holds(
    engine: Engine,
    *,
    clock: Clock,
    interval_s: float = REAP_EVERY_S,
    notify: Notify | None = None,
) -> None:
    """Release lapsed holds every ``interval_s`` and push their SKUs (``notify``, as for any
    change); a store outage is logged and retried."""
    while True:
        try:
            for outcome in await engine.expire_holds():
                await hold_lapsed(outcome, notify)
        except InvsyncError as exc:
            log.warning("hold_reaper_failed", code=exc.code, error=exc.message)
        except (RedisError, OSError) as exc:
            log.warning("hold_reaper_failed", error=str(exc) or type(exc).__name__)
        await clock.sleep(interval_s)


async def trim_intake(intake: Intake, *, clock: Clock, interval_s: float = TRIM_EVERY_S) -> None:
    """Drop acknowledged intake entries every ``interval_s`` (keeps the stream bounded)."""
    while True:
        await clock.sleep(interval_s)
        try:
            await intake.trim()
        except (InvsyncError, RedisError, OSError) as exc:
            log.warning("intake_trim_failed", error=str(exc) or type(exc).__name__)


async def tick_incidents(
    queue: ExceptionQueue, *, clock: Clock, interval_s: float = TICK_EVERY_S
) -> None:
    """Let the incident queue act on what is due, every ``interval_s``."""
    while True:
        try:
            await queue.tick()
        except InvsyncError as exc:
            log.warning("exception_tick_failed", code=exc.code, error=exc.message)
        except (RedisError, OSError) as exc:
            log.warning("exception_tick_failed", error=str(exc) or type(exc).__name__)
        await clock.sleep(interval_s)
