-- book_publish: publish one change of a token's book atomically (md_gateway; SPEC S2, S2.2):
-- the next seq, the hash fields, and, when the top of book changed, one capped stream entry.
-- KEYS[1]  book hash    pb:md:book:{token}
-- KEYS[2]  book stream  pb:md:stream:{token}  (same token, same cluster slot)
-- ARGV[1]  stream MAXLEN (approximate, "~"); "0" = the top of book did not change: no stream entry
-- ARGV[2]  event name for the stream entry (price_change, book, rest, drift, tick_size_change, ...)
-- ARGV[3..] field, value, field, value, ... written to the hash. When ARGV[1] > 0 the first six
--          pairs are, in this order, best_bid, best_ask, bid_size, ask_size, exch_ts_ms, recv_ts_ms;
--          the stream entry is: seq, those six, event.
-- Returns  the new seq (integer): HINCRBY of the hash field "seq", so it only ever increases and
--          outlives any gateway process.
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
if #ARGV > 2 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 3))
end
local maxlen = tonumber(ARGV[1])
if maxlen > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'seq', seq,
    ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12],
    ARGV[13], ARGV[14], 'event', ARGV[2])
end
return seq
