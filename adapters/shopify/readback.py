"""What Shopify holds at our location: SKU -> inventory item lookups and the drift read-back.

``inventoryItems(first:, query: "sku:...")`` with ``inventoryLevel(locationId:) { quantities(names:
["available"]) }`` maps SKUs to inventory items (exact matches only: the search matches loosely)
and reads ``available`` at the location. The item GIDs are kept for the adapter's life (items
rarely change), and the quantity read is the compare-and-set value of the next push.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import msgspec

from .client import GraphQLClient
from .wire import ITEMS_QUERY, ItemsVariables, items_decoder

__all__ = ["LOOKUP_CHUNK", "Found", "Inventory", "search_term"]

#: SKUs per inventoryItems lookup (one ``sku:`` term each in the search string).
LOOKUP_CHUNK = 50


class Found(msgspec.Struct, kw_only=True):
    """What the lookup saw of one SKU: its item(s) and ``available`` at our location."""

    gid: str
    matches: int = 1
    available: int | None = None  # None: the item is not stocked at our location


def search_term(field: str, value: str) -> str:
    """``field:"value"`` in Shopify's search syntax (quotes and backslashes escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{field}:"{escaped}"'


class Inventory:
    """The SKUs of one store at one location (``location``, a GID), as far as invsync knows.

    ``items``: SKU -> inventory item GID. ``known``: SKU -> the ``available`` Shopify held when
    we last looked (read, or set by a push): the next push's ``changeFromQuantity``.
    """

    def __init__(self, client: GraphQLClient, location: str) -> None:
        self.location = location
        self.items: dict[str, str] = {}
        self.known: dict[str, int] = {}
        #: Bumped as every push starts and ends (guards read-backs, see ``lookup``).
        self.push_seq = 0
        #: Pushes in progress.
        self.pushes_in_flight = 0
        self._client = client

    @contextlib.contextmanager
    def pushing(self) -> Iterator[None]:
        """Marks a push in flight, so a read-back beside it keeps its reading out of ``known``."""
        self.push_seq += 1
        self.pushes_in_flight += 1
        try:
            yield
        finally:
            self.pushes_in_flight -= 1
            self.push_seq += 1

    async def lookup(self, skus: Sequence[str], *, guarded: bool = False) -> dict[str, Found]:
        """Inventory items and ``available`` at our location by exact SKU (missing: unknown to
        Shopify). Caches item GIDs and quantities of the SKUs with exactly one item.

        A ``guarded`` lookup (the drift read-back) runs beside the pushes: its reading becomes
        the compare-and-set value only when no push ran meanwhile.
        """
        found: dict[str, Found] = {}
        unique = list(dict.fromkeys(skus))
        for start in range(0, len(unique), LOOKUP_CHUNK):
            chunk = unique[start : start + LOOKUP_CHUNK]
            wanted = set(chunk)
            first = min(250, 2 * len(chunk))  # room to notice a SKU shared by two items
            variables = ItemsVariables(
                first=first,
                query=" OR ".join(search_term("sku", sku) for sku in chunk),
                location_id=self.location,
            )
            pushes_before = self.push_seq
            data = await self._client.call(
                "inventoryItems", first, ITEMS_QUERY, variables, items_decoder, 2 + 3 * first
            )
            # An older reading must not replace what a push just set (the next push would go
            # stale), so a guarded reading is kept only if no push started or ended meanwhile.
            remember = not guarded or (self.push_seq == pushes_before and not self.pushes_in_flight)
            for item in data.inventory_items.nodes:
                sku = item.sku
                if sku is None or sku not in wanted:  # the search matched loosely
                    continue
                if sku in found:
                    found[sku].matches += 1
                    continue
                available: int | None = None
                if item.inventory_level is not None:
                    available = next(
                        (
                            q.quantity
                            for q in item.inventory_level.quantities
                            if q.name == "available"
                        ),
                        0,
                    )
                found[sku] = Found(gid=item.id, available=available)
            # Cached chunk by chunk: a lookup throttled half-way keeps what it already paid for.
            for sku in chunk:
                seen = found.get(sku)
                if seen is not None and seen.matches == 1:
                    self.items[sku] = seen.gid
                    if seen.available is not None and remember:
                        self.known[sku] = seen.available
        return found

    async def read_back(self, skus: Sequence[str]) -> dict[str, int]:
        """``available`` at our location per SKU; SKUs Shopify does not list (or does not stock
        there, or lists twice) are left out."""
        found = await self.lookup(skus, guarded=True)
        return {
            sku: seen.available
            for sku, seen in found.items()
            if seen.matches == 1 and seen.available is not None
        }

    def forget(self, sku: str) -> None:
        """Drop what is known of ``sku`` (its item went away): looked up again next time."""
        self.items.pop(sku, None)
        self.known.pop(sku, None)
