-- A session script's ledger on a cluster (see common.lua's LEDGER), applied on the {g}
-- slot, in order. ARGV 3 up to common.lua's last three: the entries.
local i, last = 3, #ARGV - 3
while i <= last do
  local op = ARGV[i]
  if op == 'ix' then
    index_put(ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'ux' then
    index_drop(ARGV[i + 1])
    i = i + 2
  elseif op == 'hb' then
    account(ARGV[i + 1], tonumber(ARGV[i + 2]))
    i = i + 3
  elseif op == 'nd' then
    redis.call('SREM', node_key(ARGV[i + 1]), ARGV[i + 2])
    i = i + 3
  else
    return { 'BAD_LEDGER' }
  end
end
return { 'OK' }
