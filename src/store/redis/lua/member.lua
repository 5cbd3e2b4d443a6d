-- The connection's user and name (typing, file-downloaded), or with ARGV[5] = '1' also
-- the present members' keys (get-public-keys). ARGV: 3 conn, 4 claimed userId ('' = none).
-- Returns {'OK', user, name, keys} or {code}.
local user, err = bound_user(ARGV[3], ARGV[4])
if not user then return { err } end
local m = get_member(user)
local name = ''
if m then name = m.n end
local keys = {}
if ARGV[5] == '1' then keys = public_keys() end
return { 'OK', user, name, keys }
