"""Poison events against a real store: an event that fails every time is set aside after its
attempts and processing goes on; an undecodable entry is set aside at once; a store outage is
never counted against an event; events behind a failing one of the same SKU keep their order."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from invsync.core.config import Config, load_config
from invsync.core.events import decode_events
from invsync.core.retry import Backoff
from invsync.daemon import intake as intake_module
from invsync.daemon.intake import ATTEMPTS, GROUP, STREAM, Entry, Intake, Poison, is_outage
from invsync.daemon.processor import Processor
from invsync.engine import keys
from invsync.engine.engine import Engine
from invsync.engine.models import SkuState

CONFIG = """
[[locations]]
id = "wh-east"
priority = 1
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return load_config(path)


def count(eid: str, sku: str, n: int) -> dict[str, object]:
    return {"id": eid, "type": "stock.counted", "sku": sku, "location": "wh-east", "on_hand": n}


def adjust(eid: str, sku: str, delta: int) -> dict[str, object]:
    return {"id": eid, "type": "stock.adjusted", "sku": sku, "location": "wh-east", "delta": delta}


class Harness:
    def __init__(self, engine: Engine, config: Config, attempts: int = 3) -> None:
        self.engine = engine
        self.intake = Intake(engine.redis, consumer="test", max_attempts=attempts)
        self.processor = Processor(engine, lambda: config, self._notify)
        self.poisoned: list[Poison] = []
        self.handled = 0

    async def _notify(self, state: SkuState, accepted_ms: int) -> None:
        pass

    async def _poison(self, poison: Poison) -> None:
        self.poisoned.append(poison)

    async def send(self, *events: dict[str, object]) -> list[str]:
        return await self.intake.append(
            decode_events(json.dumps(list(events)).encode()), source="test"
        )

    async def run_until_idle(self, handle: object = None, timeout: float = 15) -> None:
        stop = asyncio.Event()

        async def counting(entries: list[Entry]) -> object:
            self.handled += 1
            return await self.processor.handle_batch(entries)

        task = asyncio.create_task(
            self.intake.consume(
                handle or counting,  # type: ignore[arg-type]
                stop=stop,
                block_ms=20,
                on_poison=self._poison,
            )
        )
        try:
            async with asyncio.timeout(timeout):
                while await self.intake.lag() > 0:
                    assert not task.done(), task
                    await asyncio.sleep(0.02)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    async def on_hand(self, sku: str) -> int | None:
        state = await self.engine.stock(sku)
        return None if state is None else state.locations["wh-east"].on_hand


@pytest.fixture
async def h(engine: Engine, config: Config) -> Harness:
    harness = Harness(engine, config)
    await harness.intake.ensure_group()
    return harness


async def _break(engine: Engine, sku: str) -> None:
    """Make every engine call on ``sku`` fail with the store's WRONGTYPE reply: an error of
    that event alone (the store answers, the command is wrong for this key)."""
    await engine.redis.set(keys.inventory(sku), b"not a hash")


async def test_an_event_failing_every_attempt_is_set_aside_and_the_others_go_on(
    h: Harness,
) -> None:
    await _break(h.engine, "BROKEN")
    await h.send(count("ok-1", "GOOD", 5), count("bad", "BROKEN", 3), count("ok-2", "OTHER", 7))
    await h.run_until_idle()

    assert await h.on_hand("GOOD") == 5 and await h.on_hand("OTHER") == 7
    (poison,) = h.poisoned
    assert poison.event is not None and poison.event.id == "bad"
    assert poison.attempts == 3  # the configured attempts, no more
    assert "WRONGTYPE" in poison.error
    assert json.loads(poison.payload)["sku"] == "BROKEN"  # the event as it was recorded
    assert h.handled >= 3
    # Acknowledged, and its attempt count forgotten: nothing left pending or counted.
    assert await h.intake.lag() == 0
    assert await h.engine.redis.hlen(ATTEMPTS) == 0
    # Processing goes on after it.
    await h.send(count("ok-3", "GOOD", 9))
    await h.run_until_idle()
    assert await h.on_hand("GOOD") == 9 and len(h.poisoned) == 1


async def test_an_event_that_fails_a_few_times_then_succeeds_is_applied_once(
    h: Harness,
) -> None:
    await _break(h.engine, "FLAKY")
    await h.send(count("c1", "FLAKY", 4))
    failures = 0

    async def heal_after_two(entries: list[Entry]) -> object:
        nonlocal failures
        result = await h.processor.handle_batch(entries)
        if result:
            failures += 1
            if failures == 2:
                await h.engine.redis.delete(keys.inventory("FLAKY"))
        return result

    await h.run_until_idle(heal_after_two)
    assert failures == 2 and h.poisoned == []
    assert await h.on_hand("FLAKY") == 4
    assert await h.engine.redis.hlen(ATTEMPTS) == 0


async def test_an_event_behind_a_failing_one_of_its_sku_waits_and_keeps_the_order(
    h: Harness,
) -> None:
    await _break(h.engine, "SKU")
    await h.send(count("c1", "SKU", 10), adjust("a1", "SKU", -3), count("c2", "ELSE", 1))
    seen: list[list[str]] = []

    async def heal_after_one(entries: list[Entry]) -> object:
        seen.append([e.event.id for e in entries])
        result = await h.processor.handle_batch(entries)
        if len(seen) == 1:
            assert set(result) == {entries[0].id, entries[1].id}  # a1 was deferred, not tried
            await h.engine.redis.delete(keys.inventory("SKU"))
        return result

    await h.run_until_idle(heal_after_one)
    # The count and then the adjustment, in stream order: 10 - 3.
    assert await h.on_hand("SKU") == 7
    assert seen[1] == ["c1", "a1"]
    # The deferred adjustment was never counted as an attempt.
    assert h.poisoned == [] and await h.engine.redis.hlen(ATTEMPTS) == 0


async def test_an_undecodable_entry_is_set_aside_at_once_with_its_payload(h: Harness) -> None:
    await h.engine.redis.xadd(STREAM, {"e": b'{"id": "x", "type": "nonsense"}', "src": "http"})
    await h.engine.redis.xadd(STREAM, {"other": b"field"})
    await h.send(count("c1", "GOOD", 2))
    await h.run_until_idle()
    assert [p.event for p in h.poisoned] == [None, None]
    first, second = h.poisoned
    assert "nonsense" in first.payload and first.source == "http"
    assert "undecodable" in first.error
    assert "other" in second.payload
    assert await h.on_hand("GOOD") == 2
    assert await h.intake.lag() == 0


async def test_a_store_outage_is_never_counted_against_an_event(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many times the store fails a batch, no event is set aside for it."""
    await h.send(count("c1", "SKU", 5))
    outages = 0

    async def store_away_ten_times(entries: list[Entry]) -> object:
        nonlocal outages
        if outages < 10:
            outages += 1
            raise RedisConnectionError("Connection refused")
        return await h.processor.handle_batch(entries)

    monkeypatch.setattr(intake_module, "STORE_RETRY", Backoff(0.001, 0.001, jitter="none"))
    await h.run_until_idle(store_away_ten_times)
    assert outages == 10 and h.poisoned == []
    assert await h.on_hand("SKU") == 5
    assert await h.engine.redis.hlen(ATTEMPTS) == 0
    pending = await h.engine.redis.xpending(STREAM, GROUP)
    assert pending["pending"] == 0


def test_store_replies_and_connection_errors_are_outages_other_errors_are_not() -> None:
    from redis.exceptions import ResponseError

    assert is_outage(RedisConnectionError("refused"))
    assert is_outage(ResponseError("LOADING Valkey is loading the dataset in memory"))
    assert is_outage(ResponseError("MISCONF Errors writing to the AOF file"))
    assert is_outage(TimeoutError())
    assert not is_outage(ResponseError("WRONGTYPE Operation against a key holding the wrong kind"))
    assert not is_outage(ValueError("a bug"))
