-- create_sale.lua: saves a new sale and its initial stock, atomically.
-- KEYS[1] meta  KEYS[2] stock
-- ARGV[1] start_ms  ARGV[2] end_ms  ARGV[3] per_user_limit  ARGV[4] ttl_ms
-- ARGV[5] sale JSON  ARGV[6] global initial quantity  ARGV[7] n stores
-- ARGV[8..] n pairs of store id, allocated quantity
-- Returns 'ok', or 'exists' when the sale id is taken (nothing changes).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'exists'
end
redis.call('HSET', KEYS[1], 'start', ARGV[1], 'end', ARGV[2], 'limit', ARGV[3],
  'ttl', ARGV[4], 'json', ARGV[5], 'initial', ARGV[6])
redis.call('HSET', KEYS[2], 'g', ARGV[6], 'gh', 0, 'gc', 0)
local n = tonumber(ARGV[7])
for i = 0, n - 1 do
  local store, q = ARGV[8 + 2 * i], ARGV[9 + 2 * i]
  redis.call('HSET', KEYS[1], 'i:' .. store, q)
  redis.call('HSET', KEYS[2], 'r:' .. store, q, 'h:' .. store, 0, 'c:' .. store, 0)
end
return 'ok'
