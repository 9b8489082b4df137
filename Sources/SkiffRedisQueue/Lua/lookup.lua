-- Reads only: the message ARGV[3] (an id) of the queue, wherever it is. In flight it is found at
-- once (the inflight hash is keyed by id); delayed and then ready messages (priority 9 to 0) are
-- read a page at a time, stopping after ARGV[4] envelopes or ARGV[5] bytes, so a lookup stays a
-- short script whatever the queue. Returns {state, envelope, last nack reason or '', dead-letter
-- history or ''} when found ('inFlight', 'delayed' or 'ready'), else {'', 1 if everything was read}.
local id, budget, byteBudget = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local function found(state, envelope)
  return { state, envelope, redis.call('HGET', key(queue, 'errors'), id) or '',
           redis.call('HGET', key(queue, 'history'), id) or '' }
end
local inflight = redis.call('HGET', key(queue, 'inflight'), id)
if inflight then return found('inFlight', inflight) end
-- The id is the third field of an envelope, within its first 64 bytes (version, a sequence number
-- of at most 16 digits, the 26-character id): a plain find there, then a parse to be sure.
local needle = '|' .. id .. '|'
local function holds(envelope) return string.find(string.sub(envelope, 1, 64), needle, 1, true) and parse(envelope).id == id end
local looked, bytes = 0, 0
local function exhausted() return looked >= budget or bytes >= byteBudget end
local at = 0
while not exhausted() do
  local page = redis.call('ZRANGE', key(queue, 'delayed'), at, at + 63)
  if #page == 0 then break end
  at = at + #page
  for _, envelope in ipairs(page) do
    looked, bytes = looked + 1, bytes + #envelope
    if holds(envelope) then return found('delayed', envelope) end
  end
end
for priority = 9, 0, -1 do
  local list
  list, at = readyKey(queue, priority), 0
  while not exhausted() do
    local page = redis.call('LRANGE', list, at, at + 63)
    if #page == 0 then break end
    at = at + #page
    for _, envelope in ipairs(page) do
      looked, bytes = looked + 1, bytes + #envelope
      if holds(envelope) then return found('ready', envelope) end
    end
  end
  if exhausted() then break end
end
-- Everything was read unless a bound stopped the search with messages left.
local total = redis.call('ZCARD', key(queue, 'delayed')) + readyDepth(queue)
return { '', looked >= total and 1 or 0 }
