-- reserve.lua: takes holds for a batch of reservation requests of one sale,
-- in order, atomically. A batch of one is a plain reservation; the engine's
-- coalescer sends bigger ones, and the work shared by a batch is done once:
-- the sale is read once, counters are read when first needed and written
-- back once, and hold records, idempotency entries and expiries are written
-- with one command each. Each request still sees every earlier one.
-- KEYS[1] meta  KEYS[2] stock  KEYS[3] buyers  KEYS[4] holds
-- KEYS[5] expiry  KEYS[6] outbox
-- ARGV[1] now_ms  ARGV[2] n requests, then for each request:
--   hold_id, user, idempotency key, quantity, c candidates, then c pairs of
--   store id and distance in km (nearest first)
-- Returns one {outcome, hold record JSON or ''} per request; outcome is
-- created, replay, not_started, ended, limit_reached, sold_out,
-- no_store_stock or unknown_sale. A created row also carries the store,
-- the distance and the expiry, so the caller need not parse the record.
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local out = {}
local m = redis.call('HMGET', KEYS[1], 'start', 'end', 'limit', 'ttl')
if not m[1] then
  for r = 1, n do out[r] = {'unknown_sale', ''} end
  return out
end
local start, stop, limit, ttl = tonumber(m[1]), tonumber(m[2]), tonumber(m[3]), tonumber(m[4])

-- Counters of the stock hash, read once and written back at the end.
local stock, changed = {}, {}
local function get(f)
  local v = stock[f]
  if v == nil then
    v = tonumber(redis.call('HGET', KEYS[2], f) or '0')
    stock[f] = v
  end
  return v
end
local function add(f, d)
  local v = get(f) + d
  if not changed[f] then changed[f] = true; changed[#changed + 1] = f end
  stock[f] = v
end
-- Units each shopper holds, likewise.
local bought, buyersChanged = {}, {}
-- What this batch created, so that a replay inside the batch finds it.
local made, recs = {}, {}
local holdArgs, expiryArgs = {}, {}

local i = 3
for r = 1, n do
  local hid, user, key = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local qty, nc = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local c0 = i + 5
  i = c0 + 2 * nc
  -- The user's length keeps (user, key) pairs from colliding.
  local rk = 'r:' .. #user .. ':' .. user .. ':' .. key
  local prev = made[rk] or redis.call('HGET', KEYS[4], rk)
  if prev then
    out[r] = {'replay', recs[prev] or redis.call('HGET', KEYS[4], prev)}
  elseif now < start then
    out[r] = {'not_started', ''}
  elseif now >= stop then
    out[r] = {'ended', ''}
  else
    local had = bought[user]
    if had == nil then
      had = tonumber(redis.call('HGET', KEYS[3], user) or '0')
      bought[user] = had
    end
    if had + qty > limit then
      out[r] = {'limit_reached', ''}
    elseif get('g') < qty then
      out[r] = {'sold_out', ''}
    else
      local store, dist
      for c = c0, i - 1, 2 do
        if get('r:' .. ARGV[c]) >= qty then
          store, dist = ARGV[c], ARGV[c + 1]
          break
        end
      end
      if not store then
        out[r] = {'no_store_stock', ''}
      else
        add('g', -qty)
        add('gh', qty)
        add('r:' .. store, -qty)
        add('h:' .. store, qty)
        if not buyersChanged[user] then buyersChanged[user] = true; buyersChanged[#buyersChanged + 1] = user end
        bought[user] = had + qty
        local exp = now + ttl
        local ts = tostring(now)
        -- Ids are validated to letters, digits and "_.:@+-": nothing to
        -- escape, and string.format is cheaper than cjson for this shape.
        local rec = string.format(
          '{"id":"%s","user":"%s","store":"%s","qty":%d,"dist":"%s","state":"held","created":"%s","expires":"%d","updated":"%s"}',
          hid, user, store, qty, dist, ts, exp, ts)
        made[rk], recs[hid] = hid, rec
        local h = #holdArgs
        holdArgs[h + 1], holdArgs[h + 2], holdArgs[h + 3], holdArgs[h + 4] = hid, rec, rk, hid
        local e = #expiryArgs
        expiryArgs[e + 1], expiryArgs[e + 2] = exp, hid
        redis.call('XADD', KEYS[6], '*', 'id', hid .. ':held', 'type', 'hold.created',
          'at', ts, 'hold', rec)
        out[r] = {'created', rec, store, dist, tostring(exp)}
      end
    end
  end
end

-- Write back in slices, well below Lua's limit on unpacked arguments.
local function write(cmd, key, args)
  for s = 1, #args, 4000 do
    redis.call(cmd, key, unpack(args, s, math.min(s + 3999, #args)))
  end
end
if #changed > 0 then
  local a = {}
  for _, f in ipairs(changed) do
    a[#a + 1] = f
    a[#a + 1] = string.format('%d', stock[f])
  end
  write('HSET', KEYS[2], a)
  local b = {}
  for _, u in ipairs(buyersChanged) do
    b[#b + 1] = u
    b[#b + 1] = string.format('%d', bought[u])
  end
  write('HSET', KEYS[3], b)
  write('HSET', KEYS[4], holdArgs)
  write('ZADD', KEYS[5], expiryArgs)
end
return out
