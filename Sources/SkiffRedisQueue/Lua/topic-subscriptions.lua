-- The topic's version, its subscriptions and their push endpoints, read together. Reads only.
-- Returns {version, n, name1, stored1, ..., nameN, storedN, pushName1, push1, ...}.
local subs = redis.call('HGETALL', topicKey('subs'))
local out = { redis.call('GET', topicKey('version')) or '0', #subs / 2 }
for i = 1, #subs do out[#out + 1] = subs[i] end
local push = redis.call('HGETALL', topicKey('push'))
for i = 1, #push do out[#out + 1] = push[i] end
return out
