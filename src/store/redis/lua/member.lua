-- The connection's user and name (typing, file-downloaded); with ARGV[5] = '1' also the
-- present members' keys (get-public-keys), with '2' also the history (a resync).
-- ARGV: 3 conn, 4 claimed userId ('' = none). Returns {'OK', user, name, keys, history}
-- or {code}.
local user, err = bound_user(ARGV[3], ARGV[4])
if not user then return { err } end
local m = get_member(user)
local name = ''
if m then name = m.n end
local keys = {}
local history = {}
if ARGV[5] ~= '0' then keys = public_keys() end
if ARGV[5] == '2' then history = redis.call('LRANGE', HIST, 0, -1) end
return { 'OK', user, name, keys, history }
