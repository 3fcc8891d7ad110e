-- lease_acquire: claim an offered token; free, expired or own leases only. Bumps the fence.
-- KEYS[1]  lease hash      pb:lease:{token}
-- KEYS[2]  fence counter   pb:fence:{token}   (INCR only; never reset, so fences never go back)
-- ARGV[1]  worker id
-- ARGV[2]  now_ms (wall ms)
-- ARGV[3]  ttl_ms
-- Returns  {1, fence, mode, prev_worker, prev_expires_ms} on success,
--          {0, "NOT_OFFERED"} when there is no lease, {0, "HELD"} when another worker holds it.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 'NOT_OFFERED'}
end
local now = tonumber(ARGV[2])
local w = redis.call('HGET', KEYS[1], 'worker') or ''
local exp = tonumber(redis.call('HGET', KEYS[1], 'expires_ms') or '0') or 0
if w ~= '' and w ~= ARGV[1] and exp > now then
  return {0, 'HELD'}
end
local f = redis.call('INCR', KEYS[2])
local mode = redis.call('HGET', KEYS[1], 'mode') or 'maker'
redis.call('HSET', KEYS[1], 'worker', ARGV[1], 'fence', tostring(f),
           'expires_ms', tostring(now + tonumber(ARGV[3])), 'granted_ms', ARGV[2],
           'prev_worker', w, 'prev_expires_ms', tostring(exp))
return {1, f, mode, w, exp}
