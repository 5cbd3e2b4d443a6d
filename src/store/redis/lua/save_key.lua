-- save-public-key. ARGV: 3 conn, 4 claimed userId, 5 public key JSON, 6 has_name (1/0),
-- 7 name, 8 now ms. Returns {'OK', keys} or {code}.
local user, err = bound_user(ARGV[3], ARGV[4])
if not user then return { err } end
local m = get_member(user)
if m then
  m.k = ARGV[5]
  if ARGV[6] == '1' then m.n = ARGV[7] end
  put_member(user, m)
end
redis.call('HSET', META, 'last', ARGV[8])
return { 'OK', public_keys() }
