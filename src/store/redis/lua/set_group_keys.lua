-- set-session-key: the creator replaces the wrapped group keys. ARGV: 3 conn, 4 now ms,
-- then userId, key JSON pairs (before common.lua's last three). Returns {'OK'} or {code}.
local user, err = bound_user(ARGV[3], '')
if not user then return { err } end
if redis.call('HGET', META, 'creator') ~= user then return { 'FORBIDDEN_NOT_CREATOR_KEY' } end
redis.call('DEL', GKEYS)
for i = 5, #ARGV - 3, 2 do redis.call('HSET', GKEYS, ARGV[i], ARGV[i + 1]) end
redis.call('HSET', META, 'last', ARGV[4])
return { 'OK' }
