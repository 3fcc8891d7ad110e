-- sig_publish (signal_ingest): publish one poll's signals and dead letters, advance the account's
-- cursor and count the signals in one atomic step, so a crash can neither lose nor duplicate a fill.
-- Nothing can fail after the first write: key types are checked first, values are prepared by
-- the caller, and under maxmemory Redis refuses only a script's first write (a script that has
-- written may finish), so an OOM refusal also leaves nothing written.
-- Cluster: every key carries the hash tag {sig}, so the script touches one slot. The run-wide
-- pb:summary (another slot) is not touched here: KEYS[4] counts every signal ever published, in
-- this same step, and sig_count.lua copies that total into pb:summary "signals" afterwards
-- (max(stored, total): idempotent, so a crash between the two steps is repaired by the next copy).
-- KEYS[1]  cursor hash          pb:{sig}:cursor:<account>
-- KEYS[2]  signal stream        pb:{sig}:stream
-- KEYS[3]  dead-letter stream   pb:{sig}:dead
-- KEYS[4]  published counter    pb:{sig}:published (string; INCRBY S)
-- ARGV[1]  expected cursor gen ("0" when the account has no cursor yet)
-- ARGV[2]  MAXLEN (approximate) of the dead-letter stream
-- ARGV[3]  S = number of signal entries, then S entries; each entry is F (number of fields)
--          followed by F field,value pairs
-- then     D = number of dead-letter entries, then D entries in the same form
-- then     the new cursor's field,value pairs (the hash is replaced; "gen" is set here)
-- Returns  {1, new gen, published total} when written; {0, current gen} when the cursor's gen
--          differs from ARGV[1] (another instance moved it); {-1, message} when a key has the wrong
--          type. In every refusal nothing is written (types are checked before the first write,
--          because a script is not rolled back when a command fails halfway).
local want = {'hash', 'stream', 'stream', 'string'}
for k = 1, 4 do
  local t = redis.call('TYPE', KEYS[k])['ok']
  if t ~= 'none' and t ~= want[k] then
    return {-1, 'WRONGTYPE ' .. KEYS[k] .. ' is a ' .. t .. ', expected a ' .. want[k]}
  end
end
local published = redis.call('GET', KEYS[4])
if published and not string.match(published, '^%d+$') then
  return {-1, 'NOTINT ' .. KEYS[4] .. ' holds ' .. string.sub(published, 1, 40) .. ', expected an integer'}
end
local cur = redis.call('HGET', KEYS[1], 'gen') or '0'
if cur ~= ARGV[1] then
  return {0, cur}
end
local i = 3
local function add_entries(key, maxlen)
  local count = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, count do
    local nfields = tonumber(ARGV[i])
    local args = {}
    for j = i + 1, i + 2 * nfields do
      args[#args + 1] = ARGV[j]
    end
    if maxlen then
      redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', unpack(args))
    else
      redis.call('XADD', key, '*', unpack(args))
    end
    i = i + 1 + 2 * nfields
  end
end
local nsig = tonumber(ARGV[3])
add_entries(KEYS[2], nil)
local total = redis.call('INCRBY', KEYS[4], nsig)
add_entries(KEYS[3], ARGV[2])
local gen = tostring(tonumber(cur) + 1)
redis.call('DEL', KEYS[1])
local pairs_ = {}
for j = i, #ARGV do
  pairs_[#pairs_ + 1] = ARGV[j]
  if #pairs_ == 1000 then
    redis.call('HSET', KEYS[1], unpack(pairs_))
    pairs_ = {}
  end
end
if #pairs_ > 0 then
  redis.call('HSET', KEYS[1], unpack(pairs_))
end
redis.call('HSET', KEYS[1], 'gen', gen)
return {1, gen, total}
