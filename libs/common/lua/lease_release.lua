-- lease_release: the holder gives a lease up: "done" deletes it, "reoffer" leaves it unheld.
-- KEYS[1]  lease hash  pb:lease:{token}
-- ARGV[1]  worker id
-- ARGV[2]  fence held by the caller
-- ARGV[3]  "done" or "reoffer"
-- Returns  1 when released, 0 when the caller did not hold it with that fence.
local w = redis.call('HGET', KEYS[1], 'worker')
if not w or w ~= ARGV[1] or redis.call('HGET', KEYS[1], 'fence') ~= ARGV[2] then
  return 0
end
if ARGV[3] == 'done' then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'worker', '', 'expires_ms', '0',
             'prev_worker', ARGV[1], 'prev_expires_ms', redis.call('HGET', KEYS[1], 'expires_ms'))
end
return 1
