-- The topic's version and its subscriptions, read together. Reads only.
-- Returns {version, name1, stored1, name2, stored2, ...}.
local out = { redis.call('GET', topicKey('version')) or '0' }
local subs = redis.call('HGETALL', topicKey('subs'))
for i = 1, #subs do out[i + 1] = subs[i] end
return out
