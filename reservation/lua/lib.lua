-- lib.lua: helpers shared by confirm.lua, cancel.lua and expire.lua. The Go
-- side prepends this file to each of them; it touches keys only through
-- the KEYS of the script it is part of:
--   KEYS[1] meta  KEYS[2] stock  KEYS[3] buyers  KEYS[4] holds
--   KEYS[5] expiry  KEYS[6] outbox

-- emit appends an event for hold h to the sale's outbox stream. The event
-- id (hold id and type) is stable, so consumers can drop duplicates.
local function emit(h, rec, now)
  local typ = 'hold.' .. h.state
  redis.call('XADD', KEYS[6], '*', 'id', h.id .. ':' .. h.state, 'type', typ,
    'at', tostring(now), 'hold', rec)
end

-- save writes hold h back and emits its event; returns the record.
local function save(h, now)
  h.updated = tostring(now)
  local rec = cjson.encode(h)
  redis.call('HSET', KEYS[4], h.id, rec)
  emit(h, rec, now)
  return rec
end

-- release ends a held hold as 'cancelled' or 'expired' and gives its units
-- back to the store, the sale and the shopper's allowance. Only called on
-- a hold in state 'held', so each hold releases at most once.
local function release(h, state, now)
  local q = tonumber(h.qty)
  redis.call('HINCRBY', KEYS[2], 'g', q)
  redis.call('HINCRBY', KEYS[2], 'r:' .. h.store, q)
  if redis.call('HINCRBY', KEYS[3], h.user, -q) <= 0 then
    redis.call('HDEL', KEYS[3], h.user)
  end
  redis.call('ZREM', KEYS[5], h.id)
  h.state = state
  return save(h, now)
end

-- actor_ok checks that the caller named in ARGV (user, store; '' = any)
-- may act on hold h.
local function actor_ok(h, user, store)
  return (user == '' or h.user == user) and (store == '' or h.store == store)
end
