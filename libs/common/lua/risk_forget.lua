-- risk_forget (scheduler retention): drop the account-risk entries of tokens whose records were
-- purged, but only zero entries (tombstones): a token with exposure or shares left keeps its entry.
-- Both keys carry the hash tag {acct}: one slot, no per-token key.
-- KEYS[1]  exposure ledger hash  pb:risk:{acct}:exposure  (token -> "fence:exposure_micro:shares_micro")
-- KEYS[2]  unrealized P&L hash   pb:risk:{acct}:upnl      (token -> micro-USD)
-- ARGV[1]  first token id whose records were purged; ARGV[2..n] the others
-- Returns  number of exposure entries deleted
local n = 0
for _, token in ipairs(ARGV) do
  local e = redis.call('HGET', KEYS[1], token)
  local keep = false
  if e then
    local _, exp, sh = string.match(e, '^(%-?%d+):(%-?%d+):(%-?%d+)$')
    keep = not exp or tonumber(exp) ~= 0 or tonumber(sh) ~= 0
    if not keep then
      n = n + redis.call('HDEL', KEYS[1], token)
    end
  end
  if not keep then
    local u = redis.call('HGET', KEYS[2], token)
    if u and tonumber(u) == 0 then
      redis.call('HDEL', KEYS[2], token)
    end
  end
end
return n
