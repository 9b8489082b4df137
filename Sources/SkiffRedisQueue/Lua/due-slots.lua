#!lua flags=allow-cross-slot-keys,no-writes
-- Redis Cluster only, without the library: the due queues of many slots of one node in one run
-- (a sweep would otherwise ask every slot on its own, 20 times a second). Reads only.
-- ARGV[1]: the index ('lease-index', 'delay-index', 'retention-index'); ARGV[2]: at most this
-- many per slot; ARGV[3...]: the slots' index bases (`<prefix>:{<tag>}`), all served by this node
-- (a slot that moved away makes the run fail; the sweep reads the slot map again).
-- Returns the due queue names.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 3, #ARGV do
  local due = redis.call('ZRANGEBYSCORE', ARGV[i] .. ':' .. ARGV[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
  for _, q in ipairs(due) do out[#out + 1] = q end
end
return out
