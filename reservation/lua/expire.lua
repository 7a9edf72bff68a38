-- expire.lua: expires the holds of one sale whose time ran out, giving
-- their units back. Prefixed with lib.lua. KEYS as in lib.lua.
-- ARGV[1] now_ms  ARGV[2] about this many holds at most: due expiry entries
-- are taken whole, so one call may go past it by the holds of one entry
-- Returns the records of the holds it expired.
--
-- An expiry entry is a hold id, or "x:<hold id>" for the holds one reserve
-- batch created (the field of that name in the holds hash lists their
-- ids). Holds no longer held (confirmed, cancelled) are passed over.
local now = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, max)
local out = {}
local function expire(id)
  local rec = redis.call('HGET', KEYS[4], id)
  if rec then
    local h = cjson.decode(rec)
    if h.state == 'held' then
      out[#out + 1] = release(h, 'expired', now)
    end
  end
end
for _, entry in ipairs(due) do
  if #out >= max then break end
  if string.sub(entry, 1, 2) == 'x:' then
    local list = redis.call('HGET', KEYS[4], entry)
    if list then
      for id in string.gmatch(list, '%S+') do expire(id) end
      redis.call('HDEL', KEYS[4], entry)
    end
  else
    expire(entry)
  end
  redis.call('ZREM', KEYS[5], entry)
end
return out
