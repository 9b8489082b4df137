-- Redis Cluster: the copies of one topic log entry for one subscriber queue, in the queue's
-- slot, stored once: the queue keeps "<topic>|<entry id>" with how many it stored (in
-- `topic-applied` and `topic-applied-at`), so a forwarder that runs again (its replica died
-- after this run and before topic-settle.lua) stores nothing twice. The replica that settles
-- the entry has the queue forget it a minute later (topic-forget.lua); one that died first
-- leaves it for an hour.
-- ARGV: prefix, queue, topic, entry id, priority, delay ms ('' = the queue's), maximum number of
-- queues, n, then n ids, then n bodies.
-- Returns {1, stored}: stored now, in order, the rest dropped (the queue's maxDepth, a delay
-- beyond its retention), as publish.lua drops them; {0, stored} when this entry was stored here
-- before; {-3} for a new queue, to be admitted in the global registry first.
local marker = ARGV[3] .. '|' .. ARGV[4]
local applied, appliedAt = key(queue, 'topic-applied'), key(queue, 'topic-applied-at')
local hour = 3600000
local expired = redis.call('ZRANGEBYSCORE', appliedAt, '-inf', now - hour, 'LIMIT', 0, 100)
for _, old in ipairs(expired) do
  redis.call('HDEL', applied, old)
  redis.call('ZREM', appliedAt, old)
end
local before = redis.call('HGET', applied, marker)
if before then
  -- A write, so that a WAIT after this run covers the copies stored before (WAIT waits for the
  -- connection's last write, and this connection may have made none).
  redis.call('ZADD', appliedAt, now, marker)
  -- The markers live as long as the entry is forwarded again: expired, a later forward would
  -- store the copies twice (and, offloaded, uncounted: SharedPayloadObjects).
  redis.call('PEXPIRE', applied, hour)
  redis.call('PEXPIRE', appliedAt, hour)
  return { 0, tonumber(before) }
end
local s = settings(queue)
local delay = s.delay
if ARGV[6] ~= '' then delay = tonumber(ARGV[6]) end
local n = tonumber(ARGV[8])
local room = 0
if delay <= s.retention then
  if not mayCreate(queue, tonumber(ARGV[7])) then return { -3 } end
  room = s.maxDepth and math.max(0, s.maxDepth - depth(queue)) or n
end
local stored = math.min(room, n)
if stored > 0 then
  local ids, bodies = {}, {}
  for i = 1, stored do ids[i], bodies[i] = ARGV[8 + i], ARGV[8 + n + i] end
  store(queue, s, ids, bodies, tonumber(ARGV[5]), delay)
end
redis.call('HSET', applied, marker, stored)
redis.call('ZADD', appliedAt, now, marker)
-- A queue deleted meanwhile leaves nothing behind for longer than the markers are needed.
redis.call('PEXPIRE', applied, hour)
redis.call('PEXPIRE', appliedAt, hour)
return { 1, stored }
