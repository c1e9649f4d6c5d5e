"""One GraphQL call to a Shopify store, paced by the store's query-cost budget.

Shopify limits the Admin GraphQL API by query cost (``/docs/apps/build/apis/graphql-admin/
rate-limits``, ``/docs/api/usage/limits``): a leaky bucket of points per app and store (Standard
plan: 100 points/s restore, ``maximumAvailable`` 2000 as its answers show). Every answer carries
``extensions.cost {requestedQueryCost, actualQueryCost, throttleStatus {maximumAvailable,
currentlyAvailable, restoreRate}}``; an over-budget call answers HTTP 200 with
``errors[].extensions.code == "THROTTLED"``; a mutation costs 10 points, a connection 2 +
``first`` x its node's cost. The client keeps the bucket as the last answer showed it and what
each operation cost, and refuses to send (``Throttled``) a call the restored bucket cannot pay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
import msgspec

from ..base import Permanent, Retryable, Throttled, Unauthorized
from ..http import check, send
from .wire import Cost, GraphQLError, Reply, Request, encode

__all__ = ["MUTATION_COST", "Budget", "GraphQLClient"]

#: What Shopify charges for a mutation.
MUTATION_COST = 10.0

T = TypeVar("T")


class Budget(msgspec.Struct, kw_only=True):
    """Shopify's cost bucket as its last answer showed it, at ``at`` (monotonic seconds)."""

    maximum: float
    available: float
    restore_rate: float
    at: float

    def level(self, now: float) -> float:
        """Points available at ``now``: the bucket refills at ``restore_rate`` up to its size."""
        return min(self.maximum, self.available + max(0.0, now - self.at) * self.restore_rate)


class GraphQLClient:
    """POSTs operations to one store's ``{url}/admin/api/{version}/graphql.json`` with the app's
    access token; maps answers to data or to Throttled/Retryable/Permanent/Unauthorized.

    ``clock`` is monotonic seconds (the budget's refill), ``wall`` epoch seconds (Retry-After
    dates); both injectable so tests move time by hand.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: str,
        token: str,
        *,
        timeout: aiohttp.ClientTimeout,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.clock = clock
        self._session = session
        self._timeout = timeout
        self._wall = wall
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Shopify-Access-Token": token,
        }
        self._budget: Budget | None = None
        #: (operation, size) -> the requestedQueryCost Shopify last charged for it.
        self._costs: dict[tuple[str, int], float] = {}

    async def call(
        self,
        operation: str,
        size: int,
        document: str,
        variables: Any,
        decoder: msgspec.json.Decoder[Reply[T]],
        estimate: float,
    ) -> T:
        """POST one operation; its ``data``, or the error kind Shopify's answer means.

        ``(operation, size)`` names the call for its remembered cost (``estimate`` until Shopify
        has charged it once). Refuses to send (Throttled) when the cost bucket, restored since
        its last reading, cannot pay.
        """
        expected = self._costs.get((operation, size), estimate)
        budget = self._budget
        if budget is not None and budget.restore_rate > 0:
            have = budget.level(self.clock())
            if have < expected:
                raise Throttled(
                    f"Shopify cost budget: {have:.0f} points available, {operation} needs "
                    f"{expected:.0f} (restores {budget.restore_rate:g}/s)",
                    retry_after=(expected - have) / budget.restore_rate,
                )
        reply = await send(
            self._session,
            "POST",
            self.endpoint,
            timeout=self._timeout,
            headers=self._headers,
            body=encode(Request(query=document, variables=variables)),
        )
        check(reply, now=self._wall())
        try:
            answer = decoder.decode(reply.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Retryable(f"Shopify answered {operation} unreadably: {exc}") from exc
        cost = answer.extensions.cost if answer.extensions else None
        self._observe(operation, size, cost)
        if answer.errors:
            _raise(operation, answer.errors, cost, expected)
        if answer.data is None:
            raise Retryable(f"Shopify answered {operation} without data")
        return answer.data

    def _observe(self, operation: str, size: int, cost: Cost | None) -> None:
        if cost is None:
            return
        if cost.requested_query_cost is not None:
            self._costs[(operation, size)] = cost.requested_query_cost
        status = cost.throttle_status
        if status is not None:
            self._budget = Budget(
                maximum=status.maximum_available,
                available=status.currently_available,
                restore_rate=status.restore_rate,
                at=self.clock(),
            )


def _raise(
    operation: str, errors: list[GraphQLError] | str, cost: Cost | None, expected: float
) -> None:
    """The error kind of an answer's top-level ``errors``."""
    if isinstance(errors, str):
        raise Retryable(f"Shopify {operation}: {errors[:300]}")
    codes = {e.extensions.code for e in errors if e.extensions is not None}
    text = f"Shopify {operation}: " + "; ".join(e.message for e in errors)[:300]
    if "THROTTLED" in codes:
        wait = 1.0
        status = cost.throttle_status if cost else None
        if status is not None and status.restore_rate > 0:
            needed = cost.requested_query_cost if cost and cost.requested_query_cost else expected
            wait = max(0.05, (needed - status.currently_available) / status.restore_rate)
        raise Throttled(text, retry_after=wait)
    if "ACCESS_DENIED" in codes:  # a missing access scope does not fix itself
        raise Unauthorized(text)
    if "MAX_COST_EXCEEDED" in codes:
        raise Permanent(text)
    raise Retryable(text)
