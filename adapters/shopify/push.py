"""Setting ``available`` at our location with ``inventorySetQuantities``, compare-and-swap.

Followed: ``/docs/api/admin-graphql/latest/mutations/inventorySetQuantities`` and the changelog
posts "compare and swap redesign for inventory set quantities" (2026-01) and "New compare and
swap syntax for the inventorySetQuantities mutation" (2026-04): every quantity carries
``changeFromQuantity`` (``null`` opts out; omitting it is an error from 2026-04), a mismatch
answers the userError ``CHANGE_FROM_QUANTITY_STALE``. ``referenceDocumentUri`` prefers the GID
form ``gid://<app>/<entity>/<id>``; ``reason: "correction"`` is one of the documented reasons.
The mutation carries ``@idempotent(key:)`` (mandatory for inventory mutations from 2026-04); a
retry of the same request reuses its key, which is why the key is derived from its content.
``InventorySetQuantitiesUserErrorCode``'s ``field`` is the input path
(``["input", "quantities", "<i>", ...]``): it names the failing quantity.

- ``changeFromQuantity`` is what Shopify held when we last looked (``readback.Inventory``).
  CHANGE_FROM_QUANTITY_STALE means Shopify sold (or someone changed) units invsync has not heard
  of. Retrying with the fresh number would relist a sold unit, so the SKU is re-read, its recent
  orders imported (``orders.OrderImporter``), the answer is "retryable" and the SKU is held:
  pushes of versions up to the stale one are answered "retryable" without a call until a newer
  version arrives (the imported order changed our number) or ``options.stale_wait_s`` passes
  (then our number wins, from the fresh quantity).
- The reference does not say whether a batch with a userError applies its other quantities;
  when ``inventoryAdjustmentGroup`` is null nothing was applied and the clean quantities are
  sent once more on their own, so only the failing SKUs get non-ok outcomes either way.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from urllib.parse import quote

import msgspec
import structlog

from ..base import ChannelError, Outcome, PushResult, Retryable, Throttled, Update
from .client import MUTATION_COST, GraphQLClient
from .orders import OrderImporter
from .readback import Inventory
from .wire import (
    SET_MUTATION,
    QuantityInput,
    SetInput,
    SetPayload,
    SetVariables,
    UserError,
    encode,
    set_decoder,
)

__all__ = ["MAX_BATCH", "Hold", "QuantityPusher"]

log = structlog.get_logger("invsync.adapters.shopify")

#: Quantities per inventorySetQuantities call. The reference states no maximum; 250 is the
#: Admin API's page size and keeps one call's cost and size bounded.
MAX_BATCH = 250
_QUANTITY_INDEX = 2  # field == ["input", "quantities", "<i>", ...]
#: userError codes that say "Shopify's quantity is not the one you think".
_STALE = frozenset({"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"})
#: userError codes worth trying again as they are (a concurrent call with the same key).
_RETRYABLE = frozenset({"IDEMPOTENCY_CONCURRENT_REQUEST", "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"})


class Hold(msgspec.Struct, kw_only=True):
    """A SKU held after CHANGE_FROM_QUANTITY_STALE, up to ``version`` until ``until``."""

    version: int
    until: float


class QuantityPusher:
    """Pushes one channel's quantities to its location, with the stale-value holds.

    ``stale_wait_s`` / ``stale_retry_s`` are the options of the same names; ``clock`` is
    monotonic seconds (the holds' deadlines).
    """

    def __init__(
        self,
        channel_id: str,
        client: GraphQLClient,
        inventory: Inventory,
        orders: OrderImporter,
        *,
        stale_wait_s: float,
        stale_retry_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel_id = channel_id
        self.stale_wait_s = stale_wait_s
        self.stale_retry_s = stale_retry_s
        self.holds: dict[str, Hold] = {}
        self._client = client
        self._inventory = inventory
        self._orders = orders
        self._clock = clock
        #: Bumped when Shopify says a key's previous attempt failed: the next keys differ.
        self._key_epoch = 0

    async def push(self, updates: Sequence[Update]) -> list[PushResult]:
        """Set ``available`` of each SKU at our location with compare-and-swap; one result per
        update. Whole-call failures raise Throttled/Retryable/Permanent (Unauthorized)."""
        now = self._clock()
        latest: dict[str, Update] = {}
        for update in updates:  # one quantity per item per call (duplicates are refused)
            seen = latest.get(update.sku)
            if seen is None or update.version >= seen.version:
                latest[update.sku] = update
        results: dict[str, PushResult] = {}
        to_send: list[Update] = []
        for update in latest.values():
            hold = self.holds.get(update.sku)
            if hold is not None:
                if update.version <= hold.version and now < hold.until:
                    results[update.sku] = PushResult(
                        sku=update.sku,
                        outcome="retryable",
                        retry_after=min(self.stale_retry_s, hold.until - now),
                        error="held after CHANGE_FROM_QUANTITY_STALE: waiting for the imported "
                        "Shopify order to change this SKU's number",
                    )
                    continue
                del self.holds[update.sku]
            to_send.append(update)
        if to_send:
            with self._inventory.pushing():
                results.update(await self._push(to_send))
        return [results[update.sku] for update in updates]

    async def _push(self, updates: list[Update]) -> dict[str, PushResult]:
        inventory = self._inventory
        missing = {
            u.sku for u in updates if u.sku not in inventory.items or u.sku not in inventory.known
        }
        found = await inventory.lookup([u.sku for u in updates if u.sku in missing])
        failures: dict[str, PushResult] = {}
        ready: list[Update] = []
        for update in updates:
            seen = found.get(update.sku)
            if update.sku not in missing:
                ready.append(update)
            elif seen is None:
                failures[update.sku] = _permanent(
                    update.sku, "Shopify has no inventory item with this SKU"
                )
            elif seen.matches > 1:
                failures[update.sku] = _permanent(
                    update.sku, f"{seen.matches} Shopify inventory items have this SKU"
                )
            elif seen.available is None:
                failures[update.sku] = _permanent(
                    update.sku, f"the item is not stocked at {inventory.location}"
                )
            else:
                ready.append(update)
        if ready:
            failures.update(await self._set(ready))
        return {u.sku: failures.get(u.sku) or PushResult(sku=u.sku, outcome="ok") for u in updates}

    async def _set(self, updates: list[Update]) -> dict[str, PushResult]:
        """inventorySetQuantities for ``updates`` (all resolved); failures by SKU."""
        failures: dict[str, PushResult] = {}
        batch = updates
        for attempt in range(2):
            try:
                payload = await self._set_call(batch)
            except (Throttled, Retryable) as exc:
                if attempt == 0:
                    raise
                # The first call settled the other SKUs: only the resent ones wait.
                outcome: Outcome = "throttled" if isinstance(exc, Throttled) else "retryable"
                for update in batch:
                    failures[update.sku] = PushResult(
                        sku=update.sku,
                        outcome=outcome,
                        retry_after=exc.retry_after,
                        error=exc.message,
                    )
                return failures
            by_sku, everyone = _user_errors(payload.user_errors, batch)
            if everyone is not None:
                for update in batch:
                    failures[update.sku] = self._outcome(update, everyone)
                return failures
            applied = payload.inventory_adjustment_group is not None or not by_sku
            stale: list[Update] = []
            for update in batch:
                error = by_sku.get(update.sku)
                if error is None:
                    if applied:
                        self._inventory.known[update.sku] = update.available
                elif error.code in _STALE:
                    stale.append(update)
                else:
                    failures[update.sku] = self._outcome(update, error)
            if stale:
                failures.update(await self._on_stale(stale))
            clean = [u for u in batch if u.sku not in by_sku]
            if applied or not clean:
                return failures
            if attempt == 1:  # refused as a whole twice: let the channel actor retry them
                for update in clean:
                    failures[update.sku] = PushResult(
                        sku=update.sku,
                        outcome="retryable",
                        retry_after=self.stale_retry_s,
                        error="Shopify refused the batch because of other SKUs in it",
                    )
                return failures
            batch = clean  # nothing applied: the SKUs without errors go again on their own
        return failures

    async def _set_call(self, updates: list[Update]) -> SetPayload:
        inventory = self._inventory
        quantities = [
            QuantityInput(
                inventory_item_id=inventory.items[u.sku],
                location_id=inventory.location,
                quantity=u.available,
                change_from_quantity=inventory.known[u.sku],
            )
            for u in updates
        ]
        set_input = SetInput(
            name="available",
            reason="correction",
            reference_document_uri=self._reference(updates),
            quantities=quantities,
        )
        variables = SetVariables(input=set_input, idempotency_key=self._key(set_input))
        data = await self._client.call(
            "inventorySetQuantities", 0, SET_MUTATION, variables, set_decoder, MUTATION_COST
        )
        if data.inventory_set_quantities is None:
            raise Retryable("Shopify answered inventorySetQuantities without a payload")
        return data.inventory_set_quantities

    def _reference(self, updates: list[Update]) -> str:
        """``gid://invsync/ChannelSync/<channel>-<sku>-<version>`` (one SKU) or
        ``gid://invsync/ChannelSync/<channel>-<n>skus-<digest>``: shown in Shopify's history."""
        channel = quote(self.channel_id, safe="")
        if len(updates) == 1:
            only = updates[0]
            return f"gid://invsync/ChannelSync/{channel}-{quote(only.sku, safe='')}-{only.version}"
        digest = hashlib.sha256(
            "\n".join(f"{u.sku}\t{u.version}" for u in updates).encode()
        ).hexdigest()[:12]
        return f"gid://invsync/ChannelSync/{channel}-{len(updates)}skus-{digest}"

    def _key(self, set_input: SetInput) -> str:
        """The idempotency key: a digest of the request, so a resend of the same request (after a
        timeout) is recognised by Shopify, and distinct requests never share a key."""
        digest = hashlib.sha256(encode(set_input) + f"/{self._key_epoch}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=5))

    def _outcome(self, update: Update, error: UserError) -> PushResult:
        code = error.code or "UNKNOWN"
        text = f"{code}: {error.message}".strip()
        if code == "INVALID_INVENTORY_ITEM":  # the item went away: look it up again next time
            self._inventory.forget(update.sku)
        if code == "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED":
            self._key_epoch += 1
        if code in _RETRYABLE:
            return PushResult(
                sku=update.sku, outcome="retryable", retry_after=self.stale_retry_s, error=text
            )
        return PushResult(sku=update.sku, outcome="permanent", error=text)

    async def _on_stale(self, stale: list[Update]) -> dict[str, PushResult]:
        """CHANGE_FROM_QUANTITY_STALE: re-read, import the sales invsync missed, hold the SKUs."""
        known = self._inventory.known
        skus = [u.sku for u in stale]
        for sku in skus:
            known.pop(sku, None)  # unknown until read again
        try:
            found = await self._inventory.lookup(skus)
        except ChannelError as exc:
            log.warning("shopify_stale_reread_failed", channel=self.channel_id, error=exc.message)
            found = {}
        for sku, seen in found.items():
            if seen.available is not None and seen.matches == 1:
                known[sku] = seen.available
        results: dict[str, PushResult] = {}
        held: list[Update] = []
        for update in stale:
            if known.get(update.sku) == update.available:
                results[update.sku] = PushResult(sku=update.sku, outcome="ok")  # ours landed
            else:
                held.append(update)
        if not held:
            return results
        await self._orders.import_recent([u.sku for u in held])
        until = self._clock() + self.stale_wait_s
        for update in held:
            self.holds[update.sku] = Hold(version=update.version, until=until)
            shopify = known.get(update.sku)
            results[update.sku] = PushResult(
                sku=update.sku,
                outcome="retryable",
                retry_after=min(self.stale_retry_s, self.stale_wait_s),
                error=f"CHANGE_FROM_QUANTITY_STALE: Shopify holds {shopify} where invsync "
                f"expected another number; its recent orders were imported and the SKU is "
                f"held until a newer version (or {self.stale_wait_s:g} s)",
            )
        log.info("shopify_stale_hold", channel=self.channel_id, skus=[u.sku for u in held])
        return results


def _user_errors(
    errors: list[UserError], batch: list[Update]
) -> tuple[dict[str, UserError], UserError | None]:
    """userErrors by the SKU their ``field`` path names; an error naming no quantity (the
    input's name, reason, reference) is for the whole batch."""
    by_sku: dict[str, UserError] = {}
    for error in errors:
        path = error.field or []
        index = path[_QUANTITY_INDEX] if len(path) > _QUANTITY_INDEX else None
        if path[:2] == ["input", "quantities"] and index is not None and index.isdigit():
            position = int(index)
            if position < len(batch):
                by_sku.setdefault(batch[position].sku, error)
                continue
        return by_sku, error
    return by_sku, None


def _permanent(sku: str, error: str) -> PushResult:
    return PushResult(sku=sku, outcome="permanent", error=error)
