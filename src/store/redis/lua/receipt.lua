-- message-delivered: which of the ids name a message of the sender that the connection's
-- user received, the rule of `History::received` / `delivered_to` (store/history.rs): a
-- copy stored under (id, sender) addressed to that user, to 'all', or to nobody in
-- particular (''), from a sender other than that user. One HEXISTS of the dedup index
-- (common.lua, ":d") per candidate copy. ARGV: 3 conn, 4 sender userId, then the ids
-- (before common.lua's last three). Returns {'OK', user, received ids} or {code}.
local user, err = bound_user(ARGV[3], '')
if not user then return { err } end
local sender = ARGV[4]
local received = {}
if sender ~= user then
  for i = 5, #ARGV - 3 do
    local head = 't\n' .. ARGV[i] .. '\n' .. sender .. '\n'
    if redis.call('HEXISTS', DEDUP, head .. user) == 1
      or redis.call('HEXISTS', DEDUP, head .. 'all') == 1
      or redis.call('HEXISTS', DEDUP, head) == 1 then
      received[#received + 1] = ARGV[i]
    end
  end
end
return { 'OK', user, received }
