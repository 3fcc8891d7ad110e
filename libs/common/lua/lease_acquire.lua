-- lease_acquire: claim an offered token; free, own, or held by a holder shown to be gone. Bumps the fence.
-- KEYS[1]  lease hash      pb:lease:{token}
-- KEYS[2]  fence counter   pb:fence:{token}   (INCR only; never reset, so fences never go back)
-- ARGV[1]  worker id
-- ARGV[2]  now_ms (wall ms)
-- ARGV[3]  ttl_ms
-- ARGV[4]  (optional) the holder the caller saw ("" none); a different holder now -> {0, "CHANGED"}
-- ARGV[5]  (optional) that holder's last heartbeat, wall ms from pb:workers (0 = none)
-- ARGV[6]  (optional) wall ms since which the caller has seen Redis answering (its last outage's end)
-- ARGV[7]  (optional) grace_ms (the lease TTL; 0 = plain expiry)
-- Takeover rule (libs.common.leases.holder_deadline): another worker's lease counts as held until
--   max(expires_ms, up_since + grace, min(beat, expires_ms) + grace): a holder that was only waiting on
--   Redis gets one grace period to renew after Redis answers again, and one after its lease expired
--   while its heartbeat is that fresh; a holder whose heartbeat is stale is taken over at expiry.
-- Returns  {1, fence, mode, prev_worker, prev_expires_ms} on success; {0, "NOT_OFFERED"} when there is
--          no lease, {0, "HELD"} before expiry, {0, "GRACE"} after expiry within the grace,
--          {0, "CHANGED"} when the holder is not the one the caller saw (read again, retry).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 'NOT_OFFERED'}
end
local now = tonumber(ARGV[2])
local w = redis.call('HGET', KEYS[1], 'worker') or ''
local exp = tonumber(redis.call('HGET', KEYS[1], 'expires_ms') or '0') or 0
if w ~= '' and w ~= ARGV[1] then
  if exp > now then
    return {0, 'HELD'}
  end
  local grace = tonumber(ARGV[7] or '0') or 0
  if grace > 0 then
    if w ~= ARGV[4] then
      return {0, 'CHANGED'}
    end
    local beat = tonumber(ARGV[5]) or 0
    local deadline = math.max(exp, (tonumber(ARGV[6]) or 0) + grace, math.min(beat, exp) + grace)
    if deadline > now then
      return {0, 'GRACE'}
    end
  end
end
local f = redis.call('INCR', KEYS[2])
local mode = redis.call('HGET', KEYS[1], 'mode') or 'maker'
redis.call('HSET', KEYS[1], 'worker', ARGV[1], 'fence', tostring(f),
           'expires_ms', tostring(now + tonumber(ARGV[3])), 'granted_ms', ARGV[2],
           'prev_worker', w, 'prev_expires_ms', tostring(exp))
return {1, f, mode, w, exp}
