-- ARGV: prefix, '', topic, name, version nonce. Deletes the subscription and its counters.
-- Returns 1, or 0 when there was no such subscription.
local name = ARGV[4]
local stored = redis.call('HGET', topicKey('subs'), name)
if not stored then return 0 end
redis.call('HDEL', topicKey('subs'), name)
releaseQueue(name, queueOfStored(stored))
-- Entries of its log not yet forwarded (Redis Cluster) no longer copy to it.
dropPendingCopies(name)
for _, suffix in ipairs(counterSuffixes) do redis.call('HDEL', topicKey('counters'), name .. '|' .. suffix) end
for _, suffix in ipairs(pushCounterSuffixes) do redis.call('HDEL', topicKey('counters'), name .. '|' .. suffix) end
if redis.call('HDEL', topicKey('push'), name) == 1 then
  redis.call('SREM', pushRegistryKey, topic .. '/' .. name)
  pushChanged()
end
bumpVersion(ARGV[5])
return 1
