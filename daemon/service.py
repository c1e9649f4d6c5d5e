"""The long-running process of ``invsync run``: the store, the engine and their background work.

This is the daemon's core life cycle: open the store (embedded Valkey by default), load the
engine's scripts, run the hold reaper, and on SIGTERM/SIGINT stop in order and exit 0. Intake
(HTTP, webhooks, MQTT), actors and channel pushes plug into this life cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog

from ..engine.connection import Store, redact
from ..engine.engine import Engine
from ..engine.errors import StoreUnavailable
from .config import Config, resolve_secret

log = structlog.get_logger("invsync.daemon")


def open_store(config: Config, *, owner: bool) -> Store:
    """The store the config names: ``[redis] url``, or the embedded Valkey in ``data_dir``."""
    return Store(
        config.redis.url,
        config.redis.data_dir,
        owner=owner,
        connect_timeout=config.redis.connect_timeout_s,
        op_timeout=config.redis.op_timeout_s,
        password=resolve_secret(config.redis.password_env),
    )


def open_engine(config: Config, store: Store) -> Engine:
    """An engine on ``store`` with the config's bundles, safety stock and idempotency TTL."""
    return Engine(
        store.redis,
        idempotency_ttl_s=config.redis.idempotency_ttl_s,
        bundles=config.bundle_map(),
        safety_stock={loc.id: loc.safety_stock for loc in config.locations},
        op_timeout=config.redis.op_timeout_s,
    )


async def reap_holds(engine: Engine, *, interval_s: float = 1.0) -> None:
    """Release lapsed holds every ``interval_s``; a store outage is logged and retried."""
    while True:
        try:
            for outcome in await engine.expire_holds():
                if outcome.order is not None:
                    log.info("hold_expired", hold=outcome.order.order_id)
        except StoreUnavailable as exc:
            log.warning("hold_reaper_store_unavailable", error=exc.message)
        await asyncio.sleep(interval_s)


async def serve(config: Config) -> int:
    """Run until SIGTERM or SIGINT; returns the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_store(config, owner=True) as store, open_engine(config, store) as engine:
        log.info(
            "started",
            store=redact(store.url),
            embedded=store.embedded is not None,
            locations=[loc.id for loc in config.locations],
            channels=[ch.id for ch in config.channels if ch.enabled],
        )
        async with asyncio.TaskGroup() as group:
            reaper = group.create_task(reap_holds(engine), name="hold-reaper")
            await stop.wait()
            log.info("stopping")
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
    log.info("stopped")
    return 0
