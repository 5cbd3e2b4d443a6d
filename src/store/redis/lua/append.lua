-- send-message: stores one copy per (id, sender, recipient) and trims the history to
-- its bounds, oldest first. ARGV: 3 conn, 4 claimed userId, 5 message id, 6 recipient
-- ('' = none, 'all', or a userId), 7 the message's JSON up to its last field (this
-- script adds "from" and "senderDisplayName"), 8 its cost in bytes without the sender
-- id, 9 max messages, 10 max bytes, 11 timestamp, 12 now ms, 13 HISTORY_TOTAL_MAX_BYTES
-- (0 = none): beyond it the largest histories of the deployment lose their oldest
-- messages first, down to 90 %; 14 relay (1/0): publish the message to every other node
-- with a connection in the session, on its channel for it (src/bus.rs), 15 the originalContent of a copy to one
-- member, 16 this node's id (the frame's origin), 17 on a cluster, how far the session's
-- size may move before the global total hears it (common.lua's account), 18 the largest
-- body published as it is; a larger one is parked in a key for 19 ms and its frame names
-- that key (src/bus.rs).
-- Returns {'OK', user, name, first_of_id, evicted} or {'DUPLICATE', timestamp} or {code}.
--
-- A history entry is "cost\nid\nfrom\nto\n<json>": ids hold no control characters, so
-- trimming and visibility read the header without decoding the JSON.
local user, err = bound_user(ARGV[3], ARGV[4])
if not user then return { err } end
local id, to = ARGV[5], ARGV[6]
local cost = tonumber(ARGV[8]) + #user
local max_bytes = tonumber(ARGV[10])
if cost > max_bytes then return { 'TOO_LARGE' } end
local triple = 't\n' .. id .. '\n' .. user .. '\n' .. to
if redis.call('HSETNX', DEDUP, triple, ARGV[11]) == 0 then
  return { 'DUPLICATE', redis.call('HGET', DEDUP, triple) }
end
local per_id = 'n\n' .. id .. '\n' .. user
local first_of_id = 0
if redis.call('HINCRBY', DEDUP, per_id, 1) == 1 then first_of_id = 1 end

local name = redis.call('HGET', NAMES, user) or ''
local json = ARGV[7] .. ',"from":"' .. user .. '","senderDisplayName":' .. cjson.encode(name) .. '}'
local length = redis.call('RPUSH', HIST, cost .. '\n' .. id .. '\n' .. user .. '\n' .. to .. '\n' .. json)
if ARGV[14] == '1' then
  local kind, body = 's', json
  if to ~= '' and to ~= 'all' then
    kind = 'm'
    body = json:sub(1, -2) .. ',"originalContent":' .. ARGV[15] .. '}'
  end
  local publish = 'PUBLISH'
  if not ONE_REDIS then publish = 'SPUBLISH' end
  local frame
  for _, node in ipairs(redis.call('HKEYS', NODES)) do
    if node ~= ARGV[16] then
      if not frame then
        frame = ARGV[16] .. '\n' .. kind .. '\n' .. to .. '\n' .. body
        if #body > tonumber(ARGV[18]) then
          -- Parked: the frame names a key that holds the body for a while (src/bus.rs).
          local parked = BASE .. ':p:' .. redis.sha1hex(triple)
          redis.call('SET', parked, body, 'PX', ARGV[19])
          frame = ARGV[16] .. '\n' .. kind:upper() .. '\n' .. to .. '\n' .. parked
        end
      end
      redis.call(publish, P .. 'b:{' .. SID .. '}:' .. node, frame)
    end
  end
end
local bytes = redis.call('HINCRBY', META, 'hb', cost)
local max_messages = tonumber(ARGV[9])
while length > max_messages or bytes > max_bytes do
  local c = drop_oldest(META)
  if not c then break end
  bytes = bytes - c
  length = length - 1
end
redis.call('HSET', META, 'last', ARGV[12], 'used', '1')
account(SID, bytes, tonumber(ARGV[17]))

local budget, evicted = tonumber(ARGV[13]), 0
-- On a cluster the reaper sheds the largest histories instead (see RedisStore::shed).
local total = 0
if ONE_REDIS and budget > 0 then total = tonumber(redis.call('GET', HB_TOTAL) or '0') end
if budget > 0 and total > budget then
  local target = budget - math.floor(budget / 10)
  while total > target do
    local top = redis.call('ZREVRANGE', HB_SIZE, 0, 1, 'WITHSCORES')
    if #top == 0 then break end
    local sid, left = top[1], tonumber(top[2])
    local next_size = 0
    if #top >= 4 then next_size = tonumber(top[4]) end
    -- The largest history, down to the next largest (or until under the target).
    while left > 0 and left >= next_size and total > target do
      local c = drop_oldest(P .. 's:{' .. sid .. '}')
      if not c then
        total = total - left -- expired meanwhile: only its count was left
        left = 0
      else
        left = left - c
        total = total - c
        evicted = evicted + 1
      end
    end
    account(sid, left)
  end
end
return { 'OK', user, name, first_of_id, evicted }
