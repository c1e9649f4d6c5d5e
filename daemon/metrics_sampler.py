"""The metrics sampler: the gauges nobody updates as things happen, read once a second.

``invsync_actors_active`` and ``invsync_mailbox_depth`` (SKU actors from the actor system; channel
workers from the channel manager: they have no mailbox, their backlog is
``invsync_channel_pending_skus``), ``invsync_intake_lag_seconds`` and ``invsync_redis_up``.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..actors.runtime import ActorSystem
from ..core.clock import Clock
from ..core.errors import InvsyncError
from ..metrics import definitions as m
from .channels import ChannelManager
from .intake import Intake

__all__ = ["SAMPLE_EVERY_S", "sample_metrics", "sample_once"]

SAMPLE_EVERY_S = 1.0
#: How long the store may take to answer the sampler's ping before it counts as down.
PING_TIMEOUT_S = 1.0


async def sample_once(
    system: ActorSystem, channels: ChannelManager, intake: Intake, redis: aioredis.Redis
) -> None:
    """Set every sampled gauge once."""
    m.ACTORS_ACTIVE.labels(kind="sku").set(system.active("sku"))
    m.MAILBOX_DEPTH.labels(kind="sku").set(system.mailbox_depth("sku"))
    m.ACTORS_ACTIVE.labels(kind="channel").set(channels.workers())
    m.MAILBOX_DEPTH.labels(kind="channel").set(0)
    try:
        m.INTAKE_LAG.set(await intake.lag_seconds())
    except (RedisError, OSError, InvsyncError):
        pass  # the store is down: invsync_redis_up says so, the lag keeps its last value
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the cancellation that
    # stops this task (and the daemon then never exits).
    try:
        async with asyncio.timeout(PING_TIMEOUT_S):
            up = bool(await redis.ping())
    except (RedisError, OSError, TimeoutError):
        up = False
    m.REDIS_UP.set(1 if up else 0)


async def sample_metrics(
    system: ActorSystem,
    channels: ChannelManager,
    intake: Intake,
    redis: aioredis.Redis,
    *,
    clock: Clock,
    every_s: float = SAMPLE_EVERY_S,
) -> None:
    """Sample the gauges every ``every_s`` (on ``clock``) until cancelled."""
    while True:
        await sample_once(system, channels, intake, redis)
        await clock.sleep(every_s)
