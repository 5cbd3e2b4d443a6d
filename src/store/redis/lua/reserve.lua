-- POST /api/reserve-session. ARGV: 3 key hash, 4 password-part hash, 5 mode, 6 now ms,
-- 7 ttl ms, 8 max sessions, 9 unused-session ttl ms. Returns 'OK', 'EXISTS' or 'LIMIT_REACHED'.
local now, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
if redis.call('EXISTS', META) == 1 then return 'EXISTS' end
if session_count(now) >= tonumber(ARGV[8]) then return 'LIMIT_REACHED' end
-- A tombstone or stale data of an expired session must not leak into the new one.
delete_session()
redis.call('HSET', META, 'kh', ARGV[3], 'ph', ARGV[4], 'mode', ARGV[5], 'state', 'r',
  'creator', '', 'last', now, 'ut', ARGV[9])
settle(ARGV[5], now, ttl)
return 'OK'
