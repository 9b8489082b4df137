local s = settings(queue)
local limit = tonumber(ARGV[3])
local removed = 0
local nextExpiry = nil
local more = false
for p = 0, 9 do
  local k = readyKey(queue, p)
  while true do
    if removed >= limit then
      more = true
      break
    end
    local head = redis.call('LINDEX', k, 0)
    if not head then break end
    local enq = tonumber(string.match(head, '^[23]|%d+|[^|]+|(%d+)|') or string.match(head, '^1|%d+|[^|]+|(%d+)|'))
    if now - enq < s.retention then
      if not nextExpiry or enq + s.retention < nextExpiry then nextExpiry = enq + s.retention end
      break
    end
    redis.call('LPOP', k)
    redis.call('ZREM', returnedKey(queue, p), string.match(head, '^%d|(%d+)|'))
    expired(queue, string.match(head, '^%d|%d+|([^|]+)|'))
    removed = removed + 1
  end
end
count(queue, 'expired', removed)
if more then
  -- Stopped at the limit: still due, the sweep runs this again at once.
  redis.call('ZADD', indexKey('retention-index'), now, queue)
elseif nextExpiry then
  redis.call('ZADD', indexKey('retention-index'), nextExpiry, queue)
else
  redis.call('ZREM', indexKey('retention-index'), queue)
end
return { removed, more and 1 or 0 }
