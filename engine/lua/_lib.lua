-- _lib.lua: helpers shared by every engine script. engine/scripts.py prepends this file to each
-- script before SCRIPT LOAD, so every script is one self-contained, atomic unit on the server.
--
-- Conventions of every script:
--   KEYS[1]   the idempotency marker of this event (set with a TTL once the event is applied)
--   KEYS[2]   the record the event is about (hist:{SKU} for stock events, ord:/hold: for orders)
--   KEYS[...] then inv:{SKU} of every SKU named in args.skus, in that order, as the LAST keys
--   ARGV[1]   the arguments as JSON; ARGV[2] idempotency TTL in ms; ARGV[3] now, ms since epoch
-- Reply: {"ok", json} | {"dup", json} | {"err", json}; the ok/dup json is
--   {"skus": {SKU: [field, value, ...]}, "order": {...}} (current state, so no second read),
--   the err json is {"code", "message", ...details}.
-- Every check runs before the first write, so a refused event changes nothing (Redis does not
-- roll back a script's writes, so the order of the code is what makes a refusal clean).

local Fail = {}

local function fail(code, message, details)
  local e = details or {}
  e.code = code
  e.message = message
  error(setmetatable(e, Fail))
end

local ARGS = cjson.decode(ARGV[1])
local TTL = tonumber(ARGV[2])
local NOW = tonumber(ARGV[3])

local function present(x)
  return x ~= nil and x ~= cjson.null
end

-- Bounded below 1e14: cjson encodes numbers with 14 significant digits, so a larger one would
-- come back in a reply as 1e+14 (a float, and not the value that was stored).
local function is_int(x)
  return type(x) == 'number' and x == math.floor(x) and x > -1e14 and x < 1e14
end

local function quantity(x, field, min)
  if not is_int(x) or x < min then
    fail('INVALID_QUANTITY', field .. ' must be an integer >= ' .. min .. ', got ' .. tostring(x),
      { field = field })
  end
  return x
end

local function id(x, field)
  if type(x) ~= 'string' or x == '' or string.find(x, '[:{}%s]') then
    fail('INVALID_REQUEST', field .. ' must be a non-empty id without ":", braces or spaces',
      { field = field })
  end
  return x
end

-- SKU -> KEYS index of its inv:{SKU} hash (the last #ARGS.skus keys).
local SKUS = ARGS.skus or {}
local FIRST_INV = #KEYS - #SKUS + 1
local INV = {}
for i, sku in ipairs(SKUS) do INV[sku] = KEYS[FIRST_INV + i - 1] end

local function inv(sku)
  local key = INV[sku]
  if not key then fail('KEYS_MISMATCH', 'no key passed for SKU ' .. tostring(sku)) end
  return key
end

local function counter(sku, location, state)
  return tonumber(redis.call('HGET', inv(sku), location .. ':' .. state) or '0')
end

local function bump(sku, location, state, delta)
  redis.call('HINCRBY', inv(sku), location .. ':' .. state, delta)
end

local function bump_versions(touched)
  for sku in pairs(touched) do redis.call('HINCRBY', inv(sku), 'v', 1) end
end

local function applied()
  return redis.call('EXISTS', KEYS[1]) == 1
end

local function remember()
  redis.call('SET', KEYS[1], '1', 'PX', TTL)
end

local function load_doc(key)
  local raw = redis.call('HGET', key, 'doc')
  if not raw then return nil end
  return cjson.decode(raw)
end

local function save_doc(key, doc)
  doc.updated_ms = NOW
  redis.call('HSET', key, 'doc', cjson.encode(doc), 'state', doc.state)
end

local function reply(status, doc)
  local out = {}
  for i, sku in ipairs(SKUS) do out[sku] = redis.call('HGETALL', KEYS[FIRST_INV + i - 1]) end
  return { status, cjson.encode({ skus = out, order = doc }) }
end

-- Run a script body; a fail() becomes an {"err", json} reply, any other error is a bug and
-- surfaces as a Redis error reply.
local function run(body)
  local ok, res = pcall(body)
  if ok then return res end
  if type(res) == 'table' and getmetatable(res) == Fail then
    setmetatable(res, nil)
    return { 'err', cjson.encode(res) }
  end
  error(res)
end

-- The state of an order from its lines' counters.
local function order_state(doc)
  local r, f, ret = 0, 0, 0
  for _, l in ipairs(doc.lines) do
    r = r + l.reserved
    f = f + l.fulfilled
    ret = ret + l.returned
  end
  if r > 0 then
    if f > 0 then return 'partially_fulfilled' end
    return 'reserved'
  end
  if f == 0 then return 'cancelled' end
  if ret >= f then return 'returned' end
  return 'fulfilled'
end

-- Free every unit a record still holds reserved; marks the SKUs in `touched`.
local function release_all(doc, touched)
  for _, l in ipairs(doc.lines) do
    if l.reserved > 0 then
      bump(l.sku, l.location, 'reserved', -l.reserved)
      l.released = l.released + l.reserved
      l.reserved = 0
      touched[l.sku] = true
    end
  end
  return touched
end

-- Apply `each(line, qty)` to every planned take; returns the SKUs touched.
local function apply_takes(takes, each)
  local touched = {}
  for _, t in ipairs(takes) do
    each(t[1], t[2])
    touched[t[1].sku] = true
  end
  return touched
end

-- The end of every applied order/hold script: versions, state, record, marker, reply.
local function finish(doc, touched, state)
  bump_versions(touched)
  doc.state = state or order_state(doc)
  save_doc(KEYS[2], doc)
  remember()
  return reply('ok', doc)
end

-- Units physically free at (sku, location): reservations may use safety stock (that is what it
-- is for: orders that arrive before the channel saw the last change) but never damaged units.
local function free(sku, location)
  return counter(sku, location, 'on_hand') - counter(sku, location, 'reserved')
    - counter(sku, location, 'damaged')
end

-- Reserve args.lines (kind 'order' or 'hold'; a hold has the expiry index holds:expiry at
-- KEYS[3]). An order may convert an active hold (args.hold; the hold's key at KEYS[3] and the
-- expiry index at KEYS[4]): the hold's units count as free for this order and are released in
-- the same atomic step, so a checkout never loses its stock to a race between hold and order.
local function reserve(kind)
  local rec = KEYS[2]
  if applied() then return reply('dup', load_doc(rec)) end
  if redis.call('EXISTS', rec) == 1 then
    fail('ORDER_EXISTS', kind .. ' ' .. tostring(ARGS.order_id) .. ' already exists')
  end
  local lines = ARGS.lines
  if type(lines) ~= 'table' or #lines == 0 then
    fail('INVALID_REQUEST', 'an order needs at least one line', { field = 'lines' })
  end
  -- Sum what each (sku, location) needs: two lines on the same unit count together.
  local need, order = {}, {}
  for i, line in ipairs(lines) do
    local sku = line.sku
    inv(sku)
    local location = id(line.location, 'lines[' .. (i - 1) .. '].location')
    local q = quantity(line.qty, 'lines[' .. (i - 1) .. '].qty', 1)
    local k = sku .. '\0' .. location
    if not need[k] then
      need[k] = { sku = sku, location = location, qty = 0 }
      table.insert(order, k)
    end
    need[k].qty = quantity(need[k].qty + q, 'lines[' .. (i - 1) .. '].qty', 1)
  end
  local ttl = nil
  if kind == 'hold' then
    ttl = quantity(ARGS.ttl_ms, 'ttl_ms', 1)
    quantity(NOW + ttl, 'ttl_ms', 1)
  end
  local credit, hold_key, hold = {}, nil, nil
  if kind == 'order' and present(ARGS.hold) then
    hold_key = KEYS[3]
    hold = load_doc(hold_key)
    if hold and hold.state == 'held' then
      for _, l in ipairs(hold.lines) do
        inv(l.sku) -- the hold's SKUs are written below: refuse now, not halfway through
        local k = l.sku .. '\0' .. l.location
        credit[k] = (credit[k] or 0) + l.reserved
      end
    else
      hold = nil
    end
  end
  local shortages = {}
  for _, k in ipairs(order) do
    local n = need[k]
    local f = free(n.sku, n.location) + (credit[k] or 0)
    if n.qty > f then
      table.insert(shortages, { sku = n.sku, location = n.location, requested = n.qty,
        free = math.max(f, 0) })
    end
  end
  if #shortages > 0 then
    fail('INSUFFICIENT_STOCK', 'not enough free stock for ' .. #shortages .. ' line(s)',
      { shortages = shortages })
  end
  -- Apply.
  local touched = {}
  if hold then
    release_all(hold, touched)
    hold.state = 'converted'
    hold.converted_to = ARGS.channel .. '/' .. ARGS.order_id
    save_doc(hold_key, hold)
    redis.call('ZREM', KEYS[4], hold_key)
  end
  local doc_lines = {}
  for _, k in ipairs(order) do
    local n = need[k]
    bump(n.sku, n.location, 'reserved', n.qty)
    touched[n.sku] = true
    table.insert(doc_lines, { sku = n.sku, location = n.location, qty = n.qty, reserved = n.qty,
      fulfilled = 0, released = 0, returned = 0 })
  end
  bump_versions(touched)
  local doc = { kind = kind, channel = ARGS.channel, order_id = ARGS.order_id,
    state = (kind == 'hold') and 'held' or 'reserved', lines = doc_lines,
    created_ms = NOW, updated_ms = NOW }
  if present(ARGS.requested) then doc.requested = ARGS.requested end
  if kind == 'hold' then
    doc.expires_ms = NOW + ttl
    redis.call('ZADD', KEYS[3], doc.expires_ms, rec)
  end
  save_doc(rec, doc)
  remember()
  return reply('ok', doc)
end

-- Plan which order lines give how many units for a release/fulfil (field 'reserved') or a
-- return (field 'returnable'): the whole order when args.lines is absent, else each requested
-- {sku, qty} spread over that SKU's lines in order. Returns {{line, qty}, ...}; writes nothing.
local function plan(doc, field, short_code)
  local function left(l)
    if field == 'returnable' then return l.fulfilled - l.returned end
    return l.reserved
  end
  local takes = {}
  if not present(ARGS.lines) then
    for _, l in ipairs(doc.lines) do
      if left(l) > 0 then table.insert(takes, { l, left(l) }) end
    end
    if #takes == 0 then
      if field == 'returnable' then
        fail('EXCEEDS_FULFILLED', 'nothing of order ' .. doc.order_id .. ' is left to return',
          { state = doc.state })
      end
      fail('NOTHING_RESERVED', doc.kind .. ' ' .. doc.order_id .. ' has nothing reserved (state '
        .. doc.state .. ')', { state = doc.state })
    end
    return takes
  end
  local used = {}
  for i, req in ipairs(ARGS.lines) do
    local want = quantity(req.qty, 'lines[' .. (i - 1) .. '].qty', 1)
    local remaining = want
    for j, l in ipairs(doc.lines) do
      if remaining == 0 then break end
      -- A line that names its location (a warehouse's shipment report) takes only from there.
      if l.sku == req.sku and (not present(req.location) or req.location == l.location) then
        local avail = left(l) - (used[j] or 0)
        local q = math.min(avail, remaining)
        if q > 0 then
          used[j] = (used[j] or 0) + q
          table.insert(takes, { l, q })
          remaining = remaining - q
        end
      end
    end
    if remaining > 0 then
      fail(short_code, 'order ' .. doc.order_id .. ' has only ' .. (want - remaining) .. ' of '
        .. tostring(req.sku) .. ' left for this, asked ' .. want,
        { sku = req.sku, requested = want, remaining = want - remaining })
    end
  end
  return takes
end

local function load_existing(rec)
  local doc = load_doc(rec)
  if not doc then
    fail('UNKNOWN_ORDER', 'unknown ' .. (ARGS.kind or 'order') .. ' ' .. tostring(ARGS.order_id))
  end
  return doc
end

-- Operator movements of a SKU (stock.count, stock.adjust) in KEYS[2], hist:{SKU}: a LIST, newest
-- first, capped at ARGS.history_cap entries, each a JSON array
--   [ts, v, event, op, location, state, from, to, reason]
-- (ts: ms; v: the SKU's version after the change, so "<ts>-<v>" identifies the entry). A short
-- list is one listpack on the server: about 160 bytes for one entry, where a stream with one
-- entry costs 4.3 KB (it allocates a whole node). It stays in the SKU's hash slot. A stream left
-- by an older version is converted here, in the same atomic step, keeping its newest entries
-- (their stream ids become "<ts>-<seq>").
local function record_history(v, op, location, state, from, to, reason)
  local key = KEYS[2]
  local cap = ARGS.history_cap or 100
  if redis.call('TYPE', key).ok == 'stream' then
    local rows = redis.call('XREVRANGE', key, '+', '-', 'COUNT', math.max(cap - 1, 1))
    redis.call('DEL', key)
    for _, row in ipairs(rows) do
      local f = {}
      for i = 1, #row[2], 2 do f[row[2][i]] = row[2][i + 1] end
      local seq = tonumber(string.match(row[1], '%-(%d+)$')) or 0
      local ts = tonumber(f.ts) or tonumber(string.match(row[1], '^(%d+)')) or 0
      redis.call('RPUSH', key, cjson.encode({ ts, seq, f.event or '', f.op or '',
        f.location or '', f.state or '', tonumber(f.from) or 0, tonumber(f.to) or 0,
        f.reason or '' }))
    end
  end
  redis.call('LPUSH', key, cjson.encode({ NOW, v, ARGS.event_id or '', op, location, state,
    from, to, reason }))
  redis.call('LTRIM', key, 0, cap - 1)
end
