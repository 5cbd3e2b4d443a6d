-- GET /sessions: up to ARGV[4] sessions. ARGV: 3 now ms, 4 limit.
-- Returns 'OK' then flat rows: id, mode, state, present members, keys, messages, bytes, last.
local now, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = { 'OK' }
for _, mode in ipairs(MODES) do
  local idx = index_key(mode)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', idx, '(' .. now, '+inf', 'LIMIT', 0, limit)) do
    local base = P .. 's:' .. id
    local state, last, hb = unpack(redis.call('HMGET', base, 'state', 'last', 'hb'))
    if state then
      local present, keys = 0, 0
      for _, j in ipairs(redis.call('HVALS', base .. ':m')) do
        local m = cjson.decode(j)
        if m.p > 0 then
          present = present + 1
          if m.k ~= '' then keys = keys + 1 end
        end
      end
      local row = { id, mode, state, present, keys, redis.call('LLEN', base .. ':h'), hb or '0',
        last or '0' }
      for _, v in ipairs(row) do out[#out + 1] = v end
    end
  end
end
return out
