-- reserve.lua: takes holds for a batch of reservation requests of one sale,
-- in order, atomically. A batch of one is a plain reservation; the engine's
-- coalescer sends bigger ones.
-- KEYS[1] meta  KEYS[2] stock  KEYS[3] buyers  KEYS[4] holds
-- KEYS[5] expiry  KEYS[6] outbox
-- ARGV[1] now_ms  ARGV[2] n requests, then for each request:
--   hold_id, user, idempotency key, quantity, c candidates, then c pairs of
--   store id and distance in km (nearest first)
-- Returns one {outcome, hold record JSON or ''} per request; outcome is
-- created, replay, not_started, ended, limit_reached, sold_out,
-- no_store_stock or unknown_sale.
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local out = {}
local m = redis.call('HMGET', KEYS[1], 'start', 'end', 'limit', 'ttl')
if not m[1] then
  for r = 1, n do out[r] = {'unknown_sale', ''} end
  return out
end
local start, stop, limit, ttl = tonumber(m[1]), tonumber(m[2]), tonumber(m[3]), tonumber(m[4])
local i = 3
for r = 1, n do
  local hid, user, key = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local qty, nc = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local c0 = i + 5
  i = c0 + 2 * nc
  -- The user's length keeps (user, key) pairs from colliding.
  local rk = 'r:' .. #user .. ':' .. user .. ':' .. key
  local prev = redis.call('HGET', KEYS[4], rk)
  if prev then
    out[r] = {'replay', redis.call('HGET', KEYS[4], prev)}
  elseif now < start then
    out[r] = {'not_started', ''}
  elseif now >= stop then
    out[r] = {'ended', ''}
  elseif tonumber(redis.call('HGET', KEYS[3], user) or '0') + qty > limit then
    out[r] = {'limit_reached', ''}
  elseif tonumber(redis.call('HGET', KEYS[2], 'g')) < qty then
    out[r] = {'sold_out', ''}
  else
    local store, dist
    for c = c0, i - 1, 2 do
      if tonumber(redis.call('HGET', KEYS[2], 'r:' .. ARGV[c]) or '0') >= qty then
        store, dist = ARGV[c], ARGV[c + 1]
        break
      end
    end
    if not store then
      out[r] = {'no_store_stock', ''}
    else
      redis.call('HINCRBY', KEYS[2], 'g', -qty)
      redis.call('HINCRBY', KEYS[2], 'gh', qty)
      redis.call('HINCRBY', KEYS[2], 'r:' .. store, -qty)
      redis.call('HINCRBY', KEYS[2], 'h:' .. store, qty)
      redis.call('HINCRBY', KEYS[3], user, qty)
      local exp = now + ttl
      local ts = tostring(now)
      local rec = cjson.encode({id = hid, user = user, store = store, qty = qty,
        dist = dist, state = 'held', created = ts, expires = tostring(exp), updated = ts})
      redis.call('HSET', KEYS[4], hid, rec, rk, hid)
      redis.call('ZADD', KEYS[5], exp, hid)
      redis.call('XADD', KEYS[6], '*', 'id', hid .. ':held', 'type', 'hold.created',
        'at', ts, 'hold', rec)
      out[r] = {'created', rec}
    end
  end
end
return out
