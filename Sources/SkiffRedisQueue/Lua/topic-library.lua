-- Shared by the topic scripts (after the queue library): ARGV[3] is the topic. A topic's keys
-- are `<prefix>:topic:{<topic>}:<suffix>`: subs (hash: name -> "<updatedAt>|<queue>|<filter>"),
-- version, counters (hash: "<name>|matched" and so on, and "published"), dedup and
-- dedup-expiry. `<prefix>:topics` lists topics; `<prefix>:topic-version` is the one clock every
-- topic's version comes from, so a topic deleted and created again never repeats a version.
local topic = ARGV[3]
local function topicKey(suffix) return prefix .. ':topic:{' .. topic .. '}:' .. suffix end
local topicsKey = indexKey('topics')
local counterSuffixes = { 'matched', 'filteredOut', 'delivered', 'dropped' }

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
