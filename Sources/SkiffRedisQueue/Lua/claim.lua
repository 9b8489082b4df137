local s = settings(queue)
promote(queue, s)
local byteLimit = tonumber(ARGV[3])
local wanted = #ARGV - 3
-- Most queues never had a nack reason or a dead letter: skip two lookups per message then.
local hasErrors = redis.call('EXISTS', key(queue, 'errors')) == 1
local hasHistory = redis.call('EXISTS', key(queue, 'history')) == 1
local out = {}
local claimed = 0
local earliest = nil
-- One LMPOP takes from the highest non-empty priority, instead of an LPOP per priority:
-- a queue that never used priorities (or is empty) costs one command, not ten.
-- (`unpack` must come last in a call to expand fully: the arguments are one table.)
local pop = { 10 }
for priority = 9, 0, -1 do pop[#pop + 1] = readyKey(queue, priority) end
pop[12], pop[13] = 'LEFT', 'COUNT'
local bytes, stopped = 0, false
-- The claims are written one HSET and one ZADD per page of messages, not two commands each.
local inflight, leases = {}, {}
-- The lease asked for (ARGV text, '' for the queue's) -> { ms, its expiry as text }: one
-- conversion per distinct lease, not one per message.
local leaseOf = {}
local function leaseFor(text)
  local known = leaseOf[text or '']
  if not known then
    local lease = tonumber(text) or s.visibility
    known = { lease, string.format('%d', now + lease) }
    leaseOf[text or ''] = known
  end
  return known
end
local function flush()
  if #inflight == 0 then return end
  redis.call('HSET', key(queue, 'inflight'), unpack(inflight))
  redis.call('ZADD', key(queue, 'leases'), unpack(leases))
  inflight, leases = {}, {}
end
while claimed < wanted and not stopped do
  -- Under a byte limit at most 16 at a time: Redis never holds more than the limit and 16
  -- messages, and what stops the claim goes back untouched.
  pop[14] = byteLimit > 0 and math.min(16, wanted - claimed) or wanted - claimed
  local popped = redis.call('LMPOP', unpack(pop))
  if not popped then break end
  for index, envelope in ipairs(popped[2]) do
    if byteLimit > 0 and claimed > 0 and bytes + #envelope > byteLimit then
      -- This one and the rest of the pop go back to the head untouched, in their order.
      local back = {}
      for i = #popped[2], index, -1 do back[#back + 1] = popped[2][i] end
      redis.call('LPUSH', popped[1], unpack(back))
      stopped = true
      break
    end
    -- A message never claimed before (the claims field 0), neither expired nor over its receive
    -- count: what nearly every claim takes. Its envelope is rewritten from the text, without a
    -- table or a number printed (counts and claims stay exact: Lua prints integers below 1e14 as
    -- integers). Any other message is parsed whole.
    local head, id, enq, receives, claims, first, rest =
      string.match(envelope, '^([23]|%d+|([^|]+)|(%d+)|%d|)(%d+)|(%d+)|(%d+)|%d+|()')
    local updated
    if head and claims == '0' and now - enq < s.retention and not (s.maxReceive and tonumber(receives) >= s.maxReceive) then
      updated = head .. (receives + 1) .. '|1|' .. (first == '0' and nowText or first) .. '|' .. nowText .. '|' .. string.sub(envelope, rest)
    else
      local m = parse(envelope)
      id = m.id
      leftHead(queue, m)
      -- Claims so far are written before a message takes another way (expiry, dead letter), so a
      -- script that fails there leaves them in flight, coming back after their lease.
      if now - m.enq >= s.retention or (s.maxReceive and m.count >= s.maxReceive) then flush() end
      if now - m.enq >= s.retention then
        expired(queue, m.id)
        count(queue, 'expired', 1)
      elseif s.maxReceive and m.count >= s.maxReceive then
        deadLetter(queue, s, m)
      else
        m.count, m.claims, m.last = m.count + 1, m.claims + 1, now
        if m.first == 0 then m.first = now end
        updated = build(m)
      end
    end
    if updated then
      claimed = claimed + 1
      bytes = bytes + #envelope
      local lease = leaseFor(ARGV[3 + claimed])
      local k = #inflight
      inflight[k + 1], inflight[k + 2] = id, updated
      leases[k + 1], leases[k + 2] = lease[2], id
      if k + 2 >= 2 * page then flush() end
      if not earliest or now + lease[1] < earliest then earliest = now + lease[1] end
      local n = #out
      out[n + 1] = updated
      out[n + 2] = hasErrors and redis.call('HGET', key(queue, 'errors'), id)
      out[n + 3] = hasHistory and redis.call('HGET', key(queue, 'history'), id)
      out[n + 4] = lease[1]
    end
  end
end
flush()
if earliest then redis.call('ZADD', indexKey('lease-index'), 'LT', earliest, queue) end
count(queue, 'delivered', claimed)
out[#out + 1] = stopped and 1 or 0
return out
