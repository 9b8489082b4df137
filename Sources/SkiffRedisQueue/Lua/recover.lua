local s = settings(queue)
local limit, budget = tonumber(ARGV[3]), tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', key(queue, 'leases'), '-inf', now, 'LIMIT', 0, limit + 1)
local entries, bytes, taken = {}, 0, 0
for _, id in ipairs(ids) do
  if taken >= limit or bytes >= budget then break end
  taken = taken + 1
  local envelope = redis.call('HGET', key(queue, 'inflight'), id)
  if envelope then
    entries[#entries + 1] = parse(envelope)
    bytes = bytes + #envelope
  end
  redis.call('HDEL', key(queue, 'inflight'), id)
  redis.call('ZREM', key(queue, 'leases'), id)
end
table.sort(entries, function(a, b) return a.seq < b.seq end)
for _, m in ipairs(entries) do failed(queue, s, m, 0) end
reindex('lease-index', queue, 'leases')
return { #entries, taken < #ids and 1 or 0 }
