-- ARGV: prefix, '', topic, name, stored value ("<updatedAt>|<queue>|<filter>"), queue,
-- maximum number of topics, maximum subscriptions per topic, version nonce, push endpoint (JSON,
-- '' for a queue subscription), maximum push subscriptions of the service.
-- Returns {1, created (1 or 0)}; {-3, maximum} past the topic limit; {-4, other name} when
-- another subscription of the topic delivers to that queue; {-5, maximum} past the subscription
-- limit; {-6, maximum} past the push subscription limit; {-7, "<topic>/<name>"} when the queue is
-- another push subscription's; {-8, count} for a push subscription whose queue other topics'
-- subscriptions deliver to.
local name, queueName = ARGV[4], ARGV[6]
if not mayCreateTopic(tonumber(ARGV[7])) then return { -3, tonumber(ARGV[7]) } end
local subs = redis.call('HGETALL', topicKey('subs'))
for i = 1, #subs, 2 do
  if subs[i] ~= name and string.match(subs[i + 1], '^%d+|([^|]*)|') == queueName then return { -4, subs[i] } end
end
local created = redis.call('HEXISTS', topicKey('subs'), name) == 0
if created and #subs / 2 >= tonumber(ARGV[8]) then return { -5, tonumber(ARGV[8]) } end
local push, hadPush = ARGV[10], redis.call('HEXISTS', topicKey('push'), name) == 1
if push ~= '' and not hadPush and redis.call('SCARD', pushRegistryKey) >= tonumber(ARGV[11]) then return { -6, tonumber(ARGV[11]) } end
local me = topic .. '/' .. name
local owner = redis.call('HGET', pushQueuesKey, queueName)
if owner and owner ~= me then return { -7, owner } end
local previous = redis.call('HGET', topicKey('subs'), name)
local previousQueue = previous and queueOfStored(previous)
if push ~= '' then
  local others = tonumber(redis.call('HGET', subscribedQueuesKey, queueName) or '0')
  if previousQueue == queueName then others = others - 1 end
  if others > 0 then return { -8, others } end
end
if previousQueue then releaseQueue(name, previousQueue) end
-- Moved to another queue: entries of its log not yet forwarded (Redis Cluster) no longer copy to
-- the one it leaves (which may soon be another subscription's, even a push subscription's).
if previousQueue and previousQueue ~= queueName then dropPendingCopies(name, previousQueue) end
redis.call('HINCRBY', subscribedQueuesKey, queueName, 1)
if push ~= '' then redis.call('HSET', pushQueuesKey, queueName, me) end
redis.call('HSET', topicKey('subs'), name, ARGV[5])
if push ~= '' then
  redis.call('HSET', topicKey('push'), name, push)
  redis.call('SADD', pushRegistryKey, topic .. '/' .. name)
  pushChanged()
elseif hadPush then
  redis.call('HDEL', topicKey('push'), name)
  redis.call('SREM', pushRegistryKey, topic .. '/' .. name)
  pushChanged()
end
bumpVersion(ARGV[9])
redis.call('SADD', topicsKey, topic)
return { 1, created and 1 or 0 }
