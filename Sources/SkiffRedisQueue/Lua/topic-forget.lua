-- Redis Cluster: the queue forgets log entries whose copies it took and whose settlement in the
-- topics' slot is a minute old (topic-deliver.lua remembers them): no forwarder will bring them
-- again. ARGV: prefix, queue, then "<topic>|<entry id>" markers. Returns how many it forgot.
local applied, appliedAt = key(queue, 'topic-applied'), key(queue, 'topic-applied-at')
local markers = {}
for i = 3, #ARGV do markers[#markers + 1] = ARGV[i] end
if #markers == 0 then return 0 end
redis.call('ZREM', appliedAt, unpack(markers))
return redis.call('HDEL', applied, unpack(markers))
