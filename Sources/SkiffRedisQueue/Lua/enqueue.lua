local s = settings(queue)
local idempotencyKey = ARGV[5]
if idempotencyKey ~= '' then
  -- `dedup-expiry` scores each key with its send time (data written before scored the end of
  -- its window, which keeps such a key one window longer): a key is judged by the window
  -- in force now, as docs/message-lifecycle.md says, also after the setting changed.
  local stale = redis.call('ZRANGEBYSCORE', key(queue, 'dedup-expiry'), '-inf', now - s.dedupWindow, 'LIMIT', 0, 100)
  for _, old in ipairs(stale) do
    redis.call('HDEL', key(queue, 'dedup'), old)
    redis.call('ZREM', key(queue, 'dedup-expiry'), old)
  end
  -- The cleanup above is bounded, so a key found here may still be past its window:
  -- only a key sent less than a window ago makes a duplicate.
  local original = redis.call('HGET', key(queue, 'dedup'), idempotencyKey)
  if original and (tonumber(redis.call('ZSCORE', key(queue, 'dedup-expiry'), idempotencyKey)) or 0) > now - s.dedupWindow then
    return { 0, original }
  end
end
-- The delay first: a send refused for it must not count as creating its queue.
local delay = s.delay
if ARGV[3] ~= '' then delay = tonumber(ARGV[3]) end
if delay > s.retention then return { -2, s.retention } end
if not mayCreate(queue, tonumber(ARGV[6])) then return { -3, tonumber(ARGV[6]) } end
local n = tonumber(ARGV[7])
if s.maxDepth and depth(queue) + n > s.maxDepth then return { -1, s.maxDepth } end
local ids, bodies = {}, {}
for i = 1, n do
  ids[i] = ARGV[7 + i]
  bodies[i] = ARGV[7 + n + i]
end
local trace = ARGV[8 + 2 * n]
if trace == '' then trace = nil end
store(queue, s, ids, bodies, tonumber(ARGV[4]), delay, trace)
if idempotencyKey ~= '' then
  redis.call('HSET', key(queue, 'dedup'), idempotencyKey, now .. '|' .. table.concat(ids, ','))
  redis.call('ZADD', key(queue, 'dedup-expiry'), now, idempotencyKey)
end
return { 1, now }
