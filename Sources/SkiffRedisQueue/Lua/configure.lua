if not mayCreate(queue, tonumber(ARGV[3])) then return -3 end
redis.call('DEL', key(queue, 'config'))
for i = 4, #ARGV - 1, 2 do redis.call('HSET', key(queue, 'config'), ARGV[i], ARGV[i + 1]) end
redis.call('SADD', indexKey('queues'), queue)
-- The retention may have shrunk: look at the queue's heads at the next sweep.
redis.call('ZADD', indexKey('retention-index'), now, queue)
return 1
