"""A small virtual-actor runtime on asyncio (Orleans-style, structured with one TaskGroup).

Callers send to a key (``"sku:TEE-BLK-M"``, ``"channel:shopify"``) and never manage lifetimes:
the actor is activated on its first message, processes one message at a time from a bounded
mailbox (senders wait when it is full), is passivated after ``idle_timeout_s`` without messages,
and is restarted with backoff when it raises. Every actor task belongs to the system's
``asyncio.TaskGroup``; leaving ``async with ActorSystem()`` drains every mailbox, passivates
every actor, and cancels whatever is left after the timeout.

Why not a library: thespian and pykka are thread/process based, and the asyncio actor packages
that exist are whole frameworks (clustering, serialisation, their own event loops) or unkept.
What we need is a few hundred lines, so it lives here, typed and tested.

How it works, and why it stays O(1) per message:

- One ``_Activation`` per active key: a bounded mailbox (``asyncio.Queue`` semantics, fewer
  objects) and the task that reads it. The task owns the ``Actor`` instance; it creates one
  lazily (factory, ``on_activate``) when a message arrives and none is live, so a restart or a
  re-activation costs nothing until needed.
- Idle actors of a kind sit in an ``OrderedDict`` in the order they went idle; since a kind has
  one timeout, that is also deadline order. One reaper task per kind sleeps (on the clock) until
  the oldest deadline and wakes expired actors with a sentinel in their (empty) mailbox.
- A passivating actor stays registered until its task ends, so a message sent meanwhile lands in
  the same mailbox; after ``on_passivate`` the task re-checks its mailbox (and senders waiting on
  it) and re-activates a fresh instance instead of exiting. No message is lost, and a new
  instance never runs alongside the old one's ``on_passivate``.
- During shutdown (``drain``) sends from outside are refused, but actors may still send to each
  other (a SKU actor's last updates reach its channel actors); the drain ends when no actor is
  left.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections import OrderedDict, deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Generic, TypeVar

import msgspec
import structlog

from ..core.clock import Clock, SystemClock
from ..core.retry import Backoff

__all__ = [
    "Actor",
    "ActorSystem",
    "ActorSystemClosed",
    "Kind",
    "UnknownKind",
    "kind_of",
]

log = structlog.get_logger("invsync.actors")

M = TypeVar("M")

#: How close to a deadline counts as reached (float noise between ``now + d`` and a deadline).
_EPSILON: Final = 1e-9


class ActorSystemClosed(RuntimeError):
    """The actor system is not running: not started yet, or shutdown has begun."""


class UnknownKind(KeyError):
    """A key names a kind that was never registered (``kind`` says which)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind

    def __str__(self) -> str:
        return f"no actor kind {self.kind!r} is registered"


def kind_of(key: str) -> str:
    """The kind part of an actor key: what comes before the first ``:`` (the whole key if none)."""
    return key.partition(":")[0]


class Actor(Generic[M]):
    """Base class of an actor kind. The runtime sets ``key`` and ``system`` before
    ``on_activate``; ``receive`` is never called concurrently for one key."""

    key: str
    system: ActorSystem

    def __init__(self, key: str) -> None:
        self.key = key

    @property
    def ident(self) -> str:
        """The part of the key after the first ``:`` (the SKU, the channel id)."""
        return self.key.partition(":")[2]

    async def on_activate(self) -> None:
        """Called once per instance before its first message (load state). Raising is a crash."""

    async def receive(self, message: M) -> None:
        """Handle one message. Raising drops this message and restarts the actor."""
        raise NotImplementedError

    async def on_passivate(self) -> None:
        """Called when the instance goes away: idle passivation, ``stop`` and shutdown (flush
        state). Not called on an instance that crashed."""


class Kind(msgspec.Struct, frozen=True):
    """Registration of one actor kind: keys ``<name>:<ident>`` are built by ``factory(key)``.

    ``idle_timeout_s=None`` means never passivate on idleness (channel actors). ``max_idle``
    bounds how many actors of the kind stay parked on an empty mailbox: past it the one idle the
    longest is passivated at once, before its timeout (a million-SKU import would otherwise keep
    a million SKU actors, each with its task, for a whole idle timeout)."""

    name: str
    factory: Callable[[str], Actor[Any]]
    mailbox_size: int = 1000
    idle_timeout_s: float | None = 60.0
    max_idle: int | None = None

    def __post_init__(self) -> None:
        if not self.name or ":" in self.name:
            raise ValueError(f"actor kind name must be non-empty without ':': {self.name!r}")
        if self.mailbox_size < 1:
            raise ValueError(f"mailbox_size must be at least 1, got {self.mailbox_size}")
        if self.idle_timeout_s is not None and self.idle_timeout_s <= 0:
            raise ValueError(f"idle_timeout_s must be positive or None, got {self.idle_timeout_s}")
        if self.max_idle is not None and self.max_idle < 1:
            raise ValueError(f"max_idle must be at least 1 or None, got {self.max_idle}")


class _Passivate:
    """Mailbox sentinel: passivate now (idle timeout or shutdown)."""


class _Stop:
    """Mailbox sentinel from ``stop()``: passivate, then resolve ``done``."""

    __slots__ = ("done",)

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done


_PASSIVATE: Final = _Passivate()


class _KindState:
    """Runtime bookkeeping of one kind."""

    __slots__ = ("actors", "depth", "idle", "idle_added", "kind", "reaper")

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.actors: dict[str, _Activation] = {}
        # Actors parked on an empty mailbox, oldest first (= earliest idle deadline first).
        self.idle: OrderedDict[str, _Activation] = OrderedDict()
        self.idle_added = asyncio.Event()
        self.depth = 0  # messages queued in this kind's mailboxes (sentinels excluded)
        self.reaper: asyncio.Task[None] | None = None


class _Activation:
    """One active key: its bounded mailbox and the task that reads it.

    The mailbox is a deque plus two kinds of waiters (the actor task waiting for an item,
    senders waiting for room, served first come first served). It is ``asyncio.Queue``'s logic
    without its weight: a queue brings six objects (four deques, an Event), and with 100,000
    actors the garbage collector's full passes over them cost more than the messages.
    """

    __slots__ = (
        "admitted",
        "dead",
        "idle_since",
        "items",
        "key",
        "putters",
        "senders",
        "size",
        "state",
        "task",
        "waiter",
    )

    def __init__(self, key: str, state: _KindState) -> None:
        self.key = key
        self.state = state
        self.size = state.kind.mailbox_size
        self.items: deque[object] = deque()
        self.waiter: asyncio.Future[None] | None = None  # the task, parked on an empty mailbox
        self.putters: deque[asyncio.Future[None]] | None = None  # senders waiting for room
        self.admitted = 0  # senders let in (a slot is theirs) that have not pushed yet
        self.senders = 0  # senders inside send()/stop() waiting for room: the task must not end
        self.idle_since = 0.0
        self.dead = False
        self.task: asyncio.Task[None] | None = None

    def has_room(self) -> bool:
        """Room for one more, and no sender waiting ahead (senders are served in order)."""
        return len(self.items) + self.admitted < self.size and not self.putters

    def push(self, item: object) -> None:
        """Append (room is the caller's business) and wake the task if it waits."""
        self.items.append(item)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def pop(self) -> object:
        """Take the oldest item and let the next waiting sender in."""
        item = self.items.popleft()
        self._admit()
        return item

    async def put(self, item: object) -> None:
        """Push once there is room, after the senders that waited before this one."""
        if not self.has_room():
            if self.putters is None:
                self.putters = deque()
            room = asyncio.get_running_loop().create_future()
            self.putters.append(room)
            try:
                await room
            except BaseException:
                if room.done() and not room.cancelled():
                    self.admitted -= 1  # let in, but leaving: pass the slot on
                    self._admit()
                else:
                    room.cancel()
                    if room in self.putters:
                        self.putters.remove(room)
                raise
            self.admitted -= 1
        self.push(item)

    def _admit(self) -> None:
        """Let waiting senders in while there is room (each gets a reserved slot)."""
        putters = self.putters
        while putters and len(self.items) + self.admitted < self.size:
            room = putters.popleft()
            if not room.done():
                room.set_result(None)
                self.admitted += 1


#: The system whose actor task is running (actors may still send to each other during drain).
_INSIDE: contextvars.ContextVar[ActorSystem | None] = contextvars.ContextVar(
    "invsync_actor_system", default=None
)


class ActorSystem:
    """Hosts virtual actors; an async context manager that owns every actor task.

    ``restart_backoff_s`` is (first delay, cap) of the restart backoff (``core.retry.Backoff``
    with equal jitter: each delay is drawn from [ceiling/2, ceiling], so restarts of many keys
    spread out but never come near zero); after ``max_restarts`` consecutive failures of a key
    without a successful message it stays at the cap.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        restart_backoff_s: tuple[float, float] = (0.05, 5.0),
        max_restarts: int = 10,
        rng: random.Random | None = None,
    ) -> None:
        base, cap = restart_backoff_s
        if base <= 0 or cap < base:
            raise ValueError(f"restart_backoff_s must be 0 < first <= cap, got {restart_backoff_s}")
        self.clock: Clock = clock or SystemClock()
        self.restart_backoff_s = restart_backoff_s
        self.max_restarts = max_restarts
        #: Crashes (receive or on_activate raised) per kind, for ``invsync_actor_restarts``.
        self.restarts: dict[str, int] = {}
        self._restart_backoff = Backoff(base, cap, jitter="equal", rng=rng)
        self._kinds: dict[str, _KindState] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._context = contextvars.Context()
        self._running = False
        self._closing = False  # drain began: only actors may still send
        self._closed = False  # drain ended: nobody may send
        self._count = 0  # active actors, all kinds
        self._empty = asyncio.Event()  # set whenever _count drops to 0

    # --- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> ActorSystem:
        if self._running or self._closed:
            raise RuntimeError("an ActorSystem runs once")
        self._context = contextvars.copy_context()
        self._context.run(_INSIDE.set, self)  # actor tasks run in copies of this context
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._running = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        try:
            if exc_type is None or issubclass(exc_type, Exception):
                await self.drain(timeout=10.0)
        finally:
            self._closing = self._closed = True
            for state in self._kinds.values():
                if state.reaper is not None:
                    state.reaper.cancel()
                for act in state.actors.values():
                    if act.task is not None:
                        act.task.cancel()
            # The body's own exception (if any) propagates unchanged: the group is told nothing.
            await self._tg.__aexit__(None, None, None)
            self._running = False

    async def drain(self, timeout: float) -> bool:
        """Refuse new sends from outside, let every mailbox empty and passivate every actor.

        ``timeout`` is in real (event loop) seconds, the budget a service manager gives a stop.
        Returns False when it ran out; the actors still running are then cancelled.
        """
        if not self._running or self._closed:
            return True
        self._closing = True
        for state in self._kinds.values():
            while state.idle:  # parked on an empty mailbox: wake them to passivate
                _, act = state.idle.popitem(last=False)
                act.push(_PASSIVATE)
        try:
            async with asyncio.timeout(timeout):
                while self._count:
                    self._empty.clear()
                    await self._empty.wait()
            return True
        except TimeoutError:
            left = [
                act.task
                for state in self._kinds.values()
                for act in state.actors.values()
                if act.task is not None
            ]
            log.warning("actor drain timed out", timeout_s=timeout, cancelled=len(left))
            for task in left:
                task.cancel()
            if left:
                await asyncio.wait(left)
            return False
        finally:
            self._closed = True

    # --- registration and metrics ---------------------------------------------------------------

    def register(self, kind: Kind) -> None:
        """Make keys ``<kind.name>:...`` routable. A kind is registered once."""
        if kind.name in self._kinds:
            raise ValueError(f"actor kind {kind.name!r} is already registered")
        self._kinds[kind.name] = _KindState(kind)
        self.restarts.setdefault(kind.name, 0)

    def active(self, kind: str | None = None) -> int:
        """Active actors of ``kind`` (all kinds when None), for ``invsync_actors_active``."""
        if kind is None:
            return self._count
        return len(self._state(kind).actors)

    def mailbox_depth(self, kind: str | None = None) -> int:
        """Messages waiting in the mailboxes of ``kind`` (all kinds when None), for
        ``invsync_mailbox_depth``; the message being processed is not counted."""
        if kind is None:
            return sum(state.depth for state in self._kinds.values())
        return self._state(kind).depth

    def keys(self, kind: str) -> list[str]:
        """Keys of the active actors of ``kind``."""
        return list(self._state(kind).actors)

    def kinds(self) -> list[str]:
        """Names of the registered kinds."""
        return list(self._kinds)

    # --- sending --------------------------------------------------------------------------------

    async def send(self, key: str, message: object) -> None:
        """Deliver ``message`` to the actor ``key``, activating it if needed; waits while its
        mailbox is full. Raises ActorSystemClosed once shutdown began, UnknownKind for a key of
        an unregistered kind."""
        act = self._target(key)
        if act.has_room():
            act.push(message)
        else:
            act.senders += 1
            try:
                await act.put(message)
            finally:
                act.senders -= 1
        self._delivered(act)
        if act.dead:  # the actor was cancelled (drain timed out) while we waited for room
            _discard(act)  # also wakes the next waiting sender, which then gets here too
            raise ActorSystemClosed(f"actor {key} was cancelled during shutdown")

    def try_send(self, key: str, message: object) -> bool:
        """Like ``send`` but never waits: False (nothing sent) when the mailbox is full."""
        act = self._target(key)
        if not act.has_room():
            return False
        act.push(message)
        self._delivered(act)
        return True

    async def stop(self, key: str, *, drain: bool = True) -> None:
        """Stop the actor ``key`` (a channel removed on reload): process what its mailbox holds
        (or drop it when ``drain`` is False), call ``on_passivate``, remove it. A no-op when the
        actor is not active; a later send activates it again."""
        state = self._state(kind_of(key))
        act = state.actors.get(key)
        if act is None:
            return
        if act.task is asyncio.current_task():
            raise RuntimeError(f"actor {key} cannot stop itself from its own task (deadlock)")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not drain:
            dropped = _discard(act)
            if dropped:
                log.info("actor stopped without draining", actor=key, dropped=dropped)
        state.idle.pop(key, None)
        act.senders += 1
        try:
            await act.put(_Stop(done))  # waits for room: draining keeps order
        finally:
            act.senders -= 1
        await done

    def _target(self, key: str) -> _Activation:
        if self._closed or not self._running or (self._closing and _INSIDE.get() is not self):
            raise ActorSystemClosed(
                "actor system is shutting down" if self._running else "actor system is not running"
            )
        state = self._state(kind_of(key))
        act = state.actors.get(key)
        if act is None:
            act = self._activate(key, state)
        return act

    def _delivered(self, act: _Activation) -> None:
        state = act.state
        state.depth += 1
        state.idle.pop(act.key, None)  # it has work now: not a passivation candidate

    def _state(self, kind: str) -> _KindState:
        try:
            return self._kinds[kind]
        except KeyError:
            raise UnknownKind(kind) from None

    # --- the actor task -------------------------------------------------------------------------

    def _activate(self, key: str, state: _KindState) -> _Activation:
        assert self._tg is not None
        act = _Activation(key, state)
        state.actors[key] = act
        self._count += 1
        # A fresh copy of the system's context, not the first sender's: what a caller bound in
        # contextvars (log context, deadlines) must not stick to the actor for its lifetime.
        act.task = self._tg.create_task(
            self._run(act), name=f"actor {key}", context=self._context.copy()
        )
        if state.kind.idle_timeout_s is not None and state.reaper is None:
            state.reaper = self._tg.create_task(self._reap(state), name=f"reaper {state.kind.name}")
        return act

    async def _run(self, act: _Activation) -> None:
        """The life of one activation: messages one at a time, instances created lazily,
        crashes supervised, and an exit only when the mailbox is empty and nobody waits on it."""
        state = act.state
        kind = state.kind
        instance: Actor[Any] | None = None
        failures = 0  # consecutive crashes without a successful message
        try:
            while True:
                item = await self._next(act)
                if isinstance(item, _Passivate | _Stop):
                    try:
                        if instance is not None:
                            await self._passivate(act, instance)
                            instance = None
                    finally:  # even when cancelled mid-passivation: stop() must not hang
                        if isinstance(item, _Stop) and not item.done.done():
                            item.done.set_result(None)
                    if not act.items and not act.senders:
                        return  # finally: unregister, synchronously with this check
                    continue  # sent while passivating: the next message re-activates
                state.depth -= 1
                while instance is None:
                    try:
                        instance = kind.factory(act.key)
                        instance.key = act.key
                        instance.system = self
                        await instance.on_activate()
                    except Exception as error:
                        instance = None
                        failures += 1
                        _log_crash(act, "actor activation failed", error)
                        await self._backoff(act, failures)
                try:
                    await instance.receive(item)
                except Exception as error:
                    instance = None  # its state is suspect: a fresh one takes the next message
                    failures += 1
                    _log_crash(act, "actor crashed, message dropped", error, type(item).__name__)
                    await self._backoff(act, failures)
                else:
                    failures = 0
        finally:
            self._unregister(act)

    async def _next(self, act: _Activation) -> object:
        """The next mailbox item; parks the actor as idle while its mailbox is empty."""
        if act.items:
            return act.pop()
        if self._closing and not act.senders:
            return _PASSIVATE  # shutting down and nothing left: passivate and end
        state = act.state
        act.idle_since = self.clock.now()
        idle = state.idle
        idle[act.key] = act
        state.idle_added.set()
        cap = state.kind.max_idle
        if cap is not None and len(idle) > cap:
            # The one idle the longest goes now (never this one: cap >= 1 keeps it last).
            _, oldest = idle.popitem(last=False)
            oldest.push(_PASSIVATE)  # parked means an empty mailbox: this never blocks
        try:
            while not act.items:
                waiter = act.waiter = asyncio.get_running_loop().create_future()
                await waiter
        finally:
            act.waiter = None
            state.idle.pop(act.key, None)
        return act.pop()

    async def _passivate(self, act: _Activation, instance: Actor[Any]) -> None:
        try:
            await instance.on_passivate()
        except Exception as error:
            _log_crash(act, "actor on_passivate failed", error)

    async def _backoff(self, act: _Activation, failures: int) -> None:
        """Count a crash and wait before the next instance: exponential, jittered, capped."""
        kind = act.state.kind.name
        self.restarts[kind] += 1
        rule = self._restart_backoff
        if failures > self.max_restarts:
            delay = rule.capped()
            if failures == self.max_restarts + 1:
                log.warning(
                    "actor keeps failing; restarting at the slowest pace",
                    actor=act.key,
                    kind=kind,
                    failures=failures,
                    cap_s=rule.cap_s,
                )
        else:
            delay = rule.delay(failures - 1)
        await self.clock.sleep(delay)

    def _unregister(self, act: _Activation) -> None:
        state = act.state
        act.dead = True
        if state.actors.get(act.key) is act:
            del state.actors[act.key]
            self._count -= 1
        state.idle.pop(act.key, None)
        _discard(act)  # only non-empty when cancelled; resolves stop() callers, frees senders
        if not self._count:
            self._empty.set()

    async def _reap(self, state: _KindState) -> None:
        """Passivate the actors of one kind idle for longer than its timeout, oldest first."""
        timeout = state.kind.idle_timeout_s
        assert timeout is not None
        idle = state.idle
        while True:
            if not idle:
                state.idle_added.clear()
                await state.idle_added.wait()
                continue
            now = self.clock.now()
            while idle:
                act = next(iter(idle.values()))
                wait = act.idle_since + timeout - now
                if wait > _EPSILON:
                    break
                idle.popitem(last=False)
                # Parked means an empty mailbox (a send unparks it), so this never blocks.
                act.push(_PASSIVATE)
            else:
                continue
            # Entries behind the head went idle later, so the head's deadline comes first.
            await self.clock.sleep(wait)


def _log_crash(act: _Activation, event: str, error: Exception, message: str | None = None) -> None:
    # No logger bound per activation: binding costs more than a message, and crashes are rare.
    log.error(
        event,
        actor=act.key,
        kind=act.state.kind.name,
        error=repr(error),
        message=message,
        exc_info=error,
    )


def _discard(act: _Activation) -> int:
    """Empty a mailbox; returns how many messages were dropped (stop() callers are resolved)."""
    dropped = 0
    while act.items:
        item = act.pop()
        if isinstance(item, _Stop):
            if not item.done.done():
                item.done.set_result(None)
        elif not isinstance(item, _Passivate):
            dropped += 1
    act.state.depth -= dropped
    return dropped
