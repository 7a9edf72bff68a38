-- expire.lua: expires the holds of one sale whose time ran out, giving
-- their units back. Prefixed with lib.lua. KEYS as in lib.lua.
-- ARGV[1] now_ms  ARGV[2] about this many holds to look at: due expiry
-- entries are taken whole, so one call may go past it by one entry's holds
-- Returns {more, the records of the holds it expired...}: more is 1 when
-- due entries may remain (the call stopped at its limit), else 0.
--
-- An expiry entry is a hold id, or "x:<hold id>" for the holds one reserve
-- batch created (the field of that name in the holds hash lists their
-- ids). Confirm and cancel do not remove a batch's entry, so holds no
-- longer held are passed over here; they count toward the limit, and more
-- tells the caller to go on, however many of them there are.
local now = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, max)
local out = {0}
local seen = 0
local function expire(id)
  seen = seen + 1
  local rec = redis.call('HGET', KEYS[4], id)
  if rec then
    local h = cjson.decode(rec)
    if h.state == 'held' then
      out[#out + 1] = release(h, 'expired', now)
    end
  end
end
local more = #due == max
for _, entry in ipairs(due) do
  if seen >= max then
    more = true
    break
  end
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
out[1] = more and 1 or 0
return out
