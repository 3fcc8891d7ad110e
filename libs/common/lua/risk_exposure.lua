-- risk_exposure: one token's entry in the account-wide exposure ledger, written atomically with the
-- account-wide caps checked against every other token's entry (SPEC S3.4 "Risk"). Both keys carry
-- the hash tag {acct}: the script touches one cluster slot and no per-token key.
-- Entries are "fence:exposure_micro:shares_micro" (integers; exposure in micro-USD, shares in
-- micro-shares). A write with a fence lower than the stored one is refused, so a worker whose lease
-- passed to a newer holder can never overwrite the newer holder's entry. Zero entries are kept (as
-- tombstones carrying the fence) for the same reason.
-- KEYS[1]  exposure ledger hash  pb:risk:{acct}:exposure  (token -> entry)
-- KEYS[2]  unrealized P&L hash   pb:risk:{acct}:upnl      (token -> micro-USD)
-- ARGV[1]  token id
-- ARGV[2]  fence of the caller's lease
-- ARGV[3]  base exposure of the token (micro-USD): position x avg entry + open BUY remainder x price
-- ARGV[4]  base shares of the token (micro-shares): position + open BUY remainder
-- ARGV[5]  need: exposure of the new entry BUY (micro-USD; 0 for a plain sync)
-- ARGV[6]  need: shares of the new entry BUY (micro-shares; 0 for a plain sync)
-- ARGV[7]  exposure cap (micro-USD), or "" for a sync (no cap check: it records the truth)
-- ARGV[8]  position cap per token (micro-shares), or "" for no check
-- ARGV[9]  unrealized P&L of the token (micro-USD), "" = leave as is; "0" deletes the field
-- Returns  {1, account exposure after the write, sum of unrealized P&L} when written;
--          {0, "STALE_FENCE", stored fence, 0};
--          {0, "EXPOSURE_CAP", account exposure before the need (others + base), cap};
--          {0, "POSITION_CAP", base shares, position cap}. Nothing is written on a refusal.
local token, fence = ARGV[1], tonumber(ARGV[2])
local base, base_sh = tonumber(ARGV[3]), tonumber(ARGV[4])
local need, need_sh = tonumber(ARGV[5]), tonumber(ARGV[6])
local others = 0
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local f, e = string.match(flat[i + 1], '^(%-?%d+):(%-?%d+):')
  if flat[i] == token then
    if f and tonumber(f) > fence then
      return {0, 'STALE_FENCE', tonumber(f), 0}
    end
  elseif e then
    others = others + tonumber(e)
  end
end
if ARGV[7] ~= '' and others + base + need > tonumber(ARGV[7]) then
  return {0, 'EXPOSURE_CAP', others + base, tonumber(ARGV[7])}
end
if ARGV[8] ~= '' and base_sh + need_sh > tonumber(ARGV[8]) then
  return {0, 'POSITION_CAP', base_sh, tonumber(ARGV[8])}
end
redis.call('HSET', KEYS[1], token, string.format('%d:%d:%d', fence, base + need, base_sh + need_sh))
if ARGV[9] == '0' then
  redis.call('HDEL', KEYS[2], token)
elseif ARGV[9] ~= '' then
  redis.call('HSET', KEYS[2], token, ARGV[9])
end
local upnl = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
  upnl = upnl + (tonumber(v) or 0)
end
return {1, others + base + need, upnl}
