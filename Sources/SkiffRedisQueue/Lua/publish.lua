-- A publish's fan-out, all in this one run: every copy of every message is stored, or none.
-- ARGV: prefix, '', topic, version, idempotency key ('' = none), maximum number of queues (and
-- of topics), priority, delay ms ('' = each queue's), dedup window ms, target count T, then T
-- times (queue, subscription, filtered-out count), then message count N, then N times (id,
-- body, k, then k target indexes from 1).
-- Returns {1, now, deliveredTo1, ..., deliveredToN}; {0, "<now>|<id>:<deliveredTo>,..."} for a
-- repeated idempotency key; {-9} when the subscriptions changed since `version` (nothing
-- stored); {-3, maximum} for a new topic past the limit.
if (redis.call('GET', topicKey('version')) or '0') ~= ARGV[4] then return { -9 } end
local maximum = tonumber(ARGV[6])
if not mayCreateTopic(maximum) then return { -3, maximum } end
local idempotencyKey, window = ARGV[5], tonumber(ARGV[9])
if idempotencyKey ~= '' then
  local stale = redis.call('ZRANGEBYSCORE', topicKey('dedup-expiry'), '-inf', now - window, 'LIMIT', 0, 100)
  for _, old in ipairs(stale) do
    redis.call('HDEL', topicKey('dedup'), old)
    redis.call('ZREM', topicKey('dedup-expiry'), old)
  end
  local original = redis.call('HGET', topicKey('dedup'), idempotencyKey)
  if original and (tonumber(redis.call('ZSCORE', topicKey('dedup-expiry'), idempotencyKey)) or 0) > now - window then
    return { 0, original }
  end
end
local priority = tonumber(ARGV[7])
local targets, at = {}, 11
for t = 1, tonumber(ARGV[10]) do
  targets[t] = { queue = ARGV[at], subscription = ARGV[at + 1], filteredOut = tonumber(ARGV[at + 2]), messages = {} }
  at = at + 3
end
local ids, bodies, deliveredTo = {}, {}, {}
local n = tonumber(ARGV[at])
at = at + 1
for m = 1, n do
  ids[m], bodies[m], deliveredTo[m] = ARGV[at], ARGV[at + 1], 0
  local k = tonumber(ARGV[at + 2])
  for j = 1, k do
    local list = targets[tonumber(ARGV[at + 2 + j])].messages
    list[#list + 1] = m
  end
  at = at + 3 + k
end
-- Each subscriber queue takes what it has room for, in order; the rest of its copies are
-- dropped and counted, and the other subscriptions are not held back.
for _, target in ipairs(targets) do
  local q, matched = target.queue, #target.messages
  local stored = 0
  if matched > 0 then
    local s = settings(q)
    local delay = s.delay
    if ARGV[8] ~= '' then delay = tonumber(ARGV[8]) end
    local room = 0
    if delay <= s.retention and mayCreate(q, maximum) then
      room = s.maxDepth and math.max(0, s.maxDepth - depth(q)) or matched
    end
    stored = math.min(room, matched)
    if stored > 0 then
      local storedIds, storedBodies = {}, {}
      for i = 1, stored do
        local m = target.messages[i]
        storedIds[i], storedBodies[i] = ids[m], bodies[m]
        deliveredTo[m] = deliveredTo[m] + 1
      end
      store(q, s, storedIds, storedBodies, priority, delay)
    end
  end
  local figures = { matched, target.filteredOut, stored, matched - stored }
  for i, suffix in ipairs(counterSuffixes) do
    if figures[i] > 0 then redis.call('HINCRBY', topicKey('counters'), target.subscription .. '|' .. suffix, figures[i]) end
  end
end
redis.call('HINCRBY', topicKey('counters'), 'published', n)
redis.call('SADD', topicsKey, topic)
if idempotencyKey ~= '' then
  local record = {}
  for m = 1, n do record[m] = ids[m] .. ':' .. deliveredTo[m] end
  redis.call('HSET', topicKey('dedup'), idempotencyKey, now .. '|' .. table.concat(record, ','))
  redis.call('ZADD', topicKey('dedup-expiry'), now, idempotencyKey)
end
local out = { 1, now }
for m = 1, n do out[m + 2] = deliveredTo[m] end
return out
