"""The daemon's periodic chores: release lapsed holds, trim the intake stream, and let the
incident queue act on what is due (outages that lasted, auto-resolutions). Each runs until
cancelled, sleeps on the injectable clock, and logs a failed round instead of stopping.
"""

from __future__ import annotations

import structlog
from redis.exceptions import RedisError

from ..core.clock import Clock
from ..core.errors import InvsyncError
from ..engine.engine import Engine
from .incidents import ExceptionQueue
from .intake import Intake

__all__ = ["reap_holds", "tick_incidents", "trim_intake"]

log = structlog.get_logger("invsync.daemon")

REAP_EVERY_S = 1.0
TRIM_EVERY_S = 30.0
TICK_EVERY_S = 0.5


async def reap_holds(engine: Engine, *, clock: Clock, interval_s: float = REAP_EVERY_S) -> None:
    """Release lapsed holds every ``interval_s``; a store outage is logged and retried."""
    while True:
        try:
            for outcome in await engine.expire_holds():
                if outcome.order is not None:
                    log.info("hold_expired", hold=outcome.order.order_id)
        except InvsyncError as exc:
            log.warning("hold_reaper_failed", code=exc.code, error=exc.message)
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
        await clock.sleep(interval_s)
