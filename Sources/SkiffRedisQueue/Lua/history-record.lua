-- ARGV: prefix, queue, interval ms, then the sample: ready, inFlight, delayed, deadLetter,
-- enqueued, delivered, acknowledged. Records it as the queue's sample for the current interval of
-- Redis time unless one is there already (every replica samples every queue; the first wins) or
-- the queue no longer exists (deleted since its figures were read), and forgets samples older
-- than the window or past the capacity. The sorted set is scored by the interval's start; a
-- member is `<start>|<now>|<the seven figures>`, now being when it was recorded (rates divide by
-- the time between those). The key expires a window and an interval after the last sample.
-- Returns 1 if recorded, 0 if not.
local interval = tonumber(ARGV[3])
local at = now - now % interval
local samples = key(queue, 'samples')
if redis.call('SISMEMBER', indexKey('queues'), queue) == 0 then return 0 end
if #redis.call('ZRANGEBYSCORE', samples, at, at, 'LIMIT', 0, 1) > 0 then return 0 end
redis.call('ZADD', samples, at, table.concat({ at, now, ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10] }, '|'))
redis.call('ZREMRANGEBYSCORE', samples, '-inf', now - {{historyWindowMs}})
redis.call('ZREMRANGEBYRANK', samples, 0, -{{historyCapacity}} - 1)
redis.call('PEXPIRE', samples, {{historyWindowMs}} + interval)
return 1
