-- On a cluster, HISTORY_TOTAL_MAX_BYTES is kept by the reaper (a script here may not read
-- the deployment's total): it drops this session's oldest messages until its history
-- holds at most ARGV[3] bytes. Returns {'OK', bytes, evicted}.
local target, evicted = tonumber(ARGV[3]), 0
local bytes = tonumber(redis.call('HGET', META, 'hb') or '0')
while bytes > target do
  local c = drop_oldest(META)
  if not c then
    bytes = 0
    break
  end
  bytes = bytes - c
  evicted = evicted + 1
end
account(SID, bytes)
return { 'OK', bytes, evicted }
