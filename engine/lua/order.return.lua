-- order.return: restock returned units of a fulfilled order at the receiving location (which
-- may differ from where they shipped: bought online, returned in a store).
-- KEYS: [1] event marker, [2] ord:{channel/order}, then inv:{SKU} per args.skus (the order's SKUs)
-- ARGV[1]: {"skus", "order_id", "location", "lines"?: [{"sku", "qty"}]}
-- Refuses UNKNOWN_ORDER, EXCEEDS_FULFILLED (more than was fulfilled and not yet returned),
-- INVALID_QUANTITY (on_hand at the receiving location would pass the ceiling of is_int).
return run(function()
  if applied() then return reply('dup', load_doc(KEYS[2])) end
  local location = id(ARGS.location, 'location')
  local doc = load_existing(KEYS[2])
  local takes = plan(doc, 'returnable', 'EXCEEDS_FULFILLED')
  local adding = {}
  for _, t in ipairs(takes) do
    local sku = t[1].sku
    adding[sku] = (adding[sku] or 0) + t[2]
    if not is_int(counter(sku, location, 'on_hand') + adding[sku]) then
      fail('INVALID_QUANTITY', 'returning ' .. adding[sku] .. ' of ' .. sku .. ' at ' .. location
        .. ' would pass the largest on_hand the store keeps', { sku = sku, location = location })
    end
  end
  local touched = apply_takes(takes, function(l, q)
    bump(l.sku, location, 'on_hand', q) -- at the receiving location, not where it shipped from
    l.returned = l.returned + q
  end)
  return finish(doc, touched)
end)
