-- fenced_hset: write fields only if the caller still holds the token's lease with the current fence.
-- This is the checkpoint before every state write and every order a worker makes (SPEC S2).
-- KEYS[1]  lease hash   pb:lease:{token}
-- KEYS[2]  target hash  (pb:tok:{token} or pb:orders:{token}: same token, same cluster slot)
-- ARGV[1]  worker id
-- ARGV[2]  fence held by the caller
-- ARGV[3]  now_ms (wall ms)
-- ARGV[4..] field, value, field, value, ...
-- Returns  1 when written; 0 when the lease is lost, fenced out or expired (nothing written).
local w = redis.call('HGET', KEYS[1], 'worker')
if not w or w ~= ARGV[1] or redis.call('HGET', KEYS[1], 'fence') ~= ARGV[2] then
  return 0
end
if tonumber(redis.call('HGET', KEYS[1], 'expires_ms') or '0') < tonumber(ARGV[3]) then
  return 0
end
if #ARGV > 3 then
  redis.call('HSET', KEYS[2], unpack(ARGV, 4))
end
return 1
