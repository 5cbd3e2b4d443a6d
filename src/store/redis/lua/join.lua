-- join-session. ARGV: 3 user, 4 conn, 5 node, 6 is_creator (1/0), 7 hash of the full
-- credential ('' = none), 8 hash of a joiner's password ('' = none), 9 hash of the
-- credential's password part (stored when this join creates the session), 10 mode of a
-- created session, 11 has_name (1/0), 12 name, 13 public key JSON ('' = none), 14 now
-- ms, 15 ttl ms, 16 max group members, 17 max sessions, 18 max absent members, 19 hex
-- digest of the resume token presented ('' = none), 20 that of a new token, kept when
-- this join is issued one ('' = the join sent no ack, so it cannot receive one: the
-- identity rule of `store/resume.rs`), 21 presence grace
-- ms (a member back within it of its drop is not a new member), 22 unused-session ttl
-- ms (kept when this join creates the session).
-- Returns {'OK', mode, is_creator, new_member, name, has_group_key, group_key,
-- history, keys, again, issued, key_changed, created} or {code}; a repeated join of a
-- connection gets no history.
local user, conn, node = ARGV[3], ARGV[4], ARGV[5]
local is_creator = ARGV[6] == '1'
local given_kh, given_ph, created_ph = ARGV[7], ARGV[8], ARGV[9]
local now, ttl = tonumber(ARGV[14]), tonumber(ARGV[15])

local created = 0
if redis.call('EXISTS', META) == 0 then
  created = 1
  if not is_creator then
    if redis.call('EXISTS', TOMB) == 1 then return { 'SESSION_EXPIRED' } end
    return { 'SESSION_NOT_FOUND' }
  end
  if given_kh == '' then return { 'NO_CREATOR_KEY' } end
  if session_count(now) >= tonumber(ARGV[17]) then return { 'LIMIT_REACHED_SESSIONS' } end
  delete_session() -- leftovers of an expired session
  redis.call('HSET', META, 'kh', given_kh, 'ph', created_ph, 'mode', ARGV[10], 'state', 'r',
    'creator', '', 'last', now, 'ut', ARGV[22])
end

local kh, ph, mode, state, creator = unpack(redis.call('HMGET', META, 'kh', 'ph', 'mode',
  'state', 'creator'))
if redis.call('ZSCORE', REMOVED, user) then return { 'REMOVED' } end
-- A member's resume token admits it without the key: after reset-link, the members in
-- the room keep their place through reconnects. `m.t` is the digest of the token the
-- member's client was sent (a member of an older version holds one only if it proved
-- it: `v`, and its `r`).
local known = get_member(user)
local function held(m)
  if m == nil then return nil end
  if m.t then return m.t end
  if m.v == 1 then return m.r end
  return nil
end
local by_token = ARGV[19] ~= '' and held(known) ~= nil and held(known) == ARGV[19]
if by_token then
  -- admitted
elseif is_creator then
  if given_kh ~= kh then return { 'INVALID_KEY_CREATOR' } end
else
  if state == 'r' then return { 'SESSION_NOT_ACTIVE' } end
  if mode == 'password' then
    if not ((given_ph ~= '' and given_ph == ph) or (given_kh ~= '' and given_kh == kh)) then
      return { 'INVALID_PASSWORD' }
    end
  elseif given_kh == '' or given_kh ~= kh then
    return { 'INVALID_KEY' }
  end
end

local bound = redis.call('HGET', CONNS, conn)
if bound and bound ~= user then return { 'FORBIDDEN_CONN_BOUND' } end
local m = get_member(user)
local already_present = m ~= nil and m.p > 0
-- Who may act as an existing member (store/resume.rs).
local issued = 0
if not bound then
  local token = held(m)
  if m == nil then
    if ARGV[20] ~= '' then issued = 1 end
  elseif ARGV[19] ~= '' then
    if token == nil or token ~= ARGV[19] then return { 'FORBIDDEN_RESUME' } end
  elseif token ~= nil then
    return { 'RESUME_TOKEN_REQUIRED' }
  elseif already_present then
    return { 'MEMBER_PRESENT' }
  end
end
if not already_present then
  local present = present_count()
  if mode ~= 'group' and present >= 2 then return { 'SESSION_FULL' } end
  if mode == 'group' and present >= tonumber(ARGV[16]) then return { 'LIMIT_REACHED_GROUP' } end
end

if is_creator and state == 'r' then
  redis.call('HSET', META, 'state', 'a', 'creator', user)
  creator = user
end
if not m then m = { n = '', k = '', j = ARGV[14], l = '0', p = 0 } end
if not already_present then m.j = ARGV[14] end
if ARGV[11] == '1' then m.n = ARGV[12] end
local key_changed = 0
if ARGV[13] ~= '' then
  if m.k ~= '' and m.k ~= ARGV[13] then key_changed = 1 end
  m.k = ARGV[13]
end
if issued == 1 then m.t = ARGV[20] end
if not bound then
  m.p = m.p + 1
  redis.call('HSET', CONNS, conn, user)
  node_add(node, conn)
end
put_member(user, m)
redis.call('HSET', META, 'last', now)
if redis.call('HLEN', MEMBERS) > 1 then redis.call('HSET', META, 'used', '1') end
settle(mode, now, ttl)

local gk = redis.call('HGET', GKEYS, user)
local new_member = 1
if already_present then new_member = 0 end
if m.p == 1 and not bound and not already_present and (now - (tonumber(m.l) or 0)) < tonumber(ARGV[21]) then
  new_member = 0
end
local creator_flag = 0
if creator == user then creator_flag = 1 end
local has_gk = 0
if gk then has_gk = 1 else gk = '' end
local history, again = {}, 1
if not bound then history, again = redis.call('LRANGE', HIST, 0, -1), 0 end
return { 'OK', mode, creator_flag, new_member, m.n, has_gk, gk, history, public_keys(), again,
  issued, key_changed, created }
