-- After a member's last connection dropped and a grace period passed: is it still gone?
-- ARGV: 3 userId. Returns {'OK', 1, keys} when it has no connection (keys: the present
-- members'), {'OK', 0, {}} when it came back.
local m = get_member(ARGV[3])
if m and m.p > 0 then return { 'OK', 0, {} } end
return { 'OK', 1, public_keys() }
