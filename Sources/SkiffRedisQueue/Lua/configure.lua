if not mayCreate(queue, tonumber(ARGV[3])) then return -3 end
-- The partition count can only grow, checked here where it is stored, so that two concurrent
-- changes cannot lower it (a message would be left in a partition nobody reads).
local current = tonumber(redis.call('HGET', key(queue, 'config'), 'partitions')) or 1
local wanted = 1
for i = 4, #ARGV - 1, 2 do if ARGV[i] == 'partitions' then wanted = tonumber(ARGV[i + 1]) end end
if wanted < current then return -4 - current end
redis.call('DEL', key(queue, 'config'))
for i = 4, #ARGV - 1, 2 do redis.call('HSET', key(queue, 'config'), ARGV[i], ARGV[i + 1]) end
redis.call('SADD', indexKey('queues'), queue)
-- The retention may have shrunk: look at the queue's heads at the next sweep.
redis.call('ZADD', indexKey('retention-index'), now, queue)
return 1
