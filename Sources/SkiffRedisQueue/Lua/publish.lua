-- A publish's fan-out, all in this one run: every copy of every message is stored, or none.
-- Single Redis only (on a cluster the subscriber queues are in other slots: topic-append.lua).
-- ARGV: prefix, '', topic, version, idempotency key ('' = none), maximum number of queues (and
-- of topics), priority, delay ms ('' = each queue's), dedup window ms, target count T, then T
-- times (queue, subscription, filtered-out count), then message count N, then N times (id,
-- body, k, then k target indexes from 1).
-- Returns {1, now, deliveredTo1, ..., deliveredToN}; {0, "<now>|<id>:<deliveredTo>,..."} for a
-- repeated idempotency key; {-9} when the subscriptions changed since `version` (nothing
-- stored); {-3, maximum} for a new topic past the limit.
local refusal = publishRefusal()
if refusal then return refusal end
local maximum, priority = tonumber(ARGV[6]), tonumber(ARGV[7])
local targets, ids, bodies = readFanOut()
local n = #ids
local deliveredTo = {}
for m = 1, n do deliveredTo[m] = 0 end
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
  countFor(target.subscription, { matched, target.filteredOut, stored, matched - stored })
end
redis.call('HINCRBY', topicKey('counters'), 'published', n)
redis.call('SADD', topicsKey, topic)
rememberPublish(ids, deliveredTo)
local out = { 1, now }
for m = 1, n do out[m + 2] = deliveredTo[m] end
return out
