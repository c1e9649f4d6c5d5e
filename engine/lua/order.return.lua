-- order.return: restock returned units of a fulfilled order at the receiving location (which
-- may differ from where they shipped: bought online, returned in a store).
-- KEYS: [1] event marker, [2] ord:{channel/order}, then inv:{SKU} per args.skus (the order's SKUs)
-- ARGV[1]: {"skus", "order_id", "location", "lines"?: [{"sku", "qty"}]}
-- Refuses UNKNOWN_ORDER, EXCEEDS_FULFILLED (more than was fulfilled and not yet returned).
return run(function()
  if applied() then return reply('dup', load_doc(KEYS[2])) end
  local location = id(ARGS.location, 'location')
  local doc = load_existing(KEYS[2])
  local touched = apply_takes(plan(doc, 'returnable', 'EXCEEDS_FULFILLED'), function(l, q)
    bump(l.sku, location, 'on_hand', q) -- at the receiving location, not where it shipped from
    l.returned = l.returned + q
  end)
  return finish(doc, touched)
end)
