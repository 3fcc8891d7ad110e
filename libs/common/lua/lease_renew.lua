-- lease_renew: extend a lease, only for its holder with the current fence.
-- A lease that expired while nobody took it over (same worker, same fence) is renewed too: its holder
-- was only waiting (e.g. on Redis); a takeover would have changed the worker and the fence.
-- KEYS[1]  lease hash  pb:lease:{token}
-- ARGV[1]  worker id
-- ARGV[2]  fence held by the caller
-- ARGV[3]  now_ms (wall ms)
-- ARGV[4]  ttl_ms
-- Returns  {1, mode, new_expires_ms, previous_expires_ms} on success; {0, "LOST"} (other holder,
--          newer fence, released, or no lease).
local w = redis.call('HGET', KEYS[1], 'worker')
local f = redis.call('HGET', KEYS[1], 'fence')
if not w or w ~= ARGV[1] or f ~= ARGV[2] then
  return {0, 'LOST'}
end
local before = tonumber(redis.call('HGET', KEYS[1], 'expires_ms') or '0') or 0
local exp = tonumber(ARGV[3]) + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'expires_ms', tostring(exp))
return {1, redis.call('HGET', KEYS[1], 'mode') or 'maker', exp, before}
