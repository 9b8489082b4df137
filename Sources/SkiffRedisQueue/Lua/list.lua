local page = redis.call('SSCAN', indexKey('queues'), ARGV[3], 'COUNT', tonumber(ARGV[4]))
local out = { page[1] }
for _, q in ipairs(page[2]) do
  out[#out + 1] = q
  out[#out + 1] = readyDepth(q)
  out[#out + 1] = redis.call('HLEN', key(q, 'inflight'))
  out[#out + 1] = redis.call('ZCARD', key(q, 'delayed'))
end
return out
