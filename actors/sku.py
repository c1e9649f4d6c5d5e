"""The SKU actor: after every change of its SKU, recompute availability per channel and send
only the values that changed to the channel actors (and bundle SKUs that contain it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from ..engine.availability import (
    Bundle,
    ChannelPolicy,
    LocationStock,
    availability_by_channel,
    bundle_available,
    changed,
)
from ..engine.engine import Engine
from ..engine.models import SkuState
from .messages import AvailabilityChanged, Recompute, SkuMessage, StockChanged
from .runtime import Actor


@dataclass(frozen=True, slots=True)
class Topology:
    """What SKU actors compute against; replaced as a whole on config reload.

    ``policies`` covers the channels whose actors run (those with an adapter).
    """

    policies: Mapping[str, ChannelPolicy]
    bundles: Mapping[str, Bundle] = field(default_factory=dict)
    bundles_by_component: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, policies: Mapping[str, ChannelPolicy], bundles: Mapping[str, Bundle]
    ) -> Topology:
        """A topology with the component -> bundles index derived from ``bundles``."""
        index: dict[str, list[str]] = {}
        for bundle in bundles.values():
            for component in bundle.components:
                index.setdefault(component, []).append(bundle.sku)
        return cls(
            policies=dict(policies),
            bundles=dict(bundles),
            bundles_by_component={c: tuple(b) for c, b in index.items()},
        )


def bundle_inputs(
    bundle: Bundle, states: Mapping[str, SkuState]
) -> tuple[dict[str, Mapping[str, LocationStock]], int]:
    """A bundle's component stocks and its version: the sum of its components' versions (which
    only ever grows), so a bundle's value is versioned like any SKU's."""
    stocks: dict[str, Mapping[str, LocationStock]] = {}
    version = 0
    for component in bundle.components:
        state = states.get(component)
        stocks[component] = state.stock() if state else {}
        version += state.version if state else 0
    return stocks, version


#: Observers of every availability a SKU actor publishes (the live feed, MQTT topics).
Listener = Callable[[AvailabilityChanged, str], Awaitable[None]]
#: Where a SKU actor's values for a channel go: (channel id, value); never waits.
Deliver = Callable[[str, AvailabilityChanged], None]


class SkuActor(Actor[SkuMessage]):
    """One per SKU (key ``sku:<SKU>``); serialises the work that follows a change of its SKU.

    Values for a channel go to ``deliver`` (the daemon's ``ChannelManager.offer``); without
    one they are sent to the actor ``channel:<id>`` of the same system (tests' stand-ins).
    """

    def __init__(
        self,
        key: str,
        engine: Engine,
        topology: Callable[[], Topology],
        listeners: Callable[[], tuple[Listener, ...]] = tuple,
        *,
        deliver: Deliver | None = None,
    ) -> None:
        self.key = key
        self.sku = key.split(":", 1)[1]
        self._engine = engine
        self._topology = topology
        self._listeners = listeners
        self._deliver = deliver
        self._version = -1
        self._last: dict[str, int] = {}
        self._seen: Topology | None = None

    async def receive(self, message: SkuMessage) -> None:
        """Publish what changed for the channels; stale states (older versions) are ignored."""
        topo = self._topology()
        if topo is not self._seen:
            # Policies changed (reload): what was sent under the old ones says nothing now.
            self._seen, self._last = topo, {}
        match message:
            case StockChanged(state=state, accepted_ms=accepted_ms):
                if state.version <= self._version:
                    return
                current = availability_by_channel(state.stock(), topo.policies)
                await self._publish(current, state.version, accepted_ms, force=False, only=None)
                for bundle in topo.bundles_by_component.get(self.sku, ()):
                    await self.system.send(f"sku:{bundle}", Recompute(accepted_ms=accepted_ms))
            case Recompute(accepted_ms=accepted_ms, force=force, channels=only):
                current, version = await self._read(topo)
                await self._publish(current, version, accepted_ms, force=force, only=only)

    async def _read(self, topo: Topology) -> tuple[dict[str, int], int]:
        bundle = topo.bundles.get(self.sku)
        if bundle is None:
            state = await self._engine.stock(self.sku)
            stock: Mapping[str, LocationStock] = state.stock() if state else {}
            return availability_by_channel(stock, topo.policies), state.version if state else 0
        states = await self._engine.stocks(list(bundle.components))
        stocks, version = bundle_inputs(bundle, states)
        return {
            ch: bundle_available(bundle, stocks, policy) for ch, policy in topo.policies.items()
        }, version

    async def _publish(
        self,
        current: dict[str, int],
        version: int,
        accepted_ms: int,
        *,
        force: bool,
        only: tuple[str, ...] | None,
    ) -> None:
        diffs = dict(current) if force else changed(self._last, current)
        if only is not None:
            diffs = {ch: n for ch, n in diffs.items() if ch in only}
        self._last = dict(current)
        self._version = max(self._version, version)
        listeners = self._listeners()
        # One (immutable) message per distinct value, shared by the channels showing it: most
        # channels show the same number, and this runs for every event (issue 14's profile).
        made: dict[int, AvailabilityChanged] = {}
        for channel, available in diffs.items():
            update = made.get(available)
            if update is None:
                update = made[available] = AvailabilityChanged(
                    sku=self.sku, available=available, version=version, accepted_ms=accepted_ms
                )
            if self._deliver is not None:
                self._deliver(channel, update)
            else:
                await self.system.send(f"channel:{channel}", update)
            for listener in listeners:
                await listener(update, channel)
