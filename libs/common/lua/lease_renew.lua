-- lease_renew: extend a lease, only for its holder with the current fence and before it expired.
-- KEYS[1]  lease hash  pb:lease:{token}
-- ARGV[1]  worker id
-- ARGV[2]  fence held by the caller
-- ARGV[3]  now_ms (wall ms)
-- ARGV[4]  ttl_ms
-- Returns  {1, mode, new_expires_ms} on success; {0, "LOST"} (other holder, newer fence or no lease)
--          or {0, "EXPIRED"}.
local w = redis.call('HGET', KEYS[1], 'worker')
local f = redis.call('HGET', KEYS[1], 'fence')
if not w or w ~= ARGV[1] or f ~= ARGV[2] then
  return {0, 'LOST'}
end
local now = tonumber(ARGV[3])
if tonumber(redis.call('HGET', KEYS[1], 'expires_ms') or '0') < now then
  return {0, 'EXPIRED'}
end
local exp = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'expires_ms', tostring(exp))
return {1, redis.call('HGET', KEYS[1], 'mode') or 'maker', exp}
