-- confirm.lua: turns a held hold into a confirmed one (picked up or paid);
-- it keeps its stock and can no longer expire. Prefixed with lib.lua.
-- KEYS as in lib.lua.
-- ARGV[1] hold id  ARGV[2] now_ms  ARGV[3] user or ''  ARGV[4] store or ''
-- Returns {outcome, hold record JSON}: ok (also when already confirmed),
-- unknown_hold, forbidden, cancelled, or expired (also when its time ran
-- out and this call expired it).
local rec = redis.call('HGET', KEYS[4], ARGV[1])
if not rec then return {'unknown_hold', ''} end
local h = cjson.decode(rec)
if not actor_ok(h, ARGV[3], ARGV[4]) then return {'forbidden', ''} end
if h.state == 'confirmed' then return {'ok', rec} end
if h.state ~= 'held' then return {h.state, rec} end
local now = tonumber(ARGV[2])
if tonumber(h.expires) <= now then
  return {'expired', release(h, 'expired', now)}
end
local q = tonumber(h.qty)
redis.call('HINCRBY', KEYS[2], 'gc', q)
redis.call('HINCRBY', KEYS[2], 'c:' .. h.store, q)
redis.call('ZREM', KEYS[5], h.id)
h.state = 'confirmed'
return {'ok', save(h, now)}
