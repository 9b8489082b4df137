-- Shared by the topic scripts (after the queue library): ARGV[3] is the topic. A topic's keys
-- are `<prefix>:topic:{<topic>}:<suffix>`: subs (hash: name -> "<updatedAt>|<queue>|<filter>"),
-- push (hash: name -> the push endpoint as JSON, for push subscriptions), version, counters
-- (hash: "<name>|matched" and so on, and "published"), dedup and dedup-expiry. `<prefix>:topics`
-- lists topics; `<prefix>:topic-version` is the one clock every topic's version comes from, so a
-- topic deleted and created again never repeats a version. `<prefix>:push-subscriptions` lists
-- every push subscription as "<topic>/<name>", and `<prefix>:push-version` rises with each change
-- to one (the replicas' push delivery reads them again then).
local topic = ARGV[3]
local function topicKey(suffix) return prefix .. ':topic:{' .. topic .. '}:' .. suffix end
local topicsKey = indexKey('topics')
-- The counters a publish adds to (in this order), then those push delivery adds to.
local counterSuffixes = { 'matched', 'filteredOut', 'delivered', 'dropped' }
local pushCounterSuffixes = { 'pushed', 'pushFailed' }
local pushRegistryKey = indexKey('push-subscriptions')

-- A push subscription was stored or deleted: the replicas' push delivery reads them again.
local function pushChanged() redis.call('INCR', indexKey('push-version')) end

-- Which subscriptions deliver to a queue, over all topics: `subscribed-queues` counts them per
-- queue; `push-queues` names the push subscription ("<topic>/<name>") whose queue it is. A push
-- subscription's queue is its own: no other subscription may deliver to it (its consumer would
-- push another topic's messages to this endpoint, signed with this secret).
local subscribedQueuesKey, pushQueuesKey = indexKey('subscribed-queues'), indexKey('push-queues')

local function queueOfStored(stored) return string.match(stored, '^%d+|([^|]*)|') end

-- The subscription `name` of this topic no longer delivers to `q` (deleted, or moved).
local function releaseQueue(name, q)
  if redis.call('HINCRBY', subscribedQueuesKey, q, -1) <= 0 then redis.call('HDEL', subscribedQueuesKey, q) end
  if redis.call('HGET', pushQueuesKey, q) == topic .. '/' .. name then redis.call('HDEL', pushQueuesKey, q) end
end

-- Whether the topic exists, or there is room for one more (`maximum`).
local function mayCreateTopic(maximum)
  return redis.call('SISMEMBER', topicsKey, topic) == 1 or redis.call('SCARD', topicsKey) < maximum
end

-- A subscription changed: the topic gets a version no replica has seen, `<n>-<nonce>`: `n`
-- orders versions; the caller's random nonce keeps one from being issued twice even if a
-- failover lost the counter's last increments.
local function bumpVersion(nonce)
  redis.call('SET', topicKey('version'), redis.call('INCR', indexKey('topic-version')) .. '-' .. nonce)
end
