-- leave-session (ARGV[5] = '1') or a lost connection ('0'). ARGV: 3 conn, 4 claimed
-- userId, 5 forget, 6 node of the connection, 7 now ms, 8 ttl ms, 9 max absent members.
-- Returns {'OK', user, member_gone, session_deleted, keys} or {code}; a lost connection
-- that was not bound answers {'NOT_IN_SESSION'} too.
local conn, forget = ARGV[3], ARGV[5] == '1'
if forget then
  local _, err = bound_user(conn, ARGV[4])
  if err then return { err } end
end
local now, ttl = tonumber(ARGV[7]), tonumber(ARGV[8])
local user, gone = remove_conn(conn, ARGV[6], forget, ARGV[7], tonumber(ARGV[9]))
if not user then return { 'NOT_IN_SESSION' } end
local mode = redis.call('HGET', META, 'mode') or 'group'
if forget and redis.call('HLEN', CONNS) == 0 then
  delete_session()
  return { 'OK', user, gone, 1, {} }
end
settle(mode, now, ttl)
local keys = {}
if gone == 1 then keys = public_keys() end
return { 'OK', user, gone, 0, keys }
