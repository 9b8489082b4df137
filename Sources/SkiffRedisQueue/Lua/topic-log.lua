-- Redis Cluster. With ARGV[3] = '': takes for one sweep, oldest first, at most ARGV[5] log entries
-- of any topic appended at least ARGV[4] ms ago and not yet forwarded everywhere, as
-- "<topic>|<entry id>", and puts them back ARGV[6] ms later in the order, so that other
-- sweeps take the next ones meanwhile and an entry that keeps failing does not hold up the rest.
-- With ARGV[3] = a topic, reads only: the entry ARGV[6] of it, {targets still to copy, the entry}.
if topic == '' then
  local grace, claim = tonumber(ARGV[4]), tonumber(ARGV[6])
  local due = redis.call('ZRANGEBYSCORE', indexKey('topic-log'), '-inf', now - grace, 'LIMIT', 0, tonumber(ARGV[5]))
  for _, member in ipairs(due) do redis.call('ZADD', indexKey('topic-log'), 'XX', now - grace + claim, member) end
  return due
end
local id = ARGV[6]
return { redis.call('SMEMBERS', topicKey('todo:' .. id)), redis.call('LRANGE', topicKey('log:' .. id), 0, -1) }
