local s = settings(queue)
local oldest = nil
for p = 0, 9 do
  local head = redis.call('LINDEX', readyKey(queue, p), 0)
  if head then
    local enq = tonumber(string.match(head, '^%d|%d+|[^|]+|(%d+)|'))
    if not oldest or enq < oldest then oldest = enq end
  end
end
local out = { readyDepth(queue), redis.call('HLEN', key(queue, 'inflight')), redis.call('ZCARD', key(queue, 'delayed')),
              readyDepth(s.dlq), oldest and (now - oldest) or -1 }
local fields = { {{counterFields}} }
local totals = redis.call('HMGET', key(queue, 'stats'), unpack(fields))
for i = 1, #fields do out[#out + 1] = tonumber(totals[i]) or 0 end
local current = math.floor(now / 10000)
local minute = {}
for i = 1, #fields do minute[i] = 0 end
for b = current - 6, current - 1 do
  local values = redis.call('HMGET', key(queue, 'rate:' .. b), unpack(fields))
  for i = 1, #fields do minute[i] = minute[i] + (tonumber(values[i]) or 0) end
end
for i = 1, #fields do out[#out + 1] = minute[i] end
return out
