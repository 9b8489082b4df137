-- Reads only: the first ARGV[3] ready messages of the queue in the order claims take them
-- (priority 9 to 0, oldest first), leaving out those past retention, as {envelope, last nack
-- reason or '', dead-letter history or '', ...}. Stops before a message that would take the
-- bodies past ARGV[4] bytes (one message always fits), and after looking at 1000 envelopes
-- (expired ones the sweep has not removed yet): a peek stays a short script whatever the queue.
-- Nothing is promoted, expired, counted or claimed.
local s = settings(queue)
local limit, byteLimit = tonumber(ARGV[3]), tonumber(ARGV[4])
local hasErrors = redis.call('EXISTS', key(queue, 'errors')) == 1
local hasHistory = redis.call('EXISTS', key(queue, 'history')) == 1
local out, taken, bytes, looked, full = {}, 0, 0, 0, false
for priority = 9, 0, -1 do
  local list, at = readyKey(queue, priority), 0
  while taken < limit and not full and looked < 1000 do
    local page = redis.call('LRANGE', list, at, at + math.min(16, limit - taken) - 1)
    if #page == 0 then break end
    at = at + #page
    for _, envelope in ipairs(page) do
      looked = looked + 1
      local m = parse(envelope)
      if now - m.enq < s.retention then
        if taken > 0 and bytes + #m.body > byteLimit then
          full = true
          break
        end
        taken, bytes = taken + 1, bytes + #m.body
        out[#out + 1] = envelope
        out[#out + 1] = hasErrors and redis.call('HGET', key(queue, 'errors'), m.id) or ''
        out[#out + 1] = hasHistory and redis.call('HGET', key(queue, 'history'), m.id) or ''
      end
    end
  end
  if taken >= limit or full or looked >= 1000 then break end
end
return out
