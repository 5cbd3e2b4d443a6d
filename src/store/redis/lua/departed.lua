-- After a member's last connection dropped and a grace period passed: is it still gone?
-- ARGV: 3 userId. Returns {'OK', 1, keys} when it has no connection (keys: the present
-- members'), {'OK', 0, {}} when it came back, or when the session is gone (deleted or
-- expired meanwhile: nobody is left to tell), as the in-memory store answers.
if redis.call('EXISTS', META) == 0 then return { 'OK', 0, {} } end
local m = get_member(ARGV[3])
if m and m.p > 0 then return { 'OK', 0, {} } end
return { 'OK', 1, public_keys() }
