-- hold.release: release a hold's units, on request ("released") or because it lapsed ("expired").
-- KEYS: [1] event marker, [2] hold:{hold/id}, [3] holds:expiry, then inv:{SKU} per args.skus
-- ARGV[1]: {"skus", "order_id" (hold id), "kind": "hold", "reason": "released" | "expired"}
-- Refuses UNKNOWN_ORDER, NOTHING_RESERVED (already released, expired or converted), NOT_EXPIRED
-- (an expiry sweep found the hold still within its time).
return run(function()
  if applied() then return reply('dup', load_doc(KEYS[2])) end
  local doc = load_existing(KEYS[2])
  if doc.state ~= 'held' then
    fail('NOTHING_RESERVED', 'hold ' .. doc.order_id .. ' is ' .. doc.state, { state = doc.state })
  end
  local expired = ARGS.reason == 'expired'
  if expired and doc.expires_ms > NOW then
    fail('NOT_EXPIRED', 'hold ' .. doc.order_id .. ' runs until ' .. doc.expires_ms)
  end
  local touched = {}
  for _, l in ipairs(doc.lines) do
    if l.reserved > 0 then
      bump(l.sku, l.location, 'reserved', -l.reserved)
      l.released = l.released + l.reserved
      l.reserved = 0
      touched[l.sku] = true
    end
  end
  bump_versions(touched)
  doc.state = expired and 'expired' or 'released'
  save_doc(KEYS[2], doc)
  redis.call('ZREM', KEYS[3], KEYS[2])
  remember()
  return reply('ok', doc)
end)
