-- ARGV: prefix, '', topic. Deletes the topic: subscriptions, counters, idempotency keys.
-- Returns 1, or 0 when there was no such topic.
if redis.call('SREM', topicsKey, topic) == 0 then return 0 end
redis.call('DEL', topicKey('subs'), topicKey('counters'), topicKey('dedup'), topicKey('dedup-expiry'))
bumpVersion()
return 1
