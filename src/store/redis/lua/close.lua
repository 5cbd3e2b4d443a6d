-- close-session by the creator. ARGV: 3 conn. Returns {'OK', userIds} or {code}.
local user, err = bound_user(ARGV[3], '')
if not user then return { err } end
if redis.call('HGET', META, 'creator') ~= user then return { 'FORBIDDEN_NOT_CREATOR_CLOSE' } end
local users = redis.call('HKEYS', MEMBERS)
delete_session()
return { 'OK', users }
