-- Redis Cluster only: the global registry of queues, for MAX_QUEUES (a queue's own scripts run
-- in its slot and cannot count the others). KEYS[1]: the registry; ARGV: queue, maximum.
-- Returns 1 when the queue is registered (already, or now), 0 when the registry is full.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
