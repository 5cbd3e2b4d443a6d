-- Shared by every script (prepended at compile time). The same rules as the in-memory
-- store (src/store/session.rs), for one session, atomically.
--
-- ARGV[1] is the key prefix, ARGV[2] the session id; KEYS[1] is the session's meta key
-- (its slot routes the script on a cluster). The last three ARGV: '1' when this Redis
-- also holds the deployment's global keys (one server) or '0' (a cluster, see LEDGER),
-- the session count the node read beforehand (a cluster only), and the fence.
--
-- A session is nine keys under "<prefix>s:{<id>}", all in the slot of its hash tag:
-- the meta hash (key hashes, mode, state, creator, last activity), ":m" members (userId
-- -> JSON), ":c" connections (a connection's keyed digest, never its Engine.IO sid,
-- -> userId), ":g" wrapped group keys, ":h" history (a list of message JSON), ":d" its dedup index ("id\nfrom\nto" -> timestamp)
-- ":r" the userIds the creator removed (a sorted set by time of removal) and ":n" each
-- member's display name alone (what a message needs, without decoding the member), ":o"
-- the nodes with a connection bound in it (node id -> count: whom its messages are
-- published to, see src/bus.rs). ":x" is a
-- tombstone that outlives an expired session, so a late joiner hears SESSION_EXPIRED.
-- The deployment's global keys (the session index per mode, the history total, the node
-- registry) share the slot "<prefix>{g}".
--
-- The fence is a deadline in Redis's own clock (ms). A script that runs after it (Redis
-- was stalled, and the node has answered UNAVAILABLE, "nothing was changed") changes
-- nothing and answers FENCED, so that answer stays true.
local FENCE = tonumber(ARGV[#ARGV])
do
  local t = redis.call('TIME')
  if FENCE and tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > FENCE then
    return { 'FENCED' }
  end
end
local ONE_REDIS = ARGV[#ARGV - 2] ~= '0'
local SESSIONS_SEEN = tonumber(ARGV[#ARGV - 1]) or 0
local P, SID = ARGV[1], ARGV[2]
local BASE = P .. 's:{' .. SID .. '}'
local G = P .. '{g}'
local META, MEMBERS, CONNS = BASE, BASE .. ':m', BASE .. ':c'
local GKEYS, HIST, DEDUP, TOMB = BASE .. ':g', BASE .. ':h', BASE .. ':d', BASE .. ':x'
local REMOVED, NAMES, NODES = BASE .. ':r', BASE .. ':n', BASE .. ':o'
local DATA = { META, MEMBERS, CONNS, GKEYS, HIST, DEDUP, REMOVED, NAMES, NODES }

-- On a cluster a script may only touch its own slot: the changes to the global keys are
-- listed here, returned with the reply, and applied by the node right after (ledger.lua
-- on the {g} slot). On one server they are made here, in the same atomic step.
local LEDGER = {}
local function ledger(...)
  for _, v in ipairs({ ... }) do LEDGER[#LEDGER + 1] = v end
end

local function index_key(mode) return G .. 'idx:' .. mode end
local MODES = { 'group', 'private', 'password' }

-- The session `sid` in the index of `mode`, expiring at `score` (+inf while occupied).
local function index_put(mode, score, sid)
  if not ONE_REDIS then return ledger('ix', mode, score, sid) end
  redis.call('ZADD', index_key(mode), score, sid)
end

-- From every mode's index: an expired session's meta (and so its mode) may be gone
-- while its index entry is not, and a stale entry would later be pruned as if it were
-- the live session of that id (zeroing its share of the history total).
local function index_drop(sid)
  if not ONE_REDIS then return ledger('ux', sid) end
  for _, mode in ipairs(MODES) do redis.call('ZREM', index_key(mode), sid) end
end

-- History bytes of the whole deployment (HISTORY_TOTAL_MAX_BYTES): the total, and each
-- session's share in a sorted set, which is the truth the total follows.
local HB_TOTAL, HB_SIZE = G .. 'hb:total', G .. 'hb:size'

-- On a cluster the total lives in another slot: a message's script tells it (through
-- the ledger, a second round trip) only when its session's size moved by `grain` bytes
-- since it last did (the meta's 'ha'), so the total is off by less than a grain per
-- session. Without `grain`, exactly.
local function account(sid, after, grain)
  if not ONE_REDIS then
    if grain and after > 0 then
      local told = tonumber(redis.call('HGET', META, 'ha') or '-1')
      if told >= 0 and math.abs(after - told) < grain then return end
    end
    if after > 0 then redis.call('HSET', META, 'ha', after) end
    return ledger('hb', sid, after)
  end
  local before = tonumber(redis.call('ZSCORE', HB_SIZE, sid) or '0')
  if after == before then return end
  redis.call('INCRBY', HB_TOTAL, after - before)
  if after > 0 then
    redis.call('ZADD', HB_SIZE, after, sid)
  else
    redis.call('ZREM', HB_SIZE, sid)
  end
end

-- Drops the oldest entry of the history of the session whose meta key is `base`;
-- returns its cost, or nil when there is none (the session may have expired).
local function drop_oldest(base)
  local old = redis.call('LPOP', base .. ':h')
  if not old then return nil end
  local c, oid, ofrom, oto = old:match('^(%d+)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n')
  c = tonumber(c)
  redis.call('HINCRBY', base, 'hb', -c)
  local dedup = base .. ':d'
  redis.call('HDEL', dedup, 't\n' .. oid .. '\n' .. ofrom .. '\n' .. oto)
  local key = 'n\n' .. oid .. '\n' .. ofrom
  if redis.call('HINCRBY', dedup, key, -1) <= 0 then redis.call('HDEL', dedup, key) end
  return c
end
-- Sessions not yet expired (the index keeps expired ones until the reaper prunes them).
local function session_count(now)
  if not ONE_REDIS then return SESSIONS_SEEN end
  local total = 0
  for _, mode in ipairs(MODES) do
    total = total + redis.call('ZCOUNT', index_key(mode), '(' .. now, '+inf')
  end
  return total
end

local function node_key(node) return G .. 'n:' .. node .. ':c' end

-- `conn` of `node` is bound in this session; on a cluster the node listed it itself,
-- before the join (so that a node that dies between the two leaves nothing unlisted).
local function node_add(node, conn)
  redis.call('HINCRBY', NODES, node, 1)
  if ONE_REDIS then redis.call('SADD', node_key(node), SID .. '|' .. conn) end
end

local function node_remove(node, conn)
  if not ONE_REDIS then return ledger('nd', node, SID .. '|' .. conn) end
  redis.call('SREM', node_key(node), SID .. '|' .. conn)
end

-- Persistent while a member is connected; otherwise expires `ttl` ms after now, or
-- after the meta's 'ut' (UNUSED_SESSION_TTL) while it is not 'used' (nobody besides the
-- creator joined, nothing was sent). The index holds each session's expiry (+inf while
-- occupied), for counts and pruning.
local function settle(mode, now, ttl)
  local used, ut = unpack(redis.call('HMGET', META, 'used', 'ut'))
  if used ~= '1' and ut then ttl = math.min(ttl, tonumber(ut)) end
  if redis.call('HLEN', CONNS) > 0 then
    for _, k in ipairs(DATA) do redis.call('PERSIST', k) end
    index_put(mode, '+inf', SID)
  else
    for _, k in ipairs(DATA) do redis.call('PEXPIRE', k, ttl) end
    index_put(mode, now + ttl, SID)
  end
  redis.call('SET', TOMB, '1', 'PX', ttl * 2)
end

local function delete_session()
  account(SID, 0)
  for _, k in ipairs(DATA) do redis.call('DEL', k) end
  redis.call('DEL', TOMB)
  index_drop(SID)
end

local function get_member(user)
  local j = redis.call('HGET', MEMBERS, user)
  if j then return cjson.decode(j) end
  return nil
end

local function put_member(user, m)
  redis.call('HSET', MEMBERS, user, cjson.encode(m))
  redis.call('HSET', NAMES, user, m.n)
end

local function forget_member(user)
  redis.call('HDEL', MEMBERS, user)
  redis.call('HDEL', NAMES, user)
end

-- The user `conn` joined as, or nil and the error code.
local function bound_user(conn, claimed)
  local user = redis.call('HGET', CONNS, conn)
  if not user then return nil, 'NOT_IN_SESSION' end
  if claimed ~= '' and claimed ~= user then return nil, 'FORBIDDEN_OTHER_USER' end
  return user
end

-- Present members' keys, flat: userId, displayName, publicKey, joinedAt, ...
local function public_keys()
  local out = {}
  local all = redis.call('HGETALL', MEMBERS)
  for i = 1, #all, 2 do
    local m = cjson.decode(all[i + 1])
    if m.p > 0 and m.k ~= '' then
      out[#out + 1] = all[i]
      out[#out + 1] = m.n
      out[#out + 1] = m.k
      out[#out + 1] = m.j
    end
  end
  return out
end

local function present_count()
  local n = 0
  for _, j in ipairs(redis.call('HVALS', MEMBERS)) do
    if cjson.decode(j).p > 0 then n = n + 1 end
  end
  return n
end

-- Unbinds `conn`. With `forget`, a member whose last connection left is removed with
-- its group key (an explicit leave); otherwise it is kept as absent, at most
-- `max_absent` of them (the longest gone are forgotten first).
-- Returns nil, or user, member_gone (0/1).
local function remove_conn(conn, node, forget, now, max_absent)
  node_remove(node, conn)
  local user = redis.call('HGET', CONNS, conn)
  if not user then return nil end
  redis.call('HDEL', CONNS, conn)
  if redis.call('HINCRBY', NODES, node, -1) <= 0 then redis.call('HDEL', NODES, node) end
  redis.call('HSET', META, 'last', now)
  local m = get_member(user)
  if not m then return user, 0 end
  m.p = math.max(m.p - 1, 0)
  if m.p > 0 then
    put_member(user, m)
    return user, 0
  end
  if forget then
    forget_member(user)
    redis.call('HDEL', GKEYS, user)
    return user, 1
  end
  m.l = now
  put_member(user, m)
  local absent = {}
  local all = redis.call('HGETALL', MEMBERS)
  for i = 1, #all, 2 do
    local a = cjson.decode(all[i + 1])
    if a.p == 0 then absent[#absent + 1] = { tonumber(a.l) or 0, all[i] } end
  end
  if #absent > max_absent then
    table.sort(absent, function(x, y) return x[1] < y[1] end)
    for i = 1, #absent - max_absent do forget_member(absent[i][2]) end
  end
  return user, 1
end

-- The reply, with the ledger when there is one (the node applies it, then reads the
-- reply: see RedisStore::run).
local function finish(reply)
  if #LEDGER == 0 then return reply end
  return { 'LEDGER', LEDGER, reply }
end
