"""The virtual-actor runtime: activation, one message at a time, back-pressure, passivation,
supervision and shutdown, on a hand-moved clock so every timer is deterministic."""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from invsync.actors import runtime
from invsync.actors.runtime import (
    Actor,
    ActorSystem,
    ActorSystemClosed,
    Kind,
    UnknownKind,
)
from invsync.core.clock import ManualClock, SystemClock


class Boom(Exception):
    """What a test actor raises on purpose."""


class Probe:
    """What the test actors did, shared by every instance of a kind; gates let a test hold an
    actor inside ``on_activate``, ``receive`` or ``on_passivate``."""

    def __init__(self) -> None:
        self.instances: list[Recorder] = []
        self.events: list[tuple[str, str, object]] = []  # (what, key, message or instance id)
        self.activate_gate = _open_event()
        self.receive_gate = _open_event()
        self.passivate_gate = _open_event()
        self.fail_on: set[object] = set()
        self.fail_activations = 0  # how many of the next activations raise
        self.in_receive = 0
        self.max_in_receive = 0

    def received(self, key: str | None = None) -> list[object]:
        return [m for what, k, m in self.events if what == "receive" and key in (None, k)]

    def count(self, what: str, key: str | None = None) -> int:
        return sum(1 for w, k, _ in self.events if w == what and key in (None, k))


class Recorder(Actor[object]):
    """Records its life in a Probe; fails where the probe says."""

    def __init__(self, key: str, probe: Probe) -> None:
        super().__init__(key)
        self.probe = probe
        probe.instances.append(self)

    async def on_activate(self) -> None:
        await self.probe.activate_gate.wait()
        if self.probe.fail_activations:
            self.probe.fail_activations -= 1
            self.probe.events.append(("activate-failed", self.key, id(self)))
            raise Boom("activation")
        self.probe.events.append(("activate", self.key, id(self)))

    async def receive(self, message: object) -> None:
        self.probe.in_receive += 1
        self.probe.max_in_receive = max(self.probe.max_in_receive, self.probe.in_receive)
        try:
            await self.probe.receive_gate.wait()
            await asyncio.sleep(0)  # give a concurrent receive the chance to overlap
            if message in self.probe.fail_on:
                self.probe.events.append(("fail", self.key, message))
                raise Boom(message)
            self.probe.events.append(("receive", self.key, message))
        finally:
            self.probe.in_receive -= 1

    async def on_passivate(self) -> None:
        self.probe.events.append(("passivate-start", self.key, id(self)))
        await self.probe.passivate_gate.wait()
        self.probe.events.append(("passivate", self.key, id(self)))


def _open_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


def recorder_kind(probe: Probe, name: str = "sku", **options: Any) -> Kind:
    def factory(key: str) -> Actor[Any]:
        return Recorder(key, probe)

    return Kind(name, factory, **options)


async def settle(rounds: int = 50) -> None:
    """Let every ready task run for a while (for checks that something did NOT happen)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(predicate: Callable[[], bool], rounds: int = 200_000) -> None:
    """Yield to the loop until ``predicate`` holds (fails the test if it never does)."""
    for _ in range(rounds):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def clock() -> ManualClock:  # overrides the engine's wall clock fixture for these tests
    return ManualClock()


# --- activation and message order ---------------------------------------------------------------


async def test_first_message_activates_the_actor(probe: Probe, clock: ManualClock) -> None:
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe))
        assert system.active() == 0 and probe.instances == []

        await system.send("sku:TEE-BLK-M", "hello")
        await until(lambda: probe.received() == ["hello"])

        [actor] = probe.instances
        assert actor.key == "sku:TEE-BLK-M" and actor.ident == "TEE-BLK-M"
        assert actor.system is system
        assert probe.count("activate") == 1
        assert system.active("sku") == 1 and system.keys("sku") == ["sku:TEE-BLK-M"]


async def test_one_actor_never_processes_two_messages_at_once(
    probe: Probe, clock: ManualClock
) -> None:
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, mailbox_size=8))

        async def sender(n: int) -> None:
            for i in range(50):
                await system.send("sku:A", (n, i))

        async with asyncio.TaskGroup() as senders:
            for n in range(20):
                senders.create_task(sender(n))
        await until(lambda: len(probe.received()) == 1000)

    assert probe.max_in_receive == 1


async def test_different_keys_are_processed_concurrently(clock: ManualClock) -> None:
    inside: set[str] = set()
    all_inside = asyncio.Event()

    class Meeter(Actor[str]):
        async def receive(self, message: str) -> None:
            inside.add(self.key)
            if len(inside) == 3:
                all_inside.set()
            await all_inside.wait()  # deadlocks if keys were processed one after another

    async with ActorSystem(clock=clock) as system:
        system.register(Kind("sku", Meeter))
        for key in ("sku:A", "sku:B", "sku:C"):
            await system.send(key, "meet")
        await asyncio.wait_for(all_inside.wait(), timeout=2)


async def test_messages_of_one_key_are_processed_in_send_order(
    probe: Probe, clock: ManualClock
) -> None:
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, mailbox_size=4))  # small: senders often wait
        for i in range(300):
            await system.send(f"sku:{i % 3}", i)
        await until(lambda: len(probe.received()) == 300)

    for k in range(3):
        assert probe.received(f"sku:{k}") == list(range(k, 300, 3))


# --- back-pressure --------------------------------------------------------------------------------


async def test_send_waits_while_the_mailbox_is_full_and_resumes_when_the_actor_catches_up(
    probe: Probe, clock: ManualClock
) -> None:
    probe.receive_gate.clear()  # the actor takes message 0 and then blocks
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, mailbox_size=2))
        await system.send("sku:A", 0)
        await until(lambda: probe.in_receive == 1)
        await system.send("sku:A", 1)
        await system.send("sku:A", 2)
        assert system.mailbox_depth("sku") == 2

        third = asyncio.create_task(system.send("sku:A", 3))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(third), timeout=0.05)
        assert not third.done() and system.mailbox_depth("sku") == 2

        probe.receive_gate.set()
        await asyncio.wait_for(third, timeout=2)
        await until(lambda: probe.received() == [0, 1, 2, 3])
        assert system.mailbox_depth("sku") == 0


async def test_try_send_returns_false_instead_of_waiting_when_the_mailbox_is_full(
    probe: Probe, clock: ManualClock
) -> None:
    probe.activate_gate.clear()
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, mailbox_size=2))
        assert system.try_send("sku:A", 1) is True
        assert system.try_send("sku:A", 2) is True
        assert system.try_send("sku:A", 3) is False
        probe.activate_gate.set()
        await until(lambda: probe.received() == [1, 2])
        assert system.try_send("sku:A", 4) is True
        await until(lambda: probe.received() == [1, 2, 4])


async def test_senders_waiting_for_room_are_served_in_the_order_they_came(
    probe: Probe, clock: ManualClock
) -> None:
    probe.receive_gate.clear()
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, mailbox_size=1))
        await system.send("sku:A", "first")
        await until(lambda: probe.in_receive == 1)
        await system.send("sku:A", "queued")
        waiting = []
        for name in ("x", "y", "z"):
            waiting.append(asyncio.create_task(system.send("sku:A", name)))
            await settle(3)
        await settle()
        probe.receive_gate.set()
        await asyncio.wait_for(asyncio.gather(*waiting), timeout=2)
        await until(lambda: len(probe.received()) == 5)
        assert probe.received() == ["first", "queued", "x", "y", "z"]


async def test_a_cancelled_waiting_sender_delivers_nothing_and_frees_its_turn(
    probe: Probe, clock: ManualClock
) -> None:
    probe.receive_gate.clear()
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, mailbox_size=1))
        await system.send("sku:A", 0)
        await until(lambda: probe.in_receive == 1)
        await system.send("sku:A", 1)
        gone = asyncio.create_task(system.send("sku:A", "cancelled"))
        await settle()
        later = asyncio.create_task(system.send("sku:A", 2))
        await settle()
        gone.cancel()
        await settle()
        probe.receive_gate.set()
        await asyncio.wait_for(later, timeout=2)
        await until(lambda: len(probe.received()) == 3)
        assert probe.received() == [0, 1, 2]
        assert system.try_send("sku:A", 3) is True


async def test_actor_does_not_inherit_the_context_of_the_sender_that_activated_it(
    clock: ManualClock,
) -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
    seen: list[str] = []

    class Reader(Actor[str]):
        async def receive(self, message: str) -> None:
            seen.append(request_id.get())

    async with ActorSystem(clock=clock) as system:
        system.register(Kind("sku", Reader))
        request_id.set("req-1")
        await system.send("sku:A", "m")
        await until(lambda: seen == ["-"])


# --- passivation ----------------------------------------------------------------------------------


async def test_idle_actor_is_passivated_and_the_next_message_activates_a_new_instance(
    probe: Probe, clock: ManualClock
) -> None:
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, idle_timeout_s=10.0))
        await system.send("sku:A", 1)
        await until(lambda: probe.received() == [1])

        clock.advance(9.9)
        await settle()
        assert system.active() == 1 and probe.count("passivate") == 0

        clock.advance(0.1)
        await until(lambda: system.active() == 0)
        assert probe.count("passivate") == 1

        await system.send("sku:A", 2)
        await until(lambda: probe.received() == [1, 2])
        first, second = probe.instances
        assert first is not second
        assert probe.count("activate") == 2


async def test_each_message_restarts_the_idle_countdown(probe: Probe, clock: ManualClock) -> None:
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, idle_timeout_s=10.0))
        await system.send("sku:A", 1)
        await system.send("sku:B", 1)
        await until(lambda: len(probe.received()) == 2)
        clock.advance(6)
        await system.send("sku:A", 2)
        await until(lambda: len(probe.received()) == 3)

        clock.advance(4)  # B idle for 10 s, A for 4 s
        await until(lambda: system.keys("sku") == ["sku:A"])
        clock.advance(5.9)
        await settle()
        assert system.keys("sku") == ["sku:A"]
        clock.advance(0.1)
        await until(lambda: system.active() == 0)


async def test_actor_without_idle_timeout_is_never_passivated(
    probe: Probe, clock: ManualClock
) -> None:
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, name="channel", idle_timeout_s=None))
        await system.send("channel:shopify", 1)
        await until(lambda: probe.received() == [1])
        clock.advance(1e6)
        await settle()
        assert system.keys("channel") == ["channel:shopify"]
    assert probe.count("passivate") == 1  # at shutdown


async def test_message_sent_while_passivating_is_kept_for_a_new_instance_that_starts_after(
    probe: Probe, clock: ManualClock
) -> None:
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, idle_timeout_s=1.0))
        await system.send("sku:A", 1)
        await until(lambda: probe.received() == [1])

        probe.passivate_gate.clear()
        clock.advance(1)
        await until(lambda: probe.count("passivate-start") == 1)
        await system.send("sku:A", 2)  # the old instance is still flushing
        await settle()
        assert probe.received() == [1] and probe.count("activate") == 1

        probe.passivate_gate.set()
        await until(lambda: probe.received() == [1, 2])
        whats = [what for what, _, _ in probe.events]
        assert whats == [
            *("activate", "receive", "passivate-start", "passivate"),
            *("activate", "receive"),
        ]


@pytest.mark.parametrize("seed", range(4))
async def test_no_message_is_lost_when_sends_race_passivation(seed: int) -> None:
    rng = random.Random(seed)
    clock = ManualClock()
    alive: set[str] = set()
    overlaps: list[str] = []
    got: dict[str, list[int]] = defaultdict(list)
    sent: dict[str, list[int]] = defaultdict(list)
    passivations = 0

    async def jitter(most: int) -> None:
        for _ in range(rng.randrange(most + 1)):
            await asyncio.sleep(0)

    class Racer(Actor[int]):
        async def on_activate(self) -> None:
            if self.key in alive:
                overlaps.append(self.key)
            alive.add(self.key)
            await jitter(2)

        async def receive(self, message: int) -> None:
            got[self.key].append(message)
            await jitter(1)

        async def on_passivate(self) -> None:
            nonlocal passivations
            passivations += 1
            await jitter(4)
            alive.discard(self.key)

    async with ActorSystem(clock=clock) as system:
        system.register(Kind("sku", Racer, mailbox_size=3, idle_timeout_s=1.0))
        for i in range(3000):
            key = f"sku:{rng.randrange(6)}"
            if rng.random() < 0.5:
                await system.send(key, i)
                sent[key].append(i)
            elif system.try_send(key, i):
                sent[key].append(i)
            if rng.random() < 0.3:
                clock.advance(rng.choice([0.4, 1.0, 1.6]))
            await jitter(3)
        await until(lambda: sum(map(len, got.values())) == sum(map(len, sent.values())))
        await settle()
        clock.advance(2)  # every actor is idle (or passivating) by now
        await until(lambda: system.active() == 0)

    assert got == sent
    assert not overlaps
    assert passivations > 200  # the races did happen


# --- supervision ----------------------------------------------------------------------------------


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> LogCapture:
    capture = LogCapture()
    monkeypatch.setattr(runtime, "log", structlog.wrap_logger(None, processors=[capture]))
    return capture


async def test_crashed_actor_is_restarted_after_backoff_and_keeps_the_messages_behind(
    probe: Probe, clock: ManualClock, logs: LogCapture
) -> None:
    probe.fail_on.add("boom")
    async with ActorSystem(clock=clock, restart_backoff_s=(1.0, 8.0)) as system:
        system.register(recorder_kind(probe))
        for message in ("a", "boom", "b", "c"):
            await system.send("sku:A", message)
        await until(lambda: system.restarts["sku"] == 1)
        assert probe.received() == ["a"]

        clock.advance(0.49)  # jitter keeps the first delay within [0.5, 1.0] s
        await settle()
        assert probe.received() == ["a"]
        clock.advance(0.51)
        await until(lambda: probe.received() == ["a", "b", "c"])

        first, second = probe.instances
        assert first is not second and probe.count("activate") == 2
        assert system.restarts == {"sku": 1}

    [crash] = [entry for entry in logs.entries if entry["log_level"] == "error"]
    assert crash["actor"] == "sku:A" and "Boom('boom')" in crash["error"]
    assert isinstance(crash["exc_info"], Boom)


async def test_crash_of_one_actor_does_not_disturb_the_others(
    probe: Probe, clock: ManualClock, logs: LogCapture
) -> None:
    probe.fail_on.add("boom")
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe))
        await system.send("sku:A", "boom")
        await system.send("sku:B", "fine")
        await until(lambda: probe.received() == ["fine"] and system.restarts["sku"] == 1)
        clock.advance(5)
        await system.send("sku:A", "later")
        await until(lambda: probe.received("sku:A") == ["later"])


async def test_failing_activation_is_retried_with_backoff_and_the_message_kept(
    probe: Probe, clock: ManualClock, logs: LogCapture
) -> None:
    probe.fail_activations = 2
    async with ActorSystem(clock=clock, restart_backoff_s=(1.0, 8.0)) as system:
        system.register(recorder_kind(probe))
        await system.send("sku:A", "m")
        await until(lambda: system.restarts["sku"] == 1)
        clock.advance(1.0)
        await until(lambda: system.restarts["sku"] == 2)
        await settle()
        assert probe.received() == []
        clock.advance(2.0)
        await until(lambda: probe.received() == ["m"])
        assert probe.count("activate-failed") == 2 and probe.count("activate") == 1


async def test_permanently_failing_actor_backs_off_at_the_cap_instead_of_hot_looping(
    clock: ManualClock, logs: LogCapture
) -> None:
    attempts = 0

    class Broken(Actor[int]):
        async def receive(self, message: int) -> None:
            nonlocal attempts
            attempts += 1
            raise Boom(message)

    async with ActorSystem(clock=clock, restart_backoff_s=(1.0, 4.0), max_restarts=3) as system:
        system.register(Kind("sku", Broken))
        for i in range(30):
            await system.send("sku:A", i)
        await settle(500)
        assert attempts == 1 and clock.sleepers == 1  # parked on the clock, not spinning

        for _ in range(10):  # ramp up: 1, 2, 4, 4, ... s (jittered down to half at most)
            before = attempts
            clock.advance(4.0)
            await until(lambda b=before: attempts == b + 1 and clock.sleepers == 1)
        assert attempts == 11

        for _ in range(5):  # at the cap the delay is at least 2 s: never two tries per 1.99 s
            before = attempts
            clock.advance(1.99)
            await settle(200)
            assert attempts == before
            clock.advance(2.01)
            await until(lambda b=before: attempts == b + 1 and clock.sleepers == 1)

        assert system.restarts["sku"] == attempts == 16
        assert sum("slowest pace" in e["event"] for e in logs.entries) == 1
        stopping = asyncio.create_task(system.stop("sku:A", drain=False))
        await settle()
        clock.advance(4.0)
        await asyncio.wait_for(stopping, timeout=2)
        assert system.active() == 0 and system.mailbox_depth() == 0


async def test_actor_that_can_never_activate_is_cancelled_when_drain_times_out(
    probe: Probe, clock: ManualClock, logs: LogCapture
) -> None:
    probe.fail_activations = 10**9
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe))
        await system.send("sku:A", "m")
        await until(lambda: system.restarts["sku"] == 1)
        assert await system.drain(timeout=0.05) is False
        assert system.active() == 0 and system.restarts["sku"] == 1


# --- stop and shutdown ----------------------------------------------------------------------------


async def test_stop_processes_the_mailbox_then_passivates_and_removes_the_actor(
    probe: Probe, clock: ManualClock
) -> None:
    probe.receive_gate.clear()
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, name="channel", idle_timeout_s=None))
        for i in range(3):
            await system.send("channel:ebay", i)
        stopping = asyncio.create_task(system.stop("channel:ebay"))
        await settle()
        assert not stopping.done()

        probe.receive_gate.set()
        await asyncio.wait_for(stopping, timeout=2)
        assert probe.received() == [0, 1, 2]
        assert probe.events[-1][0] == "passivate"
        assert system.active() == 0 and system.keys("channel") == []

        await system.stop("channel:ebay")  # not active: nothing to do
        await system.send("channel:ebay", 3)  # virtual: a later message activates it again
        await until(lambda: probe.received() == [0, 1, 2, 3])


async def test_stop_without_drain_drops_what_is_queued(probe: Probe, clock: ManualClock) -> None:
    probe.receive_gate.clear()
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, name="channel", idle_timeout_s=None))
        for i in range(4):
            await system.send("channel:ebay", i)
        await until(lambda: probe.in_receive == 1)  # 0 is being processed, 1..3 wait
        stopping = asyncio.create_task(system.stop("channel:ebay", drain=False))
        await settle()
        assert system.mailbox_depth("channel") == 0
        probe.receive_gate.set()
        await asyncio.wait_for(stopping, timeout=2)
        assert probe.received() == [0] and probe.count("passivate") == 1
        assert system.active() == 0


async def test_leaving_the_system_processes_everything_queued_and_passivates_all(
    probe: Probe, clock: ManualClock
) -> None:
    probe.receive_gate.clear()
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, mailbox_size=100))
        system.register(recorder_kind(probe, name="channel", idle_timeout_s=None))
        for i in range(50):
            await system.send(f"sku:{i % 5}", i)
            await system.send("channel:shopify", i)
        assert system.mailbox_depth() > 0
        asyncio.get_running_loop().call_later(0.01, probe.receive_gate.set)

    assert sorted(probe.received()) == sorted(list(range(50)) * 2)
    assert probe.count("passivate") == 6
    assert system.active() == 0 and system.mailbox_depth() == 0


async def test_actors_may_still_send_to_each_other_while_the_system_drains(
    probe: Probe, clock: ManualClock
) -> None:
    class Forwarder(Actor[int]):
        async def receive(self, message: int) -> None:
            await asyncio.sleep(0)
            await self.system.send("channel:shopify", message)

    async with ActorSystem(clock=clock) as system:
        system.register(Kind("sku", Forwarder))
        system.register(recorder_kind(probe, name="channel", idle_timeout_s=None))
        for i in range(20):
            await system.send(f"sku:{i % 4}", i)

    assert sorted(probe.received("channel:shopify")) == list(range(20))


async def test_send_is_refused_before_start_during_drain_and_after_close(
    probe: Probe, clock: ManualClock
) -> None:
    system = ActorSystem(clock=clock)
    system.register(recorder_kind(probe))
    with pytest.raises(ActorSystemClosed):
        await system.send("sku:A", 0)

    probe.receive_gate.clear()
    async with system:
        await system.send("sku:A", 1)
        draining = asyncio.create_task(system.drain(timeout=5))
        await settle()
        with pytest.raises(ActorSystemClosed):
            await system.send("sku:A", 2)
        with pytest.raises(ActorSystemClosed):
            system.try_send("sku:B", 2)
        probe.receive_gate.set()
        assert await draining is True

    with pytest.raises(ActorSystemClosed):
        await system.send("sku:A", 3)
    assert probe.received() == [1]


async def test_sender_waiting_on_a_cancelled_actor_gets_an_error_not_a_hang(
    probe: Probe, clock: ManualClock
) -> None:
    probe.receive_gate.clear()
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, mailbox_size=1))
        await system.send("sku:A", 1)
        await until(lambda: probe.in_receive == 1)
        await system.send("sku:A", 2)
        blocked = asyncio.create_task(system.send("sku:A", 3))
        await settle()
        assert await system.drain(timeout=0.05) is False
        with pytest.raises(ActorSystemClosed):
            await asyncio.wait_for(blocked, timeout=2)
        assert system.active() == 0 and system.mailbox_depth() == 0


async def test_stop_returns_even_when_the_drain_timeout_cancels_the_passivation(
    probe: Probe, clock: ManualClock
) -> None:
    probe.passivate_gate.clear()  # on_passivate never finishes
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe))
        await system.send("sku:A", 1)
        stopping = asyncio.create_task(system.stop("sku:A"))
        await until(lambda: probe.count("passivate-start") == 1)
        assert await system.drain(timeout=0.05) is False
        await asyncio.wait_for(stopping, timeout=2)
        assert system.active() == 0


async def test_unknown_kind_is_a_typed_key_error(clock: ManualClock) -> None:
    async with ActorSystem(clock=clock) as system:
        with pytest.raises(UnknownKind) as caught:
            await system.send("nope:1", "x")
        assert isinstance(caught.value, KeyError) and caught.value.kind == "nope"
        with pytest.raises(KeyError):
            system.active("nope")


def test_kind_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="mailbox_size"):
        Kind("sku", Actor, mailbox_size=0)
    with pytest.raises(ValueError, match="idle_timeout_s"):
        Kind("sku", Actor, idle_timeout_s=0)
    with pytest.raises(ValueError, match="name"):
        Kind("a:b", Actor)


# --- scale and metrics ----------------------------------------------------------------------------


async def test_hundred_thousand_keys_touched_once_all_passivate_and_the_registry_empties(
    clock: ManualClock,
) -> None:
    received = 0

    class Once(Actor[int]):
        async def receive(self, message: int) -> None:
            nonlocal received
            received += 1

    async with ActorSystem(clock=clock) as system:
        system.register(Kind("sku", Once, mailbox_size=1, idle_timeout_s=1.0))
        for i in range(100_000):
            await system.send(f"sku:{i}", i)
        await until(lambda: received == 100_000)
        assert system.active("sku") == 100_000

        clock.advance(1.0)
        await until(lambda: system.active() == 0)
        state = system._kinds["sku"]
        assert state.actors == {} and len(state.idle) == 0 and state.depth == 0
        assert system.keys("sku") == [] and system.mailbox_depth() == 0


async def test_metrics_count_active_actors_and_queued_messages_per_kind(
    probe: Probe, clock: ManualClock
) -> None:
    probe.receive_gate.clear()
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe))
        system.register(recorder_kind(probe, name="channel", idle_timeout_s=None))
        for i in range(3):
            await system.send("sku:A", i)
        await system.send("sku:B", 0)
        await system.send("channel:amazon", 0)
        await until(lambda: probe.in_receive == 3)  # each took its first message

        assert (system.active("sku"), system.active("channel"), system.active()) == (2, 1, 3)
        assert system.mailbox_depth("sku") == 2 and system.mailbox_depth("channel") == 0
        assert system.mailbox_depth() == 2
        assert sorted(system.keys("sku")) == ["sku:A", "sku:B"]
        probe.receive_gate.set()
        await until(lambda: system.mailbox_depth() == 0 and len(probe.received()) == 5)


# --- the clocks -----------------------------------------------------------------------------------


async def test_manual_clock_wakes_sleepers_only_when_advanced_past_their_deadline() -> None:
    clock = ManualClock(wall_ms=1_000)
    woke: list[str] = []

    async def nap(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(nap("long", 2.0))
        tg.create_task(nap("short", 1.0))
        await settle()
        assert clock.sleepers == 2 and clock.next_deadline == 1.0
        clock.advance(0.5)
        await settle()
        assert woke == []
        clock.advance(2.0)
    assert woke == ["short", "long"]
    assert clock.now() == 2.5 and clock.wall_ms() == 3_500


async def test_system_clock_reads_real_time() -> None:
    clock = SystemClock()
    before = clock.now()
    await clock.sleep(0.01)
    assert clock.now() - before >= 0.009
    assert abs(clock.wall_ms() - time.time() * 1000) < 1000


# --- bounded idle actors ------------------------------------------------------------------------


async def test_past_max_idle_the_actor_idle_the_longest_is_passivated_at_once(
    probe: Probe, clock: ManualClock
) -> None:
    async with ActorSystem(clock=clock) as system:
        system.register(recorder_kind(probe, idle_timeout_s=60.0, max_idle=3))
        for i in range(10):
            await system.send(f"sku:{i}", i)
            await until(lambda i=i: probe.received(f"sku:{i}") == [i])  # type: ignore[misc]
        await until(lambda: system.active() == 3)
        # No clock moved: the oldest went because of the bound, not the timeout.
        assert sorted(system.keys("sku")) == ["sku:7", "sku:8", "sku:9"]
        assert [k for what, k, _ in probe.events if what == "passivate"] == [
            f"sku:{i}" for i in range(7)
        ]
        # A passivated key comes back as a new instance with its next message.
        await system.send("sku:0", 100)
        await until(lambda: probe.received("sku:0") == [0, 100])
        assert probe.count("activate", "sku:0") == 2
        await until(lambda: system.active() == 3)
        assert "sku:7" not in system.keys("sku")


async def test_max_idle_loses_no_message_under_concurrent_senders(clock: ManualClock) -> None:
    got: dict[str, list[int]] = defaultdict(list)

    class Counter(Actor[int]):
        async def receive(self, message: int) -> None:
            got[self.key].append(message)
            await asyncio.sleep(0)

    async with ActorSystem(clock=clock) as system:
        system.register(Kind("sku", Counter, mailbox_size=4, idle_timeout_s=60.0, max_idle=5))

        async def sender(n: int) -> None:
            for i in range(200):
                await system.send(f"sku:{(i * 7 + n) % 40}", n * 1000 + i)

        await asyncio.gather(*(sender(n) for n in range(8)))
        await until(lambda: sum(map(len, got.values())) == 8 * 200)
        await until(lambda: system.active() <= 5)
    for key, values in got.items():
        for n in range(8):  # each sender's messages to one key arrive in its order
            mine = [v for v in values if v // 1000 == n]
            assert mine == sorted(mine), key


def test_max_idle_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_idle"):
        Kind("sku", Actor, max_idle=0)
