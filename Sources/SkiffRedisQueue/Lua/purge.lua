local existed = redis.call('SISMEMBER', indexKey('queues'), queue)
local n = readyDepth(queue) + redis.call('HLEN', key(queue, 'inflight')) + redis.call('ZCARD', key(queue, 'delayed'))
for p = 0, 9 do redis.call('DEL', readyKey(queue, p), returnedKey(queue, p)) end
-- The stored bodies of the messages deleted here go to the graveyard, in this same step.
bury(redis.call('SMEMBERS', key(queue, 'offloaded')))
redis.call('DEL', key(queue, 'inflight'), key(queue, 'leases'), key(queue, 'delayed'), key(queue, 'errors'), key(queue, 'history'),
  key(queue, 'offloaded'))
for _, index in ipairs({ 'lease-index', 'delay-index', 'retention-index' }) do redis.call('ZREM', indexKey(index), queue) end
if ARGV[3] == '1' then
  redis.call('DEL', key(queue, 'config'), key(queue, 'stats'), key(queue, 'seq'), key(queue, 'dedup'), key(queue, 'dedup-expiry'),
    key(queue, 'samples'))
  local current = math.floor(now / 10000)
  for b = current - 7, current do redis.call('DEL', key(queue, 'rate:' .. b)) end
  redis.call('SREM', indexKey('queues'), queue)
  if clustered then redis.call('SREM', indexKey('unregistered'), queue) end
end
return { n, existed }
