-- lease_withdraw: the scheduler removes a lease that nobody holds (free or expired).
-- KEYS[1]  lease hash  pb:lease:{token}
-- ARGV[1]  now_ms (wall ms)
-- Returns  1 when deleted or absent, 0 when a worker holds it unexpired (left alone).
local w = redis.call('HGET', KEYS[1], 'worker')
if not w then
  return 1
end
local exp = tonumber(redis.call('HGET', KEYS[1], 'expires_ms') or '0') or 0
if w ~= '' and exp >= tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
