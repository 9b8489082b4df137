return redis.call('ZRANGEBYSCORE', prefix .. ':' .. ARGV[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
