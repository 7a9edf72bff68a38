-- cancel.lua: releases a held hold's units back to its store, the sale and
-- the shopper's allowance. Prefixed with lib.lua. KEYS as in lib.lua.
-- ARGV[1] hold id  ARGV[2] now_ms  ARGV[3] user or ''  ARGV[4] store or ''
-- Returns {outcome, hold record JSON}: ok (also when already cancelled),
-- unknown_hold, forbidden, confirmed, or expired (also when its time ran
-- out before the cancel, in which case this call expired it).
local rec = redis.call('HGET', KEYS[4], ARGV[1])
if not rec then return {'unknown_hold', ''} end
local h = cjson.decode(rec)
if not actor_ok(h, ARGV[3], ARGV[4]) then return {'forbidden', ''} end
if h.state == 'cancelled' then return {'ok', rec} end
if h.state ~= 'held' then return {h.state, rec} end
local now = tonumber(ARGV[2])
if tonumber(h.expires) <= now then
  return {'expired', release(h, 'expired', now)}
end
return {'ok', release(h, 'cancelled', now)}
