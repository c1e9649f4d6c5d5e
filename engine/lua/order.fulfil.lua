-- order.fulfil: ship an order, whole (no args.lines) or partly: on_hand and reserved both drop.
-- KEYS: [1] event marker, [2] ord:{channel/order}, then inv:{SKU} per args.skus (the order's SKUs)
-- ARGV[1]: {"skus", "order_id", "lines"?: [{"sku", "qty"}]}
-- Refuses UNKNOWN_ORDER, NOTHING_RESERVED, EXCEEDS_RESERVED.
return run(function()
  if applied() then return reply('dup', load_doc(KEYS[2])) end
  local doc = load_existing(KEYS[2])
  local touched = apply_takes(plan(doc, 'reserved', 'EXCEEDS_RESERVED'), function(l, q)
    bump(l.sku, l.location, 'reserved', -q)
    bump(l.sku, l.location, 'on_hand', -q)
    l.reserved = l.reserved - q
    l.fulfilled = l.fulfilled + q
  end)
  return finish(doc, touched)
end)
