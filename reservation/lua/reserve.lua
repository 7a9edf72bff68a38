-- reserve.lua: takes holds for a batch of reservation requests of one sale,
-- in order, atomically. A batch of one is a plain reservation; the engine's
-- coalescer sends bigger ones, and the work shared by a batch is done once:
-- the sale is read once; the batch's idempotency entries, its shoppers'
-- counts and the counters of the sale and of each request's nearest store
-- are read with one command each, other counters when first needed; every
-- counter is written back once, and hold records and idempotency entries
-- are written with one command. The batch's holds share one expiry time
-- and one expiry entry: "x:<first hold id>" in the expiry set, whose field
-- of that name in the holds hash lists the batch's hold ids (expire.lua
-- reads both kinds of entry: these and single hold ids). Each request
-- still sees every earlier one. The batch's creations are one outbox entry
-- (type hold.created, field ids: the batch's hold ids, field n: how many
-- of them it created), so that the stream costs one command per batch, not
-- one per hold; the relay reads the records from the holds hash. Redis
-- hashes every byte of every string a script makes, so the script joins no
-- lists of its own: the caller sends the ids already joined.
--
-- This script runs once per batch on the sale's single Redis thread, so it
-- is written for that thread's time: Lua strings are interned (each new one
-- is hashed and allocated), so the per-request work makes as few as it can.
-- The caller builds the idempotency entries' names, a created request is
-- answered by a number rather than a string, values shared by the batch are
-- formatted once, and a hold record is one concatenation. Lua 5.1 grows a
-- table by rehashing it at every power of two, so the lists a batch fills
-- are made at their full size at once (sized below) and filled by index.
-- KEYS[1] meta  KEYS[2] stock  KEYS[3] buyers  KEYS[4] holds
-- KEYS[5] expiry  KEYS[6] outbox
-- ARGV[1] now_ms  ARGV[2] n requests, then seven per request:
--   hold_id, user, idempotency entry ("r:<len(user)>:<user>:<key>"; the
--   user's length keeps (user, key) pairs from colliding), quantity (a
--   decimal integer), the nearest candidate store's counter field in the
--   stock hash ("r:<store>") and its distance (km; '' and '' when there is
--   no candidate), and the other candidates as one string
--   "r:<store> km r:<store> km ..." (nearest first; ids hold no spaces).
--   Most requests get their nearest store: it comes apart from the rest so
--   that the script does not parse a list for them. Stores come as their
--   counter fields so that the script keys everything per store by that
--   one string, and makes none.
-- ARGV[3 + 7n]: the batch's hold ids, "id id ..." in request order.
-- ARGV[4 + 7n]: "1" when a shopper has more than one request in the batch,
--   else "0": only then does the script keep per-shopper tables.
-- Returns n + 1 values: one per request, then the expiry (ms) of the holds
-- this call created:
--   k (an integer)         created at the request's k-th candidate store
--   "r<hold record JSON>"  replay of an earlier request's hold
--   not_started, ended, limit_reached, sold_out, no_store_stock or
--   unknown_sale
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])

-- The most values unpacked at once: well below Lua's limit (8000).
local chunk = 4000

-- sized returns a table whose array part already holds k slots (filled
-- with ARGV's values, to be overwritten): a table constructor sizes its
-- array part once for all the values unpack gives it. Past chunk, or past
-- ARGV's length, the table grows instead.
local nargv = #ARGV
local function sized(k)
  if k > chunk or k > nargv then return {} end
  return {unpack(ARGV, 1, k)}
end

local out = sized(n + 1)
local m = redis.call('HMGET', KEYS[1], 'start', 'end', 'limit', 'ttl')
if not m[1] then
  for r = 1, n do out[r] = 'unknown_sale' end
  out[n + 1] = 0
  return out
end
local start, stop, limit, ttl = tonumber(m[1]), tonumber(m[2]), tonumber(m[3]), tonumber(m[4])

-- Read k fields of a hash; in slices, well below Lua's limit on unpacked
-- values, when there are many.
local function hmget(key, fields, k)
  if k <= chunk then
    return redis.call('HMGET', key, unpack(fields, 1, k))
  end
  local vals = {}
  for s = 1, k, chunk do
    local part = redis.call('HMGET', key, unpack(fields, s, math.min(s + chunk - 1, k)))
    for j = 1, #part do vals[s + j - 1] = part[j] end
  end
  return vals
end
local rks, users = sized(n), sized(n)
for r = 1, n do
  users[r] = ARGV[4 + 7 * (r - 1)]
  rks[r] = ARGV[5 + 7 * (r - 1)]
end
local prevs = hmget(KEYS[4], rks, n)
if now < start or now >= stop then
  -- Outside the window nothing is created, but a replay still answers its
  -- hold (a shopper retrying after the end gets what they got).
  local code = now < start and 'not_started' or 'ended'
  for r = 1, n do
    out[r] = prevs[r] and ('r' .. redis.call('HGET', KEYS[4], prevs[r])) or code
  end
  out[n + 1] = 0
  return out
end
local had = hmget(KEYS[3], users, n)

-- Units left, of the sale and of stores, read once and written back at the
-- end: the sale's and every request's nearest store's with one HMGET, any
-- other store's when first needed. (Held units are derived: initial less
-- left less confirmed.) The sale's lives in a local; a store's is in stock
-- under its field name. The nf fields read are listed in fields, each
-- with the units it had in was, so that the end writes back those that
-- changed.
local stock = {}
local fields, was, nf = sized(n + 1), sized(n + 1), 1
local g
do
  fields[1] = 'g'
  for r = 1, n do
    local f = ARGV[7 + 7 * (r - 1)]
    if f ~= '' and stock[f] == nil then
      stock[f] = false -- listed
      nf = nf + 1
      fields[nf] = f
    end
  end
  local vals = hmget(KEYS[2], fields, nf)
  for j = 1, nf do
    local v = tonumber(vals[j] or '0')
    stock[fields[j]], was[j] = v, v
  end
  g = stock.g
end
-- count returns a store's units left, reading them from Redis the first
-- time.
local function count(f)
  local v = stock[f]
  if v == nil then
    v = tonumber(redis.call('HGET', KEYS[2], f) or '0')
    stock[f] = v
    nf = nf + 1
    fields[nf], was[nf] = f, v
  end
  return v
end
-- Shoppers' new counts, to write back: HSET arguments (shopper, count),
-- nb of them. A shopper with two holds in the batch is in it twice, and
-- the later, higher count wins.
local counts, nb = sized(2 * n), 0
-- When a shopper has more than one request in the batch: the units each
-- holds after the batch's earlier requests (else Redis's count is theirs),
-- and the records created, by idempotency entry, so that a replay inside
-- the batch finds its hold.
local bought, made
if ARGV[4 + 7 * n] == '1' then bought, made = {}, {} end
-- The nc holds created: HSET arguments (two fields each).
local holdArgs, nc = sized(4 * n + 2), 0
local ts = ARGV[1]
local exp = string.format('%d', now + ttl)
-- The part of every record of this batch after the distance, and the part
-- between the user and the distance for each store (quantity 1).
local tail = '","state":"held","created":"' .. ts .. '","expires":"' .. exp .. '","updated":"' .. ts .. '"}'
local mid1 = {}

for r = 1, n do
  local a = 3 + 7 * (r - 1)
  local rk = rks[r]
  if made and made[rk] then
    out[r] = 'r' .. made[rk]
  elseif prevs[r] then
    out[r] = 'r' .. redis.call('HGET', KEYS[4], prevs[r])
  else
    local user, qs = users[r], ARGV[a + 3]
    local qty = qs == '1' and 1 or tonumber(qs)
    local held = bought and bought[user]
    if held == nil then
      local hv = had[r]
      held = hv and tonumber(hv) or 0
    end
    if held + qty > limit then
      out[r] = 'limit_reached'
    elseif g < qty then
      out[r] = 'sold_out'
    else
      local rf, dist, k = ARGV[a + 4], ARGV[a + 5], 1
      if rf == '' then
        rf = nil
      elseif stock[rf] < qty then
        -- The nearest store is out: walk the rest of the candidates.
        rf = nil
        local cands, p = ARGV[a + 6], 1
        while true do
          local _, e, f, d = string.find(cands, '^(%S+) (%S+) ?', p)
          if not e then break end
          k = k + 1
          if count(f) >= qty then
            rf, dist = f, d
            break
          end
          p = e + 1
        end
      end
      if not rf then
        out[r] = 'no_store_stock'
      else
        g = g - qty
        stock[rf] = stock[rf] - qty
        local total = held + qty
        nb = nb + 1
        counts[2 * nb - 1], counts[2 * nb] = user, total == 1 and '1' or string.format('%d', total)
        if bought then bought[user] = total end
        -- Ids are validated to letters, digits and "_.:@+-": nothing to
        -- escape.
        local mid
        if qty == 1 then
          mid = mid1[rf]
          if not mid then
            mid = '","store":"' .. string.sub(rf, 3) .. '","qty":1,"dist":"'
            mid1[rf] = mid
          end
        else
          mid = '","store":"' .. string.sub(rf, 3) .. '","qty":' .. qs .. ',"dist":"'
        end
        local hid = ARGV[a]
        local rec = '{"id":"' .. hid .. '","user":"' .. user .. mid .. dist .. tail
        if made then made[rk] = rec end
        local h = 4 * nc
        holdArgs[h + 1], holdArgs[h + 2], holdArgs[h + 3], holdArgs[h + 4] = hid, rec, rk, hid
        nc = nc + 1
        out[r] = k
      end
    end
  end
end

-- Write k arguments back in slices, well below Lua's limit on unpacked
-- arguments.
local function write(cmd, key, args, k)
  for s = 1, k, chunk do
    redis.call(cmd, key, unpack(args, s, math.min(s + chunk - 1, k)))
  end
end
if nc > 0 then
  local a, na = sized(2 * nf), 2
  a[1], a[2] = 'g', string.format('%d', g)
  for j = 2, nf do
    local f = fields[j]
    local v = stock[f]
    if v ~= was[j] then
      a[na + 1], a[na + 2] = f, string.format('%d', v)
      na = na + 2
    end
  end
  write('HSET', KEYS[2], a, na)
  write('HSET', KEYS[3], counts, 2 * nb)
  -- The batch's ids, as the caller listed them, serve both its expiry
  -- entry and its outbox entry: ids of requests that created nothing are
  -- in the list too, and have no record, so readers pass over them.
  local ids = ARGV[3 + 7 * n]
  local batch = 'x:' .. ARGV[3]
  holdArgs[4 * nc + 1], holdArgs[4 * nc + 2] = batch, ids
  write('HSET', KEYS[4], holdArgs, 4 * nc + 2)
  redis.call('ZADD', KEYS[5], exp, batch)
  -- Most batches create a hold for every request: their count is ARGV[2]
  -- as it came, not a number formatted again.
  local created = nc == n and ARGV[2] or string.format('%d', nc)
  redis.call('XADD', KEYS[6], '*', 'type', 'hold.created', 'at', ts, 'ids', ids, 'n', created)
end
out[n + 1] = exp
return out
