"""The simulated Shopify store reads documents as Shopify does: parsed and validated against the
SDL, variables coerced, the answer cut to the selection; a refused document answers Shopify's
top-level ``errors`` and changes nothing. Raw GraphQL over loopback HTTP, no adapter involved.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from invsync.core.config import Channel
from invsync.simulators.server import Simulator
from invsync.simulators.shopify import ShopifyStore

TOKEN = "shpat_documents"
LOCATION = "gid://shopify/Location/77"
ITEMS = """
query Items($first: Int!, $query: String!, $at: ID!) {
  inventoryItems(first: $first, query: $query) {
    nodes { id sku level: inventoryLevel(locationId: $at) { quantities(names: ["available"]) {
      name quantity } } }
  }
}
"""
SET = """
mutation Set($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}
"""


@pytest.fixture
def store(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> ShopifyStore:
    monkeypatch.setenv("DOC_SHOP_TOKEN", TOKEN)
    made = simulator.add(Channel(
        id="docs", kind="shopify", url=f"{simulator.url}/docs", token_env="DOC_SHOP_TOKEN",
        options={"location_id": 77},
    ))
    assert isinstance(made, ShopifyStore)
    made.list_skus(["LISTED"])
    return made


async def graphql(
    simulator: Simulator, session: aiohttp.ClientSession, query: str, variables: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    async with session.post(
        f"{simulator.url}/docs/admin/api/2026-04/graphql.json",
        json={"query": query, "variables": variables, **extra},
        headers={"X-Shopify-Access-Token": TOKEN},
    ) as resp:
        assert resp.status == 200  # GraphQL errors are answered with 200, as Shopify does
        answer: dict[str, Any] = await resp.json()
        return answer


def set_input(item: str, quantity: Any = 3) -> dict[str, Any]:
    return {"name": "available", "reason": "correction",
            "referenceDocumentUri": "gid://invsync/ChannelSync/test",
            "quantities": [{"inventoryItemId": item, "locationId": LOCATION,
                            "quantity": quantity, "changeFromQuantity": 0}]}


async def test_an_unlisted_sku_has_no_item_and_the_answer_is_the_selection(
    simulator: Simulator, session: aiohttp.ClientSession, store: ShopifyStore
) -> None:
    answer = await graphql(simulator, session, ITEMS, {
        "first": 4, "query": 'sku:"LISTED" OR sku:"GHOST"', "at": LOCATION,
    })
    (node,) = answer["data"]["inventoryItems"]["nodes"]  # nothing for GHOST
    assert node == {  # exactly the selection, the alias as its key
        "id": f"gid://shopify/InventoryItem/{store.items['LISTED']}",
        "sku": "LISTED",
        "level": {"quantities": [{"name": "available", "quantity": 0}]},
    }
    assert "GHOST" not in store.items and answer["extensions"]["cost"]["actualQueryCost"] == 5


async def test_setting_an_item_that_does_not_exist_is_invalid_inventory_item(
    simulator: Simulator, session: aiohttp.ClientSession, store: ShopifyStore
) -> None:
    answer = await graphql(simulator, session, SET, {
        "key": "k-1", "input": set_input("gid://shopify/InventoryItem/999"),
    })
    assert answer["data"]["inventorySetQuantities"] == {
        "inventoryAdjustmentGroup": None,
        "userErrors": [{
            "code": "INVALID_INVENTORY_ITEM",
            "field": ["input", "quantities", "0", "inventoryItemId"],
            "message": "The specified inventory item could not be found.",
        }],
    }
    assert store.quantities == {}


@pytest.mark.parametrize(
    ("query", "variables", "code", "says"),
    [
        (ITEMS.replace(" sku ", " skuu "), {"first": 1, "query": "", "at": LOCATION},
         "undefinedField", "Field 'skuu' doesn't exist on type 'InventoryItem'"),
        (ITEMS.replace("$at: ID!", "$at: ID"), {"first": 1, "query": "", "at": LOCATION},
         "variableMismatch", "$at"),
        (ITEMS.replace("(first: $first, query: $query)", "(first: $first)"),
         {"first": 1, "query": "", "at": LOCATION}, "variableNotUsed", "$query"),
        (SET.replace("@idempotent(key: $key)", "@idempotent(token: $key)"),
         {"key": "k", "input": set_input("gid://shopify/InventoryItem/1")},
         "argumentNotAccepted", "token"),
        (SET, {"key": "k", "input": set_input("gid://shopify/InventoryItem/1", "seven")},
         "INVALID_VARIABLE", "$input"),
        (SET, {"input": set_input("gid://shopify/InventoryItem/1")},
         "INVALID_VARIABLE", "$key"),
    ],
)
async def test_a_refused_document_answers_shopifys_errors_and_changes_nothing(
    simulator: Simulator, session: aiohttp.ClientSession, store: ShopifyStore,
    query: str, variables: dict[str, Any], code: str, says: str,
) -> None:
    answer = await graphql(simulator, session, query, variables)
    assert "data" not in answer
    error = answer["errors"][0]  # (a wrong directive argument also misses the right one)
    assert error["extensions"]["code"] == code
    assert says in error["message"]
    assert error["locations"][0]["line"] >= 1
    assert store.set_requests == [] and store.quantities == {}
    assert store.calls["document:refused"] == 1
    assert store.bucket.available() == store.bucket.capacity  # nothing charged


async def test_a_syntax_error_names_where_it_is(
    simulator: Simulator, session: aiohttp.ClientSession, store: ShopifyStore
) -> None:
    unclosed = "query { inventoryItems(first: 1) { nodes { id }"
    answer = await graphql(simulator, session, unclosed, {})
    (error,) = answer["errors"]
    assert "Syntax Error" in error["message"] and error["locations"]


async def test_the_operation_name_picks_the_operation(
    simulator: Simulator, session: aiohttp.ClientSession, store: ShopifyStore
) -> None:
    two = ITEMS + "\nquery Other { order(id: \"gid://shopify/Order/1\") { id } }\n"
    unnamed = await graphql(simulator, session, two, {"first": 1, "query": "", "at": LOCATION})
    assert unnamed["errors"][0]["message"] == "An operation name is required"
    other = await graphql(simulator, session, two, {}, operationName="Other")
    assert other["data"] == {"order": None}
    missing = await graphql(simulator, session, two, {}, operationName="Nope")
    assert "Nope" in missing["errors"][0]["message"]
