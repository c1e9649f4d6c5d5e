-- hold.place: reserve stock for a checkout or a quote for ttl_ms, released when it lapses.
-- KEYS: [1] event marker, [2] hold:{hold/id}, [3] holds:expiry, then inv:{SKU} per args.skus
-- ARGV[1]: {"skus", "channel", "order_id" (the hold id), "lines": [...], "ttl_ms"}
-- Refuses like order.reserve. The hold is indexed in holds:expiry for the reaper.
return run(function() return reserve('hold') end)
