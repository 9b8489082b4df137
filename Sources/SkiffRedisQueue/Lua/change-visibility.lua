if not heldClaim(queue, ARGV[3], ARGV[4]) then return 0 end
local timeout = tonumber(ARGV[5])
if timeout == 0 then
  failed(queue, settings(queue), takeClaim(queue, ARGV[3], ARGV[4]), 0)
else
  redis.call('ZADD', key(queue, 'leases'), now + timeout, ARGV[3])
  redis.call('ZADD', indexKey('lease-index'), 'LT', now + timeout, queue)
end
return 1
