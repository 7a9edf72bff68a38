-- create_sale.lua: saves a new sale and its initial stock, atomically.
-- KEYS[1] meta  KEYS[2] stock  KEYS[3] buyers
-- ARGV[1] start_ms  ARGV[2] end_ms  ARGV[3] per_user_limit  ARGV[4] ttl_ms
-- ARGV[5] sale JSON  ARGV[6] global initial quantity  ARGV[7] n stores
-- ARGV[8..] n pairs of store id, allocated quantity
-- Returns 'ok', or 'exists' when the sale id is taken (nothing changes).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'exists'
end
redis.call('HSET', KEYS[1], 'start', ARGV[1], 'end', ARGV[2], 'limit', ARGV[3],
  'ttl', ARGV[4], 'json', ARGV[5], 'initial', ARGV[6])
-- Held units are not counted: they are the initial quantity less what is
-- left and what is confirmed, so a reservation writes one counter of the
-- sale and one of its store, not two of each.
-- Each of the two hashes reserve.lua reads and writes a few hundred fields
-- of per batch also gets a field describing it, longer than Redis's
-- hash-max-listpack-value (64 by default). Redis then keeps the hash as a
-- hash table from the start instead of a listpack, which it would scan
-- field by field for every lookup (most of the cost of a batch's counter
-- reads and writes). Its name is not a valid store or shopper id.
redis.call('HSET', KEYS[2], 'g', ARGV[6], 'gc', 0, '(about)',
  'g: units left, gc: confirmed, r:<store> and c:<store> the same per store; held = initial - left - confirmed')
redis.call('HSET', KEYS[3], '(about)', 'shopper id: units the shopper holds or has confirmed in this sale')
local n = tonumber(ARGV[7])
for i = 0, n - 1 do
  local store, q = ARGV[8 + 2 * i], ARGV[9 + 2 * i]
  redis.call('HSET', KEYS[1], 'i:' .. store, q)
  redis.call('HSET', KEYS[2], 'r:' .. store, q, 'c:' .. store, 0)
end
return 'ok'
