-- Shared by the topic scripts (after the queue library): ARGV[3] is the topic. A topic's keys
-- are `<prefix>:topic:{<topic>}:<suffix>`: subs (hash: name -> "<updatedAt>|<queue>|<filter>"),
-- push (hash: name -> the push endpoint as JSON, for push subscriptions), version, counters
-- (hash: "<name>|matched" and so on, and "published"), dedup and dedup-expiry. `<prefix>:topics`
-- lists topics; `<prefix>:topic-version` is the one clock every topic's version comes from, so a
-- topic deleted and created again never repeats a version. `<prefix>:push-subscriptions` lists
-- every push subscription as "<topic>/<name>", and `<prefix>:push-version` rises with each change
-- to one (the replicas' push delivery reads them again then).
--
-- On a Redis Cluster (docs/topics.md) every topic's keys and these registries live in one slot,
-- under KEYS[2] = `<prefix>:{:topics}` (a tag no queue name can be): `<prefix>:{:topics}:topic:
-- <topic>:<suffix>`, `<prefix>:{:topics}:topics` and so on, so a subscription change and the
-- registries it checks stay one atomic run. There a publish appends to the topic's log
-- (topic-append.lua: `log:<seq>`, `todo:<seq>`, `pending`, and `<prefix>:{:topics}:topic-log`
-- over all topics) and forwarders copy each entry into its subscriber queues (topic-deliver.lua).
local topic = ARGV[3]
local function topicKey(suffix)
  if clustered then return indexBase .. ':topic:' .. topic .. ':' .. suffix end
  return prefix .. ':topic:{' .. topic .. '}:' .. suffix
end
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

-- The checks a publish starts with (ARGV as publish.lua says): the subscriptions it was decided
-- from are current, the topic may exist, and its idempotency key is new. Returns the answer to
-- give at once ({-9}, {-3, maximum}, or {0, "<now>|<id>:<deliveredTo>,..."}), or nil.
local function publishRefusal()
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
  return nil
end

-- A publish's targets and messages from ARGV (as publish.lua says): targets[t] = {queue,
-- subscription, filteredOut, messages = the indexes of the messages it takes}, then the ids and
-- bodies.
local function readFanOut()
  local targets, at = {}, 11
  for t = 1, tonumber(ARGV[10]) do
    targets[t] = { queue = ARGV[at], subscription = ARGV[at + 1], filteredOut = tonumber(ARGV[at + 2]), messages = {} }
    at = at + 3
  end
  local ids, bodies = {}, {}
  local n = tonumber(ARGV[at])
  at = at + 1
  for m = 1, n do
    ids[m], bodies[m] = ARGV[at], ARGV[at + 1]
    local k = tonumber(ARGV[at + 2])
    for j = 1, k do
      local list = targets[tonumber(ARGV[at + 2 + j])].messages
      list[#list + 1] = m
    end
    at = at + 3 + k
  end
  return targets, ids, bodies
end

-- Adds to a subscription's counters (`figures` in the order of counterSuffixes; nil skips one).
local function countFor(subscription, figures)
  for i, suffix in ipairs(counterSuffixes) do
    if figures[i] and figures[i] > 0 then redis.call('HINCRBY', topicKey('counters'), subscription .. '|' .. suffix, figures[i]) end
  end
end

-- Keeps the publish's answer under its idempotency key (if it has one).
local function rememberPublish(ids, deliveredTo)
  local idempotencyKey = ARGV[5]
  if idempotencyKey == '' then return end
  local record = {}
  for m = 1, #ids do record[m] = ids[m] .. ':' .. deliveredTo[m] end
  redis.call('HSET', topicKey('dedup'), idempotencyKey, now .. '|' .. table.concat(record, ','))
  redis.call('ZADD', topicKey('dedup-expiry'), now, idempotencyKey)
end

-- Redis Cluster: the log entry `id` is forwarded everywhere (or has nowhere left to go): it goes.
local function dropLogEntry(id)
  redis.call('DEL', topicKey('log:' .. id), topicKey('todo:' .. id))
  redis.call('SREM', topicKey('pending'), id)
  redis.call('ZREM', indexKey('topic-log'), topic .. '|' .. id)
end

-- How many messages of a log entry (its list, as topic-append.lua stores it: now, priority,
-- delay, dedup window, T, T times (queue, subscription, filtered out), N, N times (id, body, k,
-- k target indexes)) target `t` takes.
local function takenBy(list, t)
  local at = 6 + 3 * tonumber(list[5])
  local taken = 0
  for _ = 1, tonumber(list[at]) do
    local k = tonumber(list[at + 3])
    for j = 1, k do
      if tonumber(list[at + 3 + j]) == t then taken = taken + 1 end
    end
    at = at + 3 + k
  end
  return taken
end

-- Redis Cluster: the log entries not yet forwarded no longer copy to the subscription `name`
-- (deleted), or, given `q`, to its queue `q` (it moved to another, and counts those copies as
-- dropped); an entry left with nothing to copy goes. A forwarder already under way when this
-- runs may still make its copy: it read the entry before.
local function dropPendingCopies(name, q)
  for _, id in ipairs(redis.call('SMEMBERS', topicKey('pending'))) do
    local entry, todo = topicKey('log:' .. id), topicKey('todo:' .. id)
    local count = tonumber(redis.call('LINDEX', entry, 4)) or 0
    if count > 0 then
      local targets = redis.call('LRANGE', entry, 5, 4 + 3 * count)
      for t = 1, count do
        if targets[3 * t - 1] == name and (q == nil or targets[3 * t - 2] == q) and redis.call('SREM', todo, t) == 1 and q then
          countFor(name, { nil, nil, nil, takenBy(redis.call('LRANGE', entry, 0, -1), t) })
        end
      end
    end
    if redis.call('SCARD', todo) == 0 then dropLogEntry(id) end
  end
end
