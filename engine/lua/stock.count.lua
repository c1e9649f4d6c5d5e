-- stock.count: set one counter of a SKU at a location to an absolute value (a physical count).
-- KEYS: [1] event marker, [2] hist:{SKU} (record_history), [3] inv:{SKU}
-- ARGV[1]: {"skus": [SKU], "sku", "location", "qty", "state": "on_hand" | "safety_stock" |
--           "damaged" | "incoming", "reason"}
-- Refuses INVALID_QUANTITY (not an integer >= 0), BELOW_RESERVED (on_hand below reserved units).
return run(function()
  if applied() then return reply('dup') end
  local sku, location = ARGS.sku, id(ARGS.location, 'location')
  local state = ARGS.state or 'on_hand'
  if state ~= 'on_hand' and state ~= 'safety_stock' and state ~= 'damaged'
    and state ~= 'incoming' then
    fail('INVALID_REQUEST', 'unknown stock state ' .. tostring(state), { field = 'state' })
  end
  local qty = quantity(ARGS.qty, state, 0)
  local before = counter(sku, location, state)
  if state == 'on_hand' then
    local reserved = counter(sku, location, 'reserved')
    if qty < reserved then
      fail('BELOW_RESERVED', 'count ' .. qty .. ' of ' .. sku .. ' at ' .. location ..
        ' is below the ' .. reserved .. ' units reserved by open orders',
        { sku = sku, location = location, reserved = reserved, requested = qty })
    end
  end
  redis.call('HSET', inv(sku), location .. ':' .. state, qty)
  local v = redis.call('HINCRBY', inv(sku), 'v', 1)
  record_history(v, 'count', location, state, before, qty, ARGS.reason or 'count')
  remember()
  return reply('ok')
end)
