-- hold.place: reserve stock for a checkout or a quote for ttl_ms, released when it lapses.
-- KEYS: [1] event marker, [2] hold:{hold/id}, [3] holds:expiry, then inv:{SKU} per args.skus
-- ARGV[1]: {"skus", "channel", "order_id" (the hold id), "lines": [...], "ttl_ms"}
-- Refuses like order.reserve. The hold is indexed in holds:expiry for the reaper.
-- Idempotent by hold id as well as by event id (a storefront retrying "pay" with a new event
-- id): a hold still held with the same units per SKU answers "dup" and changes nothing (not
-- even its expiry); any other reuse of the id refuses HOLD_EXISTS with the hold's state.
local function per_sku(lines, field)
  local out = {}
  for _, l in ipairs(lines) do out[l.sku] = (out[l.sku] or 0) + (tonumber(l[field]) or 0) end
  return out
end

local function same(a, b)
  for sku, q in pairs(a) do if b[sku] ~= q then return false end end
  for sku, q in pairs(b) do if a[sku] ~= q then return false end end
  return true
end

return run(function()
  if not applied() then
    local doc = load_doc(KEYS[2])
    if doc then
      if doc.state == 'held' and type(ARGS.lines) == 'table'
          and same(per_sku(doc.lines, 'qty'), per_sku(ARGS.lines, 'qty')) then
        remember()
        return reply('dup', doc)
      end
      fail('HOLD_EXISTS', 'hold ' .. doc.order_id .. ' exists (' .. doc.state .. ')'
        .. (doc.state == 'held' and ' with other quantities: release it first' or '')
        .. '; a hold id is used once', { state = doc.state })
    end
  end
  return reserve('hold')
end)
