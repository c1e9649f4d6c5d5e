"""A storm of concurrent orders on scarce stock: no unit is sold twice, every order decided once.

Fifty clients (each its own connection and Engine, or one shared Engine so the auto-batching
path carries everything) submit thousands of orders over a few SKUs at two locations. Every
order is sent twice at the same moment from two clients with the same event id, some a third
time later, as webhook redeliveries do.

Phase 1 is exact: single-unit orders, 1.5x the stock of every (SKU, location), nothing released
meanwhile, so exactly the stock is reserved. Phase 2 restocks and sends random 1-3 line orders.
Phase 3 cancels and fulfils (some racing each other) while new orders keep coming.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis

from invsync.core.errors import InvsyncError
from invsync.engine.engine import Engine
from invsync.engine.models import Line, Outcome

SKUS = ("S1", "S2", "S3", "S4")
LOCATIONS = ("L1", "L2")
CELLS = [(sku, loc) for sku in SKUS for loc in LOCATIONS]
STOCK = 100
CLIENTS = 50
WEB = "web"


@dataclass
class Decision:
    """Every answer one event id got, from every client that sent it."""

    kinds: list[str] = field(default_factory=list)  # "ok", "dup" or an error code
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def applied(self) -> bool:
        return "ok" in self.kinds


Job = tuple[str, Callable[[Engine], Awaitable[Outcome]]]


async def run_jobs(engines: list[Engine], per_client: list[list[Job]]) -> dict[str, Decision]:
    """Each client works through its own list, all clients at once; answers by event id."""
    decisions: dict[str, Decision] = defaultdict(Decision)

    async def client(engine: Engine, jobs: list[Job]) -> None:
        for event_id, call in jobs:
            decision = decisions[event_id]
            try:
                outcome = await call(engine)
            except InvsyncError as exc:
                decision.kinds.append(exc.code)
                continue
            decision.kinds.append("dup" if outcome.duplicate else "ok")
            decision.outcomes.append(outcome)

    async with asyncio.TaskGroup() as tg:
        for engine, jobs in zip(engines, per_client, strict=True):
            tg.create_task(client(engine, jobs))
    return decisions


def spread(calls: list[Job], *, retry_every: int = 10) -> list[list[Job]]:
    """Job lists per client: call i goes to client i and, at the same position, to client i+25;
    every ``retry_every``-th call once more at the end of a third client's list (a late retry)."""
    lists: list[list[Job]] = [[] for _ in range(CLIENTS)]
    late: list[list[Job]] = [[] for _ in range(CLIENTS)]
    for i, job in enumerate(calls):
        lists[i % CLIENTS].append(job)
        lists[(i + CLIENTS // 2) % CLIENTS].append(job)
        if retry_every and i % retry_every == 0:
            late[(i + 10) % CLIENTS].append(job)
    return [a + b for a, b in zip(lists, late, strict=True)]


def reserve_job(order_id: str, lines: list[Line]) -> Job:
    event_id = f"reserve-{order_id}"
    return event_id, lambda e: e.reserve(event_id, WEB, order_id, lines)


async def cells(engine: Engine) -> dict[tuple[str, str], tuple[int, int]]:
    """(sku, location) -> (on_hand, reserved)."""
    out = {}
    for sku in SKUS:
        state = await engine.stock(sku)
        assert state is not None
        for loc in LOCATIONS:
            s = state.locations[loc]
            out[sku, loc] = (s.on_hand, s.reserved)
    return out


async def assert_decided_once(
    engine: Engine, decisions: dict[str, Decision], orders: dict[str, list[Line]], *, racing: bool
) -> set[str]:
    """Each order applied at most once, duplicates only after it, the record there iff applied.

    Without ``racing`` (no stock freed meanwhile) a refusal is final: every copy is refused.
    Returns the ids of the orders that were reserved.
    """
    reserved = set()
    for order_id, lines in orders.items():
        decision = decisions[f"reserve-{order_id}"]
        kinds = Counter(decision.kinds)
        record = await engine.order(WEB, order_id)
        assert kinds["ok"] <= 1, (order_id, decision.kinds)
        if not decision.applied:
            assert record is None
            assert set(kinds) == {"INSUFFICIENT_STOCK"}, (order_id, decision.kinds)
            continue
        reserved.add(order_id)
        assert record is not None
        assert sum(x.qty for x in record.lines) == sum(x.qty for x in lines)
        if not racing:
            assert set(kinds) == {"ok", "dup"}, (order_id, decision.kinds)
        for outcome in decision.outcomes:
            assert outcome.order is not None
            assert outcome.order.order_id == order_id
            assert outcome.order.created_ms == record.created_ms
    return reserved


def reserved_by(orders: dict[str, list[Line]], ids: set[str]) -> Counter[tuple[str, str]]:
    total: Counter[tuple[str, str]] = Counter()
    for order_id in ids:
        for x in orders[order_id]:
            assert x.location is not None
            total[x.sku, x.location] += x.qty
    return total


@pytest.mark.slow
@pytest.mark.parametrize("shared", [False, True], ids=["50-connections", "one-shared-engine"])
async def test_storm_never_oversells_and_decides_every_order_once(
    redis: aioredis.Redis, redis_url: str, clock: Any, shared: bool
) -> None:
    rng = random.Random(16502)
    async with AsyncExitStack() as stack:
        engines: list[Engine] = []
        for _ in range(1 if shared else CLIENTS):
            client = aioredis.Redis.from_url(redis_url)
            stack.push_async_callback(client.aclose)
            engines.append(await stack.enter_async_context(Engine(client, clock=clock)))
        if shared:
            engines *= CLIENTS
        main = engines[0]
        for sku, loc in CELLS:
            await main.count(f"seed-{sku}-{loc}", sku, loc, STOCK)

        # Phase 1: one-unit orders, 1.5x the stock of every cell: exactly the stock is sold.
        phase1 = {
            f"p1-{i}": [Line(sku=sku, qty=1, location=loc)]
            for i, (sku, loc) in enumerate(CELLS * (STOCK * 3 // 2))
        }
        ids = list(phase1)
        rng.shuffle(ids)
        decisions = await run_jobs(engines, spread([reserve_job(o, phase1[o]) for o in ids]))
        if not shared:
            assert len(await redis.client_list()) > CLIENTS
        ok1 = await assert_decided_once(main, decisions, phase1, racing=False)
        sold = reserved_by(phase1, ok1)
        assert sold == {cell: STOCK for cell in CELLS}
        assert await cells(main) == {cell: (STOCK, STOCK) for cell in CELLS}

        # Phase 2: restock, then random 1-3 line orders (same unit twice in one order allowed).
        for sku, loc in CELLS:
            await main.adjust(f"restock-{sku}-{loc}", sku, loc, STOCK)
        phase2 = {
            f"p2-{i}": [
                Line(sku=rng.choice(SKUS), qty=rng.randint(1, 3), location=rng.choice(LOCATIONS))
                for _ in range(rng.randint(1, 3))
            ]
            for i in range(1500)
        }
        decisions = await run_jobs(engines, spread([reserve_job(o, v) for o, v in phase2.items()]))
        ok2 = await assert_decided_once(main, decisions, phase2, racing=False)
        assert len(ok2) > 100  # enough went through for phase 3 to mean something
        expected = reserved_by(phase1, ok1) + reserved_by(phase2, ok2)
        state = await cells(main)
        for cell in CELLS:
            on_hand, reserved = state[cell]
            assert reserved == expected[cell] <= on_hand == 2 * STOCK

        # Phase 3: cancels and fulfils of random reserved orders (some racing each other on the
        # same order) while new single-unit orders keep coming.
        orders = {**phase1, **phase2}
        jobs: list[Job] = []
        for order_id in rng.sample(sorted(ok1 | ok2), k=(len(ok1) + len(ok2)) * 2 // 3):
            first = orders[order_id][0]
            partial = [Line(sku=first.sku, qty=1)]
            choices: list[Job] = [
                (f"cancel-{order_id}", lambda e, o=order_id: e.release(f"cancel-{o}", WEB, o)),
                (f"ship-{order_id}", lambda e, o=order_id: e.fulfil(f"ship-{o}", WEB, o)),
                (
                    f"ship1-{order_id}",
                    lambda e, o=order_id, p=partial: e.fulfil(f"ship1-{o}", WEB, o, p),
                ),
                (
                    f"cancel1-{order_id}",
                    lambda e, o=order_id, p=partial: e.release(f"cancel1-{o}", WEB, o, p),
                ),
            ]
            jobs.extend(rng.sample(choices, k=rng.choice((1, 1, 2))))
        phase3 = {
            f"p3-{i}": [Line(sku=rng.choice(SKUS), qty=1, location=rng.choice(LOCATIONS))]
            for i in range(400)
        }
        jobs += [reserve_job(o, v) for o, v in phase3.items()]
        rng.shuffle(jobs)
        decisions = await run_jobs(engines, spread(jobs, retry_every=0))
        for event_id, _ in jobs:
            kinds = decisions[event_id].kinds
            if "ok" in kinds:
                assert Counter(kinds)["ok"] == 1, (event_id, kinds)
            else:
                assert "dup" not in kinds, (event_id, kinds)
                assert set(kinds) <= {
                    "NOTHING_RESERVED",
                    "EXCEEDS_RESERVED",
                    "INSUFFICIENT_STOCK",
                }, (event_id, kinds)
        await assert_decided_once(main, decisions, phase3, racing=True)

        # Final invariants: the counters are exactly what the order records say.
        reserved: Counter[tuple[str, str]] = Counter()
        fulfilled: Counter[tuple[str, str]] = Counter()
        for order_id in {**orders, **phase3}:
            record = await main.order(WEB, order_id)
            if record is None:
                continue
            for x in record.lines:
                assert x.qty == x.reserved + x.fulfilled + x.released
                assert min(x.reserved, x.fulfilled, x.released) >= 0
                reserved[x.sku, x.location] += x.reserved
                fulfilled[x.sku, x.location] += x.fulfilled
        state = await cells(main)
        for cell in CELLS:
            on_hand, held = state[cell]
            assert on_hand == 2 * STOCK - fulfilled[cell]
            assert held == reserved[cell]
            assert 0 <= held <= on_hand
