-- GET /sessions, one session. Returns {'OK', state, present members, keys, messages,
-- history bytes, last activity ms} or {'SESSION_NOT_FOUND'} (it expired meanwhile).
local state, last, hb = unpack(redis.call('HMGET', META, 'state', 'last', 'hb'))
if not state then return { 'SESSION_NOT_FOUND' } end
local present, keys = 0, 0
for _, j in ipairs(redis.call('HVALS', MEMBERS)) do
  local m = cjson.decode(j)
  if m.p > 0 then
    present = present + 1
    if m.k ~= '' then keys = keys + 1 end
  end
end
return { 'OK', state, present, keys, redis.call('LLEN', HIST), hb or '0', last or '0' }
