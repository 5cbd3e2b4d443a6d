-- POST /api/session-status: whether a join with this credential would be let in,
-- without joining (the rules of join.lua). ARGV: 3 hash of the credential ('' = none),
-- 4 hash of a joiner's password ('' = none).
-- Returns {'OK', mode, checked (1/0)} or {code}.
if redis.call('EXISTS', META) == 0 then
  if redis.call('EXISTS', TOMB) == 1 then return { 'SESSION_EXPIRED' } end
  return { 'SESSION_NOT_FOUND' }
end
local kh, ph, mode, state = unpack(redis.call('HMGET', META, 'kh', 'ph', 'mode', 'state'))
local given_kh, given_ph = ARGV[3], ARGV[4]
if given_kh == '' then return { 'OK', mode, '0' } end
if state == 'r' then return { 'SESSION_NOT_ACTIVE' } end
if mode == 'password' then
  if not ((given_ph ~= '' and given_ph == ph) or given_kh == kh) then
    return { 'INVALID_PASSWORD' }
  end
elseif given_kh ~= kh then
  return { 'INVALID_KEY' }
end
return { 'OK', mode, '1' }
