-- sig_publish (signal_ingest): publish one poll's signals and dead letters and advance the
-- account's cursor in one atomic step, so a crash can neither lose nor duplicate a fill.
-- Nothing can fail after the first write: key types are checked first, values are prepared by
-- the caller, and under maxmemory Redis refuses only a script's first write (a script that has
-- written may finish), so an OOM refusal also leaves nothing written.
-- KEYS[1]  cursor hash          pb:sig:cursor:<account>
-- KEYS[2]  signal stream        pb:sig:stream
-- KEYS[3]  dead-letter stream   pb:sig:dead
-- KEYS[4]  run-wide counters    pb:summary (HINCRBY ARGV[3] by S, so the count survives crashes)
-- ARGV[1]  expected cursor gen ("0" when the account has no cursor yet)
-- ARGV[2]  MAXLEN (approximate) of the dead-letter stream
-- ARGV[3]  counter field in KEYS[4] ("signals")
-- ARGV[4]  S = number of signal entries, then S entries; each entry is F (number of fields)
--          followed by F field,value pairs
-- then     D = number of dead-letter entries, then D entries in the same form
-- then     the new cursor's field,value pairs (the hash is replaced; "gen" is set here)
-- Returns  {1, new gen} when written; {0, current gen} when the cursor's gen differs from
--          ARGV[1] (another instance moved it); {-1, message} when a key has the wrong type.
--          In every refusal nothing is written (types are checked before the first write,
--          because a script is not rolled back when a command fails halfway).
-- Cluster: KEYS are in different slots, so this needs one Redis (or a shared hash tag).
local want = {'hash', 'stream', 'stream', 'hash'}
for k = 1, 4 do
  local t = redis.call('TYPE', KEYS[k])['ok']
  if t ~= 'none' and t ~= want[k] then
    return {-1, 'WRONGTYPE ' .. KEYS[k] .. ' is a ' .. t .. ', expected a ' .. want[k]}
  end
end
local cur = redis.call('HGET', KEYS[1], 'gen') or '0'
if cur ~= ARGV[1] then
  return {0, cur}
end
local i = 4
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
local nsig = tonumber(ARGV[4])
add_entries(KEYS[2], nil)
if nsig > 0 then
  redis.call('HINCRBY', KEYS[4], ARGV[3], nsig)
end
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
return {1, gen}
