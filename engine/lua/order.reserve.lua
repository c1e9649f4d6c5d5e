-- order.reserve: reserve every line of an order at the location the caller chose, all or none.
-- KEYS: [1] event marker, [2] ord:{channel/order}, [3] hold:{...} and [4] holds:expiry (only
--       with args.hold),
--       then inv:{SKU} per args.skus
-- ARGV[1]: {"skus", "channel", "order_id", "lines": [{"sku", "location", "qty"}], "hold"?}
-- Refuses INVALID_QUANTITY, INVALID_REQUEST, ORDER_EXISTS, INSUFFICIENT_STOCK (with shortages).
return run(function() return reserve('order') end)
