-- expire.lua: expires the holds of one sale whose time ran out, giving
-- their units back. Prefixed with lib.lua. KEYS as in lib.lua.
-- ARGV[1] now_ms  ARGV[2] at most this many holds
-- Returns the records of the holds it expired.
local now = tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local rec = redis.call('HGET', KEYS[4], id)
  if rec then
    local h = cjson.decode(rec)
    if h.state == 'held' then
      out[#out + 1] = release(h, 'expired', now)
    end
  end
  redis.call('ZREM', KEYS[5], id)
end
return out
