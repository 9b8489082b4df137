return redis.call('ZRANGEBYSCORE', indexKey(ARGV[3]), '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
