-- Reads only: the message ARGV[3] (an id) of the queue, wherever it is. In flight it is found at
-- once (the inflight hash is keyed by id); ready messages (in receive order: priority 9 to 0,
-- oldest first) and then delayed ones are read 16 at a time, stopping after ARGV[4] envelopes or
-- ARGV[5] bytes (a page may pass it by 15 envelopes' bytes), so a lookup stays a short script
-- whatever the queue. A ready message past retention is as good as expired and not found (a peek
-- leaves it out too). Returns {state, envelope, last nack reason or '', dead-letter history or ''}
-- when found ('inFlight', 'ready' or 'delayed'), else {'', 1 if everything was read}.
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
-- The parsed envelope when it is the message's, else nil.
local function holds(envelope)
  if not string.find(string.sub(envelope, 1, 64), needle, 1, true) then return nil end
  local m = parse(envelope)
  if m.id == id then return m end
end
local looked, bytes = 0, 0
local function exhausted() return looked >= budget or bytes >= byteBudget end
-- Reads pages of `list` (a sorted set with ZRANGE, else a list) until the message or a bound.
local function search(state, list, sorted)
  local at = 0
  while not exhausted() do
    local page = redis.call(sorted and 'ZRANGE' or 'LRANGE', list, at, at + 15)
    if #page == 0 then return nil end
    at = at + #page
    for _, envelope in ipairs(page) do
      if exhausted() then return nil end
      looked, bytes = looked + 1, bytes + #envelope
      local m = holds(envelope)
      if m then
        -- Ids are unique in a queue: a ready one past retention is found nowhere else.
        if state == 'ready' and now - m.enq >= settings(queue).retention then return false end
        return found(state, envelope)
      end
    end
  end
end
for priority = 9, 0, -1 do
  local ready = search('ready', readyKey(queue, priority), false)
  if ready == false then return { '', 1 } end
  if ready then return ready end
end
local delayed = search('delayed', key(queue, 'delayed'), true)
if delayed then return delayed end
-- Everything was read unless a bound stopped the search with messages left.
local total = redis.call('ZCARD', key(queue, 'delayed')) + readyDepth(queue)
return { '', looked >= total and 1 or 0 }
