local m = takeClaim(queue, ARGV[3], ARGV[4])
if not m then return 0 end
local s = settings(queue)
if ARGV[7] == '1' then redis.call('HSET', key(queue, 'errors'), m.id, ARGV[8]) end
local delay = tonumber(ARGV[5])
if not delay then
  local backoff = math.min(s.backoffBase * math.pow(2, math.min(math.max(m.count - 1, 0), 40)), s.backoffCap)
  delay = math.floor(backoff / 2 + backoff / 2 * tonumber(ARGV[6]))
end
failed(queue, s, m, delay)
return 1
