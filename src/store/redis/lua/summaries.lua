-- GET /sessions, first step (on the {g} slot): up to ARGV[4] sessions per mode from the
-- index. ARGV: 3 now ms, 4 limit. Returns 'OK' then flat id, mode pairs; summary.lua
-- reads each one.
local now, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = { 'OK' }
for _, mode in ipairs(MODES) do
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', index_key(mode), '(' .. now, '+inf', 'LIMIT', 0, limit)) do
    out[#out + 1] = id
    out[#out + 1] = mode
  end
end
return out
