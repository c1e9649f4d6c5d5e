-- order.release: cancel an order, whole (no args.lines) or partly; releases reserved units only.
-- KEYS: [1] event marker, [2] ord:{channel/order}, then inv:{SKU} per args.skus (the order's SKUs)
-- ARGV[1]: {"skus", "order_id", "lines"?: [{"sku", "qty"}], "reason"?}
-- Refuses UNKNOWN_ORDER, NOTHING_RESERVED (whole cancel of a fulfilled/cancelled order),
-- EXCEEDS_RESERVED (a partial cancel asks for more than is still reserved).
return run(function()
  if applied() then return reply('dup', load_doc(KEYS[2])) end
  local doc = load_existing(KEYS[2])
  local touched = apply_takes(plan(doc, 'reserved', 'EXCEEDS_RESERVED'), function(l, q)
    bump(l.sku, l.location, 'reserved', -q)
    l.reserved = l.reserved - q
    l.released = l.released + q
  end)
  return finish(doc, touched)
end)
