-- ARGV: prefix, '', topic. Deletes the topic: subscriptions, counters, idempotency keys.
-- Returns 1, or 0 when there was no such topic.
if redis.call('SREM', topicsKey, topic) == 0 then return 0 end
local subs = redis.call('HGETALL', topicKey('subs'))
for i = 1, #subs, 2 do releaseQueue(subs[i], queueOfStored(subs[i + 1])) end
local pushed = redis.call('HKEYS', topicKey('push'))
for _, name in ipairs(pushed) do redis.call('SREM', pushRegistryKey, topic .. '/' .. name) end
if #pushed > 0 then pushChanged() end
-- Entries of its log not yet forwarded (Redis Cluster) are not forwarded now.
for _, id in ipairs(redis.call('SMEMBERS', topicKey('pending'))) do dropLogEntry(id) end
-- The version goes too: a topic without one has no subscriptions (version '0'), which is true.
redis.call('DEL', topicKey('subs'), topicKey('push'), topicKey('counters'), topicKey('dedup'), topicKey('dedup-expiry'), topicKey('version'), topicKey('pending'))
return 1
