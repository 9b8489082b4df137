-- Redis Cluster, reads only: the log entries of every topic appended at least ARGV[4] ms ago and
-- not yet forwarded everywhere, at most ARGV[5] of them, oldest first, as "<topic>|<entry id>";
-- or, when ARGV[3] names a topic, the entry ARGV[6] of it: {targets still to copy, the entry}.
if topic == '' then
  return redis.call('ZRANGEBYSCORE', indexKey('topic-log'), '-inf', now - tonumber(ARGV[4]), 'LIMIT', 0, tonumber(ARGV[5]))
end
local id = ARGV[6]
return { redis.call('SMEMBERS', topicKey('todo:' .. id)), redis.call('LRANGE', topicKey('log:' .. id), 0, -1) }
