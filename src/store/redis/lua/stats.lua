-- Counts for /health and /metrics. ARGV: 3 now ms, 4 prune (1/0): the reaper drops
-- expired sessions from the index (Redis has expired their keys).
-- Returns {'OK', group, private, password, occupied, pruned, history bytes}.
local now = tonumber(ARGV[3])
local out = { 'OK' }
local occupied, pruned = 0, 0
for _, mode in ipairs(MODES) do
  local idx = index_key(mode)
  if ARGV[4] == '1' then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', idx, '-inf', now)) do account(id, 0) end
    pruned = pruned + redis.call('ZREMRANGEBYSCORE', idx, '-inf', now)
  end
  out[#out + 1] = redis.call('ZCOUNT', idx, '(' .. now, '+inf')
  occupied = occupied + redis.call('ZCOUNT', idx, '+inf', '+inf')
end
out[#out + 1] = occupied
out[#out + 1] = pruned
out[#out + 1] = math.max(tonumber(redis.call('GET', HB_TOTAL) or '0'), 0)
return out
