-- sig_count (signal_ingest): copy the total of signals ever published (pb:{sig}:published, written
-- by sig_publish.lua in the same atomic step as the signals) into the run-wide counters.
-- Idempotent and monotonic: the field becomes max(stored, total), so running it twice, late, or with
-- a stale total (another instance's) never counts a signal twice nor lowers the count; after a crash
-- between sig_publish and this script, the next run of it (the next commit, or the store's start)
-- brings the count up to date. Touches one key (one cluster slot).
-- KEYS[1]  run-wide counters  pb:summary
-- ARGV[1]  counter field ("signals")
-- ARGV[2]  published total (integer >= 0)
-- Returns  the field's value after the call (integer).
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') or 0
local total = tonumber(ARGV[2])
if total > cur then
  redis.call('HSET', KEYS[1], ARGV[1], total)
  return total
end
return cur
