-- token_purge (scheduler retention): delete every record of one finished token that aged out, only
-- if, checked atomically here, it is still finished, holds no lease, no shares and no open order,
-- and nothing happened to it since the cutoff. All keys share the token's hash tag (one slot).
-- The fence counter pb:fence:{token} is never passed in: fences must never go back.
-- KEYS[1]  token hash     pb:tok:{token}
-- KEYS[2]  lease hash     pb:lease:{token}
-- KEYS[3]  orders hash    pb:orders:{token}
-- KEYS[4]  fills hash     pb:fills:{token}
-- KEYS[5]  user stream    pb:user:{token}
-- KEYS[6]  md book hash   pb:md:book:{token}
-- KEYS[7]  md stream      pb:md:stream:{token}
-- ARGV[1]  cutoff (market ms): the token's last activity must be below it
-- ARGV[2]  comma-separated states that may be purged ("closed,cooldown,failed,resolved")
-- ARGV[3]  comma-separated activity fields of the token hash (updated_ms,last_fill_ms,...)
-- Returns  {1, keys deleted} when purged (UNLINK); {0, reason} when kept, reason one of
--          LEASE, STATE, SHARES, RECENT, BAD_FIELD, OPEN_ORDERS, BAD_ORDER, ORPHAN_LEDGER.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {0, 'LEASE'}
end
local cutoff = tonumber(ARGV[1])
local tok_exists = redis.call('EXISTS', KEYS[1]) == 1
if tok_exists then
  local state = redis.call('HGET', KEYS[1], 'state') or ''
  if not string.find(',' .. ARGV[2] .. ',', ',' .. state .. ',', 1, true) or state == '' then
    return {0, 'STATE'}
  end
  for _, f in ipairs({'position', 'redeem_pending'}) do
    local v = redis.call('HGET', KEYS[1], f)
    if v and v ~= '' and tonumber(v) ~= 0 then
      return {0, 'SHARES'}
    end
  end
  for f in string.gmatch(ARGV[3], '[^,]+') do
    local v = redis.call('HGET', KEYS[1], f)
    if v and v ~= '' then
      local n = tonumber(v)
      if not n then
        return {0, 'BAD_FIELD'}
      end
      if n >= cutoff then
        return {0, 'RECENT'}
      end
    end
  end
elseif redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[4]) == 1 then
  return {0, 'ORPHAN_LEDGER'}  -- orders or fills without a token hash: keep them, someone should look
end
local orders = redis.call('HVALS', KEYS[3])
for _, text in ipairs(orders) do
  local ok, rec = pcall(cjson.decode, text)
  if not ok or type(rec) ~= 'table' then
    return {0, 'BAD_ORDER'}
  end
  if rec['status'] == 'PENDING' or rec['status'] == 'LIVE' then
    return {0, 'OPEN_ORDERS'}
  end
end
local n = 0
for k = 1, 7 do
  n = n + redis.call('UNLINK', KEYS[k])
end
return {1, n}
