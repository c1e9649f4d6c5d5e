-- hold.release: release a hold's units, on request ("released") or because it lapsed ("expired").
-- KEYS: [1] event marker, [2] hold:{hold/id}, [3] holds:expiry, then inv:{SKU} per args.skus
-- ARGV[1]: {"skus", "order_id" (hold id), "kind": "hold", "reason": "released" | "expired"}
-- Refuses UNKNOWN_HOLD, NOTHING_RESERVED (already released, expired or converted: the details'
-- state says which), NOT_EXPIRED (an expiry sweep found the hold still within its time).
return run(function()
  if applied() then return reply('dup', load_doc(KEYS[2])) end
  local doc = load_doc(KEYS[2])
  if not doc then fail('UNKNOWN_HOLD', 'unknown hold ' .. tostring(ARGS.order_id)) end
  if doc.state ~= 'held' then
    fail('NOTHING_RESERVED', 'hold ' .. doc.order_id .. ' is ' .. doc.state, { state = doc.state })
  end
  local expired = ARGS.reason == 'expired'
  if expired and doc.expires_ms > NOW then
    fail('NOT_EXPIRED', 'hold ' .. doc.order_id .. ' runs until ' .. doc.expires_ms)
  end
  local touched = release_all(doc, {})
  redis.call('ZREM', KEYS[3], KEYS[2])
  return finish(doc, touched, expired and 'expired' or 'released')
end)
