-- Redis Cluster: a publish appended to its topic's log, in the topics' slot. The subscriber
-- queues are in other slots, so the copies are made after this run by forwarders
-- (topic-deliver.lua in each queue's slot, then topic-settle.lua here), which the replica that
-- published runs at once and any replica's sweep runs for an entry left behind.
-- ARGV as publish.lua. The entry, `log:<id of its first message>` (unique, also across a
-- failover that loses writes), is a list: now, then ARGV from the priority on (priority, delay,
-- dedup window, T, the targets, N, the messages); `todo:<id>` holds the indexes of the targets
-- still to copy it; `pending` (per topic) and `<prefix>:{:topics}:topic-log` (every topic,
-- "<topic>|<id>" scored by time) list the entries not yet forwarded everywhere.
-- Returns {1, now, 1 if an entry was written (0: no message matched), matched1, ..., matchedN};
-- {0, record}, {-9}, {-3, maximum} as publish.lua.
local refusal = publishRefusal()
if refusal then return refusal end
local targets, ids = readFanOut()
local n = #ids
local matched, todo = {}, {}
for m = 1, n do matched[m] = 0 end
for t, target in ipairs(targets) do
  for _, m in ipairs(target.messages) do matched[m] = matched[m] + 1 end
  if #target.messages > 0 then todo[#todo + 1] = t end
  -- Delivered and dropped are counted when the copies are made (topic-settle.lua).
  countFor(target.subscription, { #target.messages, target.filteredOut })
end
redis.call('HINCRBY', topicKey('counters'), 'published', n)
redis.call('SADD', topicsKey, topic)
if #todo > 0 then
  local id = ids[1]
  local entry = topicKey('log:' .. id)
  local chunk = { now }
  for i = 7, #ARGV do
    chunk[#chunk + 1] = ARGV[i]
    if #chunk >= 1000 then
      redis.call('RPUSH', entry, unpack(chunk))
      chunk = {}
    end
  end
  if #chunk > 0 then redis.call('RPUSH', entry, unpack(chunk)) end
  redis.call('SADD', topicKey('todo:' .. id), unpack(todo))
  redis.call('SADD', topicKey('pending'), id)
  redis.call('ZADD', indexKey('topic-log'), now, topic .. '|' .. id)
end
-- Until the copies are made, a repeated key answers the subscriptions that matched.
rememberPublish(ids, matched)
local out = { 1, now, #todo > 0 and 1 or 0 }
for m = 1, n do out[m + 3] = matched[m] end
return out
