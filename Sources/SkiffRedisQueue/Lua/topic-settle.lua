-- Redis Cluster: what the forwarders stored of one log entry (topic-append.lua), each target
-- counted once however many forwarders report it; the entry goes when every target is settled.
-- ARGV: prefix, '', topic, entry id, idempotency key ('' = none), the answer to keep for it
-- ('' = keep the one there), then (target index, subscription, matched, stored) per target.
-- Returns the number of targets still to forward.
local id = ARGV[4]
local todo = topicKey('todo:' .. id)
for at = 7, #ARGV, 4 do
  if redis.call('SREM', todo, ARGV[at]) == 1 and redis.call('HEXISTS', topicKey('subs'), ARGV[at + 1]) == 1 then
    local matched, stored = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
    countFor(ARGV[at + 1], { nil, nil, stored, matched - stored })
  end
end
if ARGV[6] ~= '' and redis.call('HEXISTS', topicKey('dedup'), ARGV[5]) == 1 then
  redis.call('HSET', topicKey('dedup'), ARGV[5], ARGV[6])
end
local left = redis.call('SCARD', todo)
if left == 0 then dropLogEntry(id) end
return left
