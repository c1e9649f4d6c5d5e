"""The simulated SP-API enforces the usage plans Amazon's API models document today."""

from __future__ import annotations

import pytest

from invsync.core.config import Channel
from invsync.simulators.amazon import AmazonSellingPartner


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
