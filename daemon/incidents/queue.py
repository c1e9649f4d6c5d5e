"""The exception queue: problems an operations team acts on, as records in Redis.

A record names its kind (``daemon/incidents/kinds.py``), the order / SKU / channel, what
happened, the options with their downstream effect, and its state (``open``, ``auto_resolved``,
``resolved``). Ids are derived from the cause, so a replayed event finds its record instead of
adding one. ``[exceptions] auto_resolve`` applies an action at once where the policy allows it;
otherwise an operator resolves through ``POST /v1/exceptions/{id}/resolve``. Resolving runs the
action for real (``actions.py``: a re-route reserves, a cancel releases). The records live in
``store.py``; this module raises, resolves and samples them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec
import structlog

from ...core.config import Config
from ...core.errors import InvalidRequest
from ...core.events import OrderCreated
from ...engine import keys
from ...engine.engine import Engine
from ...metrics import definitions as m
from .actions import (
    ActionRunner,
    CancelOnChannel,
    CancelSupport,
    Notify,
    Repush,
    ReserveAgain,
)
from .kinds import ACTIONS
from .records import (
    ActionNotPossible,
    AlreadyResolved,
    ExceptionRecord,
    Option,
    UnknownAction,
    UnknownException,
    exception_id,
)
from .rules import DAY_MS, OutageTracker, backorder_eta, date_text, shortfall
from .store import ExceptionStore, as_text, call

__all__ = ["ExceptionQueue", "Publish"]

log = structlog.get_logger("invsync.exceptions")

#: A new or changed record (the live feed's ``{"type": "exception", ...}``).
Publish = Callable[[ExceptionRecord], Awaitable[None] | None]


class ExceptionQueue:
    """Records, lists and resolves exceptions; ``raise_*`` are the producers' entry points."""

    def __init__(
        self,
        engine: Engine,
        config: Callable[[], Config],
        *,
        reserve_again: ReserveAgain | None = None,
        cancel_support: CancelSupport | None = None,
        cancel_on_channel: CancelOnChannel | None = None,
        repush: Repush | None = None,
        publish: Publish | None = None,
        notify: Notify | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._config = config
        self.store = ExceptionStore(engine.redis)
        self.actions = ActionRunner(
            engine,
            reserve_again=reserve_again,
            cancel_support=cancel_support,
            cancel_on_channel=cancel_on_channel,
            repush=repush,
            notify=notify,
        )
        self.publish = publish
        self._clock = clock
        self.outages = OutageTracker()
        #: channel -> id of its open channel_unreachable record
        self._outage_ids: dict[str, str] = {}

    @property
    def reserve_again(self) -> ReserveAgain | None:
        """The processor's re-route (set once the processor exists; it needs the queue first)."""
        return self.actions.reserve_again

    @reserve_again.setter
    def reserve_again(self, value: ReserveAgain | None) -> None:
        self.actions.reserve_again = value

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- reads ----------------------------------------------------------------------------

    async def get(self, exception_id: str) -> ExceptionRecord:
        """The record, or UnknownException."""
        return await self.store.get(exception_id)

    async def query(
        self,
        *,
        state: str | None = "open",
        kind: str | None = None,
        channel: str | None = None,
        limit: int = 100,
        before_ms: int | None = None,
    ) -> list[ExceptionRecord]:
        """Records, newest first: open ones (``state="open"``), of one state, or all (None)."""
        return await self.store.query(
            state=state, kind=kind, channel=channel, limit=limit, before_ms=before_ms
        )

    async def open_counts(self) -> dict[str, int]:
        """Kind -> open exceptions (for ``invsync_exceptions_open``)."""
        return await self.store.open_counts()

    async def sample_metrics(self) -> None:
        """Set ``invsync_exceptions_open{kind}`` from the store."""
        for kind, n in (await self.open_counts()).items():
            m.EXCEPTIONS_OPEN.labels(kind=kind).set(n)

    # -- writing --------------------------------------------------------------------------

    async def _create(self, record: ExceptionRecord) -> ExceptionRecord:
        """Store ``record`` unless its id exists (then the stored one is returned); apply the
        configured policy to a new one."""
        record, created = await self.store.add(record)
        if not created:
            return record
        log.warning(
            "exception_opened",
            id=record.id,
            kind=record.kind,
            channel=record.channel,
            order=record.order_id,
            sku=record.sku,
            summary=record.summary,
        )
        await self._published(record)
        action = self._config().exceptions.auto_resolve.get(record.kind)
        if action is not None:
            record = await self._auto(record, action)
        return record

    async def _auto(self, record: ExceptionRecord, action: str) -> ExceptionRecord:
        option = next((o for o in record.options if o.action == action), None)
        why = option.why_not if option else f"{record.kind} does not offer {action!r}"
        eta = record.details.get("backorder_until_ms")
        within = self._config().exceptions.backorder_within_days
        if action == "backorder" and eta is not None and eta - self._now_ms() > within * DAY_MS:
            option, why = None, f"incoming stock is expected after {within} days"
        if option is None or not option.possible:
            log.info("exception_policy_skipped", id=record.id, action=action, reason=why)
            record.attempts.append(
                {"action": action, "by": "policy", "ok": False, "why": why, "ms": self._now_ms()}
            )
            await self._save(record)
            return record
        try:
            return await self.resolve(record.id, action, by="policy", auto=True)
        except (ActionNotPossible, AlreadyResolved) as exc:
            log.info("exception_policy_skipped", id=record.id, action=action, reason=exc.message)
            return await self.get(record.id)

    async def _save(self, record: ExceptionRecord) -> None:
        record.updated_ms = self._now_ms()
        await self.store.save(record)

    async def _published(self, record: ExceptionRecord) -> None:
        if self.publish is None:
            return
        result = self.publish(record)
        if result is not None:
            await result

    # -- producers ------------------------------------------------------------------------

    def _new(self, kind: str, cause: Sequence[str], summary: str, **fields: Any) -> ExceptionRecord:
        now = self._now_ms()
        options = fields.pop("options", None)
        if options is None:
            options = [Option(action=a, effect=e) for a, e in ACTIONS[kind].items()]
        return ExceptionRecord(
            id=exception_id(kind, *cause),
            kind=kind,
            summary=summary,
            options=options,
            created_ms=now,
            updated_ms=now,
            **fields,
        )

    async def raise_order_problem(
        self,
        kind: str,
        event: OrderCreated,
        shortages: list[dict[str, Any]],
        *,
        reason: str,
        last_take: Mapping[str, Mapping[str, Any]] | None = None,
        unknown: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> ExceptionRecord:
        """An order that could not be reserved: ``oversold``, ``unroutable`` or ``unknown_sku``.
        The details say what each channel was last sent, the incoming stock, and what took the
        last unit where known; the options say whether a backorder is possible and until when."""
        lines = [msgspec.to_builtins(x) for x in event.lines]
        short = {s: 0 for s in unknown} if unknown else shortfall(shortages, lines)
        skus = list(short) or [x.sku for x in event.lines]
        config = self._config()
        pushed: dict[str, Any] = {}
        incoming: dict[str, int] = {}
        due: dict[str, int] = {}
        stock: dict[str, Any] = {}
        for sku in skus:
            pushed[sku] = await self._last_pushed(event.channel, sku)
            state = await self._engine.stock(sku)
            if state is not None:
                stock[sku] = {
                    "version": state.version,
                    "locations": msgspec.to_builtins(state.locations),
                }
                incoming[sku] = sum(loc.incoming for loc in state.locations.values())
                dates = await call(self._engine.redis.hgetall(keys.incoming_eta(sku)))
                dated = [
                    int(v)
                    for loc, v in dates.items()
                    if state.locations.get(as_text(loc)) is not None
                    and state.locations[as_text(loc)].incoming > 0
                ]
                if dated:
                    due[sku] = min(dated)  # the first delivery; enough when it covers the need
        now = self._now_ms()
        eta, why_not = backorder_eta(
            incoming, short, config.exceptions.incoming_lead_days, now, due
        )
        options = []
        for action, effect in ACTIONS[kind].items():
            if action == "backorder":
                if eta is not None:
                    effect = f"{effect}: expected by {date_text(eta)}"
                options.append(
                    Option(action=action, effect=effect, possible=eta is not None, why_not=why_not)
                )
            elif action == "cancel":
                notify, why = self.actions.cancel_support(event.channel)
                if not notify:
                    effect = f"{effect} (not automatic: {why})"
                options.append(Option(action=action, effect=effect))
            else:
                options.append(Option(action=action, effect=effect))
        details: dict[str, Any] = {
            "reason": reason,
            "lines": lines,
            "shortages": shortages,
            "short": short,
            "pushed_to_channel": pushed,
            "stock": stock,
            "incoming": incoming,
            "backorder_until_ms": eta,
            "incoming_due_ms": due,
            "ship_to": msgspec.to_builtins(event.ship_to) if event.ship_to else None,
            "hold_id": event.hold_id,
        }
        if unknown:
            details["unknown_skus"] = list(unknown)
        if last_take:
            details["last_unit_taken_by"] = {s: dict(v) for s, v in last_take.items() if s in short}
        if extra:
            details.update(extra)
        first = skus[0] if skus else None
        pushed_first = pushed.get(first) if first else None
        shown = (
            f"; {event.channel} was last sent {pushed_first['available']}" if pushed_first else ""
        )
        summary = f"order {event.channel}/{event.order_id}: {reason}{shown}"
        record = self._new(
            kind,
            (event.channel, event.order_id, event.id),
            summary,
            channel=event.channel,
            order_id=event.order_id,
            sku=first,
            event_id=event.id,
            details=details,
            options=options,
        )
        return await self._create(record)

    async def _last_pushed(self, channel: str, sku: str) -> dict[str, Any] | None:
        """What ``channel`` was last sent of ``sku`` and when, or None (never sent)."""
        raw = await call(self._engine.redis.hget(keys.pushed(channel), sku))
        parsed = keys.parse_pushed(raw)
        if parsed is None:
            return None
        available, version, at_ms = parsed
        return {
            "available": available,
            "version": version,
            "at_ms": at_ms,
            "at": date_text(at_ms, seconds=True) if at_ms is not None else None,
        }

    async def raise_cancel_after_fulfilment(
        self, event_id: str, channel: str, order_id: str, message: str
    ) -> ExceptionRecord:
        """An ``order.cancelled`` refused because units of the order were already fulfilled."""
        order = await self._engine.order(channel, order_id)
        lines = [msgspec.to_builtins(x) for x in order.lines] if order else []
        fulfilled = sum(x.fulfilled for x in order.lines) if order else 0
        reserved = sum(x.reserved for x in order.lines) if order else 0
        record = self._new(
            "cancel_after_fulfilment",
            (channel, order_id, event_id),
            f"order {channel}/{order_id}: cancelled after {fulfilled} unit(s) were fulfilled",
            channel=channel,
            order_id=order_id,
            sku=order.lines[0].sku if order and order.lines else None,
            event_id=event_id,
            details={
                "engine": message,
                "order_state": order.state if order else None,
                "fulfilled": fulfilled,
                "still_reserved": reserved,
                "lines": lines,
            },
        )
        return await self._create(record)

    async def raise_bad_event(
        self,
        event_id: str,
        code: str,
        message: str,
        *,
        source: str,
        channel: str | None = None,
        order_id: str | None = None,
        sku: str | None = None,
        event_type: str | None = None,
        payload: str | None = None,
    ) -> ExceptionRecord:
        """An event that was refused (undecodable at intake, refused by the engine, or set
        aside after failing every attempt; ``payload`` is then the recorded event as sent)."""
        details = {"code": code, "message": message, "source": source, "type": event_type}
        if payload is not None:
            details["payload"] = payload
        record = self._new(
            "bad_event",
            (source, event_id, code),
            f"{event_type or 'event'} {event_id} refused: {code}: {message}",
            channel=channel,
            order_id=order_id,
            sku=sku,
            event_id=event_id,
            details=details,
        )
        return await self._create(record)

    async def report_drift(
        self, channel: str, sku: str, theirs: int, ours: int
    ) -> ExceptionRecord | None:
        """A channel's read-back quantity differs from what we last pushed; None when equal."""
        if theirs == ours:
            return None
        m.DRIFT.labels(channel=channel).inc()
        record = self._new(
            "drift",
            (channel, sku, str(theirs), str(ours)),
            f"{channel} shows {theirs} of {sku}, we have {ours}",
            channel=channel,
            sku=sku,
            details={"theirs": theirs, "ours": ours, "difference": theirs - ours},
        )
        return await self._create(record)

    async def raise_push_refused(
        self, channel: str, sku: str, available: int, reason: str
    ) -> ExceptionRecord:
        """``channel`` refused ``available`` units of ``sku`` for good (a Permanent push result,
        e.g. an unknown listing). One open record per (channel, sku): while it is open a new
        refusal returns it; once it is resolved, the next refusal opens a new one."""
        # The id stays derived from the cause: the n-th refusal of this pair since records were
        # kept. Resolved generations are skipped, so a retry that is refused again is seen.
        generation = 0
        previous: str | None = None
        while True:
            cause = (channel, sku) if generation == 0 else (channel, sku, str(generation))
            try:
                found = await self.get(exception_id("push_refused", *cause))
            except UnknownException:
                break
            if found.state == "open":
                break
            previous = found.id
            generation += 1
        details: dict[str, Any] = {"available": available, "reason": reason}
        if previous is not None:
            details["previous"] = previous
        record = self._new(
            "push_refused",
            cause,
            f"{channel} refused {sku} for good (we sent {available}): {reason}",
            channel=channel,
            sku=sku,
            details=details,
        )
        return await self._create(record)

    async def raise_fulfillment_refused(
        self, message: Mapping[str, Any], reason: str, *, status: int | None = None
    ) -> ExceptionRecord:
        """A location refused a handoff message for good (4xx): one record per message, with
        the order's context (lines, ship-to, the location's answer)."""
        channel, order_id, location = message["channel"], message["order_id"], message["location"]
        record = self._new(
            "fulfillment_refused",
            (location, str(message["id"])),
            f"{location} refused {message['type']} for {channel}/{order_id}: {reason}",
            channel=channel,
            order_id=order_id,
            details={"location": location, "message": dict(message), "reason": reason,
                     "status": status},
        )
        return await self._create(record)

    def breaker_changed(self, channel: str, closed: bool) -> None:
        """A channel actor's breaker changed state (its on_change hook; sync, no I/O)."""
        self.outages.changed(channel, closed, self._clock())

    async def tick(self) -> None:
        """Open ``channel_unreachable`` records for outages past the threshold, auto-resolve
        the records of channels that answer again, and sample the open counts."""
        now = self._clock()
        after = self._config().exceptions.unreachable_after_s
        for channel, since in self.outages.due(now, after).items():
            if channel in self._outage_ids:
                continue
            since_ms = int(since * 1000)
            record = self._new(
                "channel_unreachable",
                (channel, str(since_ms)),
                f"channel {channel} unreachable since {date_text(since_ms, seconds=True)}",
                channel=channel,
                details={"since_ms": since_ms, "threshold_s": after},
            )
            self._outage_ids[channel] = (await self._create(record)).id
        for channel in self.outages.take_recovered():
            exception = self._outage_ids.pop(channel, None)
            if exception is None:
                continue
            record = await self.get(exception)
            if record.state == "open":
                await self._close(
                    record,
                    "recovered",
                    by="breaker",
                    auto=True,
                    resolution={"recovered_ms": self._now_ms()},
                )
        await self.sample_metrics()

    # -- resolving ------------------------------------------------------------------------

    async def resolve(
        self,
        exception_id: str,
        action: str,
        *,
        by: str = "operator",
        sku: str | None = None,
        note: str | None = None,
        auto: bool = False,
    ) -> ExceptionRecord:
        """Run ``action`` for real and record it. UnknownException (404), AlreadyResolved
        (409), UnknownAction (400), ActionNotPossible (409: nothing changed). A re-route that
        finds no stock leaves the record open with the attempt recorded."""
        record = await self.get(exception_id)
        if record.state != "open":
            raise AlreadyResolved(
                f"exception {exception_id} is {record.state} (by {record.resolved_by}, "
                f"action {record.action})"
            )
        offered = ACTIONS[record.kind]
        if action not in offered:
            raise UnknownAction(
                f"{record.kind} offers {', '.join(offered)}; not {action!r}", field="action"
            )
        if action == "substitute" and not sku:
            raise InvalidRequest("substitute needs the SKU to use instead (sku)", field="sku")
        # One resolver at a time, across processes: the first to claim it runs the action.
        if not await self.store.claim(exception_id, f"{action}:{by}"):
            raise AlreadyResolved(f"exception {exception_id} is being resolved already")
        try:
            outcome = await self.actions.run(record, action, sku)
        except BaseException:
            await self.store.release_claim(exception_id)
            raise
        attempt = {"action": action, "by": by, "ms": self._now_ms(), **outcome}
        if note:
            attempt["note"] = note
        if not outcome.get("ok", True):
            record.attempts.append(attempt)
            await self._save(record)
            await self.store.release_claim(exception_id)
            log.info("exception_action_failed", id=record.id, action=action, by=by)
            await self._published(record)
            return record
        outcome.pop("ok", None)
        if note:
            outcome["note"] = note
        return await self._close(record, action, by=by, auto=auto, resolution=outcome)

    async def _close(
        self,
        record: ExceptionRecord,
        action: str,
        *,
        by: str,
        auto: bool,
        resolution: dict[str, Any],
    ) -> ExceptionRecord:
        now = self._now_ms()
        record.state = "auto_resolved" if auto else "resolved"
        record.action, record.resolved_by, record.resolved_ms = action, by, now
        record.resolution = resolution
        record.updated_ms = now
        await self.store.close(record)
        log.info("exception_resolved", id=record.id, kind=record.kind, action=action, by=by)
        await self._published(record)
        return record
