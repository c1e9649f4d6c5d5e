-- stock.adjust: change on_hand of a SKU at a location by a delta, with a reason.
-- KEYS: [1] event marker, [2] hist:{SKU} (record_history), [3] inv:{SKU}
-- ARGV[1]: {"skus": [SKU], "sku", "location", "delta" (non-zero integer), "reason"}
-- Refuses INVALID_QUANTITY (delta 0 or not an integer, or on_hand would pass the ceiling of
-- is_int, so HINCRBY can never overflow), NEGATIVE_STOCK (on_hand would go below 0),
-- BELOW_RESERVED (on_hand would go below the units reserved by open orders).
return run(function()
  if applied() then return reply('dup') end
  local sku, location = ARGS.sku, id(ARGS.location, 'location')
  local delta = ARGS.delta
  if not is_int(delta) or delta == 0 then
    fail('INVALID_QUANTITY', 'delta must be a non-zero integer, got ' .. tostring(delta),
      { field = 'delta' })
  end
  local before = counter(sku, location, 'on_hand')
  local after = before + delta
  if not is_int(after) then
    fail('INVALID_QUANTITY', 'adjusting ' .. sku .. ' at ' .. location .. ' by ' .. delta ..
      ' would pass the largest on_hand the store keeps', { field = 'delta', on_hand = before })
  end
  if after < 0 then
    fail('NEGATIVE_STOCK', 'adjusting ' .. sku .. ' at ' .. location .. ' by ' .. delta ..
      ' would leave ' .. after .. ' on hand', { sku = sku, location = location, on_hand = before })
  end
  local reserved = counter(sku, location, 'reserved')
  if after < reserved then
    fail('BELOW_RESERVED', 'adjusting ' .. sku .. ' at ' .. location .. ' by ' .. delta ..
      ' would leave ' .. after .. ' on hand, below the ' .. reserved .. ' units reserved',
      { sku = sku, location = location, reserved = reserved, on_hand = before })
  end
  bump(sku, location, 'on_hand', delta)
  local v = redis.call('HINCRBY', inv(sku), 'v', 1)
  record_history(v, 'adjust', location, 'on_hand', before, after, ARGS.reason or 'adjustment')
  remember()
  return reply('ok')
end)
