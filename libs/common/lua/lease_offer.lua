-- lease_offer: offer a token to the workers, or change the mode of its existing lease.
-- KEYS[1]  lease hash  pb:lease:{token}
-- ARGV[1]  mode: "maker" or "exit_only"
-- ARGV[2]  now_ms (wall ms)
-- Returns  1 when a new (unheld) lease was created, 0 when a lease existed (its mode is set to ARGV[1]).
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'mode', ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], 'worker', '', 'fence', '0', 'mode', ARGV[1],
           'expires_ms', '0', 'offered_ms', ARGV[2])
return 1
