-- remove-member by the creator: the target leaves for good (its connections unbound,
-- its key and group key dropped, its userId refused at a later join). ARGV: 3 conn,
-- 4 target userId, 5 now ms, 6 max removed userIds kept (the oldest are forgotten).
-- Returns {'OK', name, keys} or {code}.
local user, err = bound_user(ARGV[3], '')
if not user then return { err } end
if redis.call('HGET', META, 'creator') ~= user then return { 'FORBIDDEN_NOT_CREATOR_REMOVE' } end
local target = ARGV[4]
if target == user then return { 'REMOVE_SELF' } end
local m = get_member(target)
if not m then return { 'NO_SUCH_MEMBER' } end
-- Its connections stay listed under their nodes: a lease sweep of an unbound one is a no-op.
local conns = redis.call('HGETALL', CONNS)
for i = 1, #conns, 2 do
  if conns[i + 1] == target then redis.call('HDEL', CONNS, conns[i]) end
end
forget_member(target)
redis.call('HDEL', GKEYS, target)
redis.call('ZADD', REMOVED, ARGV[5], target)
if redis.call('ZCARD', REMOVED) > tonumber(ARGV[6]) then
  redis.call('ZREMRANGEBYRANK', REMOVED, 0, 0)
end
redis.call('HSET', META, 'last', ARGV[5])
return { 'OK', m.n, public_keys() }
