"""The simulated SP-API enforces the usage plans Amazon's API models document today, and reads
JSON Patch operations on ``fulfillment_availability`` as Amazon describes them."""

from __future__ import annotations

import pytest

from invsync.core.config import Channel
from invsync.simulators.amazon import AmazonSellingPartner
from invsync.simulators.amazon_listings import apply_patch
from invsync.simulators.amazon_requests import FEED_MAX_MESSAGES


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def seller(clock: Clock) -> AmazonSellingPartner:
    channel = Channel(
        id="amazon-us",
        kind="amazon",
        url="http://127.0.0.1:9/amazon",
        options={"seller_id": "A1SELLER", "marketplace_id": "ATVPDKIKX0DER"},
    )
    return AmazonSellingPartner(
        channel, refresh_token="r", client_id="c", client_secret="s", clock=clock
    )


@pytest.mark.parametrize(
    ("operation", "rate", "burst"),
    [
        # models/listings-items-api-model/listingsItems_2021-08-01.json
        ("patchListingsItem", 5.0, 5),
        ("getListingsItem", 5.0, 10),
        # models/feeds-api-model/feeds_2021-06-30.json (createFeedDocument: 0.5 since 2023-02)
        ("createFeedDocument", 0.5, 15),
        ("createFeed", 0.0083, 15),
        ("getFeed", 2.0, 15),
        ("getFeedDocument", 0.0222, 10),
    ],
)
def test_each_operation_allows_its_burst_then_its_rate(
    operation: str, rate: float, burst: int
) -> None:
    clock = Clock()
    bucket = seller(clock).limits[operation]
    assert all(bucket.take() for _ in range(burst))
    assert not bucket.take()
    clock.now += 0.99 / rate
    assert not bucket.take()
    clock.now += 0.02 / rate
    assert bucket.take()


def test_json_listings_feed_submissions_allow_five_per_five_minutes() -> None:
    # Changelog "Feed size and rate limit changes for the JSON_LISTINGS_FEED" (2025-05-06).
    clock = Clock()
    bucket = seller(clock).feed_submissions
    assert all(bucket.take() for _ in range(5))
    assert not bucket.take()
    clock.now += 59.0
    assert not bucket.take()
    clock.now += 2.0
    assert bucket.take()


def test_the_simulator_keeps_its_own_feed_limit() -> None:
    # listings-feed-schema-v2.json messages.maxItems: 25,000 since 2026-01-22.
    assert FEED_MAX_MESSAGES == 25_000


MFN = {"fulfillment_channel_code": "DEFAULT", "marketplace_id": "M", "quantity": 3,
       "lead_time_to_ship_max_days": 12}
FBA = {"fulfillment_channel_code": "AMAZON_NA", "marketplace_id": "M"}


@pytest.mark.parametrize(
    ("op", "value", "after"),
    [
        # replace: the named entry is what was given, nothing more; other channels stay (#2061)
        ("replace", [{"fulfillment_channel_code": "DEFAULT", "quantity": 5}],
         [{"fulfillment_channel_code": "DEFAULT", "marketplace_id": "M", "quantity": 5}, FBA]),
        # merge: only the given fields change
        ("merge", [{"fulfillment_channel_code": "DEFAULT", "quantity": 5}],
         [{**MFN, "quantity": 5}, FBA]),
        # delete: the named entry goes, or the whole attribute without a value
        ("delete", [{"fulfillment_channel_code": "AMAZON_NA"}], [MFN]),
        ("delete", None, []),
    ],
    ids=["replace", "merge", "delete-one", "delete-all"],
)
def test_patch_operations_on_fulfillment_availability(
    op: str, value: list[dict[str, object]] | None, after: list[dict[str, object]]
) -> None:
    assert apply_patch([MFN, FBA], op, value, "M") == after


def test_a_merge_of_a_new_channel_code_adds_its_entry_and_a_bad_value_is_refused() -> None:
    added = apply_patch([MFN], "merge", [{"fulfillment_channel_code": "AMAZON_NA"}], "M")
    assert added == [MFN, FBA]
    refused = apply_patch([MFN], "merge", [{"fulfillment_channel_code": "DEFAULT",
                                            "quantity": True}], "M")
    assert isinstance(refused, str) and "quantity" in refused
