-- reset-link by the creator: a new join credential. ARGV: 3 conn, 4 its hash, 5 the hash
-- of its password part, 6 1/0 whether it has a password part, 7 now ms.
-- Returns {'OK'} or {code}.
local user, err = bound_user(ARGV[3], '')
if not user then return { err } end
if redis.call('HGET', META, 'creator') ~= user then return { 'FORBIDDEN_NOT_CREATOR_RESET' } end
if redis.call('HGET', META, 'mode') == 'password' and ARGV[6] ~= '1' then
  return { 'PASSWORD_KEY_EXPECTED' }
end
redis.call('HSET', META, 'kh', ARGV[4], 'ph', ARGV[5], 'last', ARGV[7])
return { 'OK' }
