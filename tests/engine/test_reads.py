"""Reading many SKUs at once: the same states as one by one, never-stocked ones absent."""

from __future__ import annotations

from invsync.engine.engine import Engine


async def test_stocks_reads_many_skus_like_stock_reads_one(engine: Engine) -> None:
    skus = [f"SKU-{i}" for i in range(1203)]  # more than two pipeline chunks
    for i, sku in enumerate(skus[:1200]):
        await engine.count(f"c{i}", sku, "wh-east", i)
    states = await engine.stocks(skus, chunk=500)
    assert sorted(states) == sorted(skus[:1200])  # the last three were never stocked
    for sku in (skus[0], skus[777], skus[1199]):
        assert states[sku] == await engine.stock(sku)
