"""Every GraphQL document the Shopify adapter sends, validated with graphql-core against the
project's SDL of the Admin API 2026-04 (``simulators/schemas/shopify_admin.graphql``, read from
the simulators' package data), and the variables the adapter encodes for it coerced to the
types the document declares.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import msgspec
import pytest
from graphql import (
    OperationDefinitionNode,
    build_schema,
    get_operation_ast,
    is_non_null_type,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from invsync.adapters.shopify import wire

SDL = files("invsync.simulators").joinpath("schemas/shopify_admin.graphql").read_text()
SCHEMA = build_schema(SDL)
LOCATION = "gid://shopify/Location/655441491"
ITEM = "gid://shopify/InventoryItem/44000001"


def documents() -> dict[str, str]:
    """Every GraphQL operation among the adapter's wire constants, by constant name."""
    found: dict[str, str] = {}
    for name, value in vars(wire).items():
        if not name.isupper() or not isinstance(value, str):
            continue
        try:
            parsed = parse(value)
        except Exception:  # not a GraphQL document
            continue
        if any(isinstance(d, OperationDefinitionNode) for d in parsed.definitions):
            found[name] = value
    return found


#: What the adapter encodes for each document, with its own msgspec types.
VARIABLES: dict[str, Any] = {
    "ITEMS_QUERY": wire.ItemsVariables(first=100, query='sku:"A" OR sku:"B"', location_id=LOCATION),
    "SET_MUTATION": wire.SetVariables(
        input=wire.SetInput(
            name="available",
            reason="correction",
            reference_document_uri="gid://invsync/ChannelSync/shop-A-3",
            quantities=[
                wire.QuantityInput(
                    inventory_item_id=ITEM, location_id=LOCATION, quantity=7,
                    change_from_quantity=0,
                )
            ],
        ),
        idempotency_key="8d0b2c3e-7f9a-5b1c-9d2e-0a1b2c3d4e5f",
    ),
    "ORDERS_QUERY": wire.OrdersVariables(
        first=25, lines=10, query="(sku:\"A\") AND created_at:>='2026-12-01T00:00:00Z'"
    ),
    "ORDER_QUERY": wire.OrderVariables(id="gid://shopify/Order/1001", lines=250),
    "CANCEL_MUTATION": wire.CancelVariables(
        order_id="gid://shopify/Order/1001",
        reason="INVENTORY",
        refund_method=wire.RefundMethod(original_payment_methods_refund=True),
        restock=False,
        notify_customer=False,
        staff_note="invsync: oversold",
    ),
}


def test_the_adapter_sends_the_documents_this_test_checks() -> None:
    assert set(documents()) == set(VARIABLES)  # a new document needs its variables here too


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_each_document_is_valid_against_the_sdl(name: str) -> None:
    errors = validate(SCHEMA, parse(documents()[name]))
    assert [e.message for e in errors] == []


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_the_variables_the_adapter_encodes_coerce_to_the_declared_types(name: str) -> None:
    operation = get_operation_ast(parse(documents()[name]))
    assert operation is not None
    sent = msgspec.json.decode(wire.encode(VARIABLES[name]))
    coerced = get_variable_values(SCHEMA, operation.variable_definitions or (), sent)
    assert not isinstance(coerced, list), [e.message for e in coerced]
    assert set(coerced.coerced) <= set(sent) | {"notifyCustomer", "staffNote"}


def test_the_nullable_refund_method_of_the_old_document_is_refused() -> None:
    """The issue's example: ``$refundMethod`` declared nullable where orderCancel's argument
    takes the non-null type of Shopify's own example."""
    declared = "$refundMethod: OrderCancelRefundMethodInput"
    old = wire.CANCEL_MUTATION.replace(f"{declared}!", declared)
    assert old != wire.CANCEL_MUTATION
    (error,) = validate(SCHEMA, parse(old))
    assert "$refundMethod" in error.message and "OrderCancelRefundMethodInput!" in error.message
    argument = SCHEMA.mutation_type.fields["orderCancel"].args["refundMethod"]  # type: ignore[union-attr]
    assert is_non_null_type(argument.type)


@pytest.mark.parametrize(
    ("broken", "why"),
    [
        (("      sku\n", "      skuu\n"), "Cannot query field 'skuu' on type 'InventoryItem'"),
        (("inventoryLevel(locationId: $locationId)", "inventoryLevel(location: $locationId)"),
         "Unknown argument 'location'"),
        (("$locationId: ID!", "$locationId: ID"), "used in position expecting type 'ID!'"),
        (("quantities(names: [\"available\"])", "quantities"),
         "quantities(names:)' of type '[String!]!' is required"),
    ],
)
def test_a_misspelt_field_argument_or_nullability_is_caught(
    broken: tuple[str, str], why: str
) -> None:
    old, new = broken
    assert old in wire.ITEMS_QUERY
    errors = validate(SCHEMA, parse(wire.ITEMS_QUERY.replace(old, new)))
    assert any(why in e.message for e in errors), [e.message for e in errors]


def test_a_quantity_with_a_field_2026_04_removed_does_not_coerce() -> None:
    operation = get_operation_ast(parse(wire.SET_MUTATION))
    assert operation is not None
    sent = msgspec.json.decode(wire.encode(VARIABLES["SET_MUTATION"]))
    sent["input"]["quantities"][0]["compareQuantity"] = 0  # the pre-2026-04 spelling
    coerced = get_variable_values(SCHEMA, operation.variable_definitions or (), sent)
    assert isinstance(coerced, list)
    assert "compareQuantity" in coerced[0].message
