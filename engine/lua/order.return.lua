-- order.return: restock returned units of a fulfilled order at the receiving location (which
-- may differ from where they shipped: bought online, returned in a store).
-- KEYS: [1] event marker, [2] ord:{channel/order}, then inv:{SKU} per args.skus (the order's SKUs)
-- ARGV[1]: {"skus", "order_id", "location", "lines"?: [{"sku", "qty"}]}
-- Refuses UNKNOWN_ORDER, EXCEEDS_FULFILLED (more than was fulfilled and not yet returned).
return run(function()
  if applied() then return reply('dup', load_doc(KEYS[2])) end
  local location = id(ARGS.location, 'location')
  local doc = load_existing(KEYS[2])
  local takes = plan(doc, 'returnable', 'EXCEEDS_FULFILLED')
  local touched = {}
  for _, t in ipairs(takes) do
    local l, q = t[1], t[2]
    bump(l.sku, location, 'on_hand', q)
    l.returned = l.returned + q
    touched[l.sku] = true
  end
  bump_versions(touched)
  doc.state = order_state(doc)
  save_doc(KEYS[2], doc)
  remember()
  return reply('ok', doc)
end)
