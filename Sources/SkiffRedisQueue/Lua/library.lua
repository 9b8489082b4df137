-- Shared by every queue script (RedisQueueScripts.swift prepends it): keys, time, envelopes,
-- settings, counters, requeue, dead-lettering. The double-braced names are filled in from the
-- Swift defaults (QueueSettings) when the scripts load.
local prefix, queue = ARGV[1], ARGV[2]
-- On a Redis Cluster (KEYS[2] is given) a script may touch one hash slot only. A queue, its
-- dead-letter queue (`<q>-dlq`) and theirs share a family, the name without its `-dlq` suffixes,
-- and the family is the hash tag of all their keys; the indexes of the slot (queue set, lease,
-- delay and retention indexes) are under KEYS[2], a tag of that same slot. On a single Redis the
-- queue name is the tag and the indexes are global, as they always were. KEYS[1] only routes.
local clustered = KEYS[2] ~= nil
local indexBase = KEYS[2] or prefix
-- The family: the name cut where the default dead-letter name cuts it (124 characters), then
-- stripped of any trailing `-dlq` and of any trailing piece of one (`-dl`, `-d`, `-`, which the
-- cut may leave), so that `<q>-dlq`, its own `-dlq` and so on share `q`'s slot whatever `q`'s
-- length. A name that strips to nothing is family `_`. Partition p of a queue (`<q>~p`) and of
-- its dead-letter queues are family `<family of q>~p`: a slot of their own, shared by them.
-- RedisQueueKeys.family is the same.
local family
family = function(q)
  local base, part = string.match(q, '^([^~]+)(~%d+)$')
  if base then return family(base) .. part end
  local name = string.sub(q, 1, {{dlqPrefixLength}})
  while true do
    if #name >= 4 and string.sub(name, -4) == '-dlq' then name = string.sub(name, 1, -5)
    elseif #name >= 3 and string.sub(name, -3) == '-dl' then name = string.sub(name, 1, -4)
    elseif #name >= 2 and string.sub(name, -2) == '-d' then name = string.sub(name, 1, -3)
    elseif #name >= 1 and string.sub(name, -1) == '-' then name = string.sub(name, 1, -2)
    else break end
  end
  if name == '' then return '_' end
  return name
end
-- The default dead-letter queue: `<q>-dlq` (q cut to fit), for a partition the same partition of
-- its queue's. QueueSettings.deadLetterQueue(of:) is the same.
local function defaultDeadLetterQueue(q)
  local base, part = string.match(q, '^([^~]+)(~%d+)$')
  if base then return string.sub(base, 1, {{dlqPrefixLength}}) .. '-dlq' .. part end
  return string.sub(q, 1, {{dlqPrefixLength}}) .. '-dlq'
end
local queueFamily = clustered and queue ~= '' and family(queue)
local function key(q, suffix)
  if clustered then
    local f = family(q)
    -- Never another slot: a script on a queue reaches its own family only (a dead-letter queue
    -- outside it is refused when configured; this catches any other way there).
    if queueFamily and f ~= queueFamily then error('skiff: ' .. q .. ' is outside the hash slot of ' .. queue) end
    return prefix .. ':{' .. f .. '}:' .. q .. ':' .. suffix
  end
  return prefix .. ':{' .. q .. '}:' .. suffix
end
local function indexKey(name) return indexBase .. ':' .. name end
local function readyKey(q, priority)
  if priority == 0 then return key(q, 'ready') end
  return key(q, 'ready:' .. priority)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- `now` as text, made once: Redis turns a number given to a command into text with a
-- floating-point format, which costs more than most commands on the hot path.
local nowText = string.format('%d', now)

local function parse(e)
  local seq, id, enq, priority, count, claims, first, last, rest =
    string.match(e, '^2|(%d+)|([^|]+)|(%d+)|(%d)|(%d+)|(%d+)|(%d+)|(%d+)|()')
  if seq then
    return { seq = tonumber(seq), id = id, enq = tonumber(enq), priority = tonumber(priority), count = tonumber(count),
             claims = tonumber(claims), first = tonumber(first), last = tonumber(last), body = string.sub(e, rest) }
  end
  -- Version 3 carries the producer's trace context, its length first, then the body.
  local length
  seq, id, enq, priority, count, claims, first, last, length, rest =
    string.match(e, '^3|(%d+)|([^|]+)|(%d+)|(%d)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|()')
  if seq then
    local bodyStart = rest + tonumber(length)
    return { seq = tonumber(seq), id = id, enq = tonumber(enq), priority = tonumber(priority), count = tonumber(count),
             claims = tonumber(claims), first = tonumber(first), last = tonumber(last),
             trace = string.sub(e, rest, bodyStart - 1), body = string.sub(e, bodyStart) }
  end
  seq, id, enq, count, claims, rest = string.match(e, '^1|(%d+)|([^|]+)|(%d+)|(%d+)|(%d+)|()')
  return { seq = tonumber(seq), id = id, enq = tonumber(enq), priority = 0, count = tonumber(count),
           claims = tonumber(claims), first = 0, last = 0, body = string.sub(e, rest) }
end
-- The version and fields of an envelope up to its body: 2 without a trace context, 3 with one.
local function envelopeHead(seqFormat, m)
  if m.trace then
    return string.format('3|' .. seqFormat .. '|%s|%d|%d|%d|%d|%d|%d|%d|', m.seq, m.id, m.enq, m.priority, m.count, m.claims, m.first,
      m.last, #m.trace) .. m.trace
  end
  return string.format('2|' .. seqFormat .. '|%s|%d|%d|%d|%d|%d|%d|', m.seq, m.id, m.enq, m.priority, m.count, m.claims, m.first, m.last)
end
local function build(m)
  return envelopeHead('%d', m) .. m.body
end
-- In the delayed set, messages due at the same time are ordered by their text: there the
-- sequence number is zero-padded to 16 digits so that 100 sorts after 99.
local function buildDelayed(m)
  return envelopeHead('%016d', m) .. m.body
end

local function settings(q)
  local c = redis.call('HMGET', key(q, 'config'), 'visibilityTimeoutMs', 'maxReceiveCount', 'deadLetterQueue',
    'retryBackoffBaseMs', 'retryBackoffCapMs', 'retentionMs', 'delayMs', 'maxDepth', 'dedupWindowMs')
  local dlq = defaultDeadLetterQueue(q)
  -- On a cluster a dead-letter queue outside the family cannot be configured; one stored before
  -- (data from a single Redis) acts as the default, so no script ever reaches another slot.
  if c[3] and not (clustered and family(c[3]) ~= family(q)) then dlq = c[3] end
  return {
    -- At least the floor a receive has: one stored before that floor existed is raised to it.
    visibility = math.max(tonumber(c[1]) or {{visibilityTimeoutMs}}, {{minimumVisibilityMs}}),
    maxReceive = tonumber(c[2]),
    dlq = dlq,
    backoffBase = tonumber(c[4]) or {{retryBackoffBaseMs}},
    backoffCap = tonumber(c[5]) or {{retryBackoffCapMs}},
    retention = tonumber(c[6]) or {{retentionMs}},
    delay = tonumber(c[7]) or {{delayMs}},
    maxDepth = tonumber(c[8]),
    dedupWindow = tonumber(c[9]) or {{dedupWindowMs}},
  }
end

-- Totals, plus 10-second buckets for the last-minute figures.
local bucketSuffix = 'rate:' .. string.format('%d', math.floor(now / 10000))
local function count(q, field, n)
  if n == 0 then return end
  local amount = string.format('%d', n)
  redis.call('HINCRBY', key(q, 'stats'), field, amount)
  local bucket = key(q, bucketSuffix)
  redis.call('HINCRBY', bucket, field, amount)
  redis.call('PEXPIRE', bucket, '80000')
end

-- A wake-up for the queue's waiters. On a cluster, sharded pub/sub (Redis 7): the channel is in the
-- queue's family, so in this script's slot, and SPUBLISH keeps the message on this shard (the
-- subscribers SSUBSCRIBE at the slot's primary) where PUBLISH would cross the whole cluster bus.
local publish = clustered and 'SPUBLISH' or 'PUBLISH'
local function notify(q) redis.call(publish, key(q, 'notify'), '1') end

-- Whether queue q may be used: it exists, or there is room for one more (`maximum`).
local function mayCreate(q, maximum)
  return redis.call('SISMEMBER', indexKey('queues'), q) == 1 or redis.call('SCARD', indexKey('queues')) < maximum
end

local function readyDepth(q)
  local n = 0
  for p = 0, 9 do n = n + redis.call('LLEN', readyKey(q, p)) end
  return n
end

-- Messages in the queue in any state: what `maxDepth` bounds.
local function depth(q)
  return readyDepth(q) + redis.call('ZCARD', key(q, 'delayed')) + redis.call('HLEN', key(q, 'inflight'))
end

-- Earliest possible retention expiry of the queue: the sweep looks at it then.
local function indexRetention(q, enqueuedAt, retention)
  redis.call('ZADD', indexKey('retention-index'), 'LT', enqueuedAt + retention, q)
end

-- The sequence numbers of the returned messages at the head of one priority's ready list,
-- in list order: where the next return goes, without reading the list's messages.
local function returnedKey(q, priority) return key(q, 'returned:' .. priority) end

-- A message left the head of its ready list (claimed, expired, redriven).
local function leftHead(q, m)
  if m.claims > 0 then redis.call('ZREM', returnedKey(q, m.priority), m.seq) end
end

-- Back at the head of its priority, after messages put back earlier that were enqueued
-- before it, so separate returns keep their original order. O(log n) to find the place
-- and one element read, whatever the depth of the queue and the size of its messages.
local function requeue(q, m)
  local k, returned = readyKey(q, m.priority), returnedKey(q, m.priority)
  local envelope = build(m)
  local position = redis.call('ZCOUNT', returned, '-inf', '(' .. m.seq)
  local pivot = position > 0 and redis.call('LINDEX', k, position - 1)
  if pivot then
    redis.call('LINSERT', k, 'AFTER', pivot, envelope)
  else
    -- Nothing returned before it (or an index older than the list: start it again).
    if position > 0 then redis.call('DEL', returned) end
    redis.call('LPUSH', k, envelope)
  end
  redis.call('ZADD', returned, m.seq, m.seq)
end

-- Messages whose bodies are in the payload store have ids whose first character is one of
-- G H J K M N P Q, or R S T V W X Y Z for an object topic copies share (MessageID.isOffloaded). Each queue keeps their ids in a set, `offloaded`, so
-- that what removes many messages at once (purge, delete) can tell which stored bodies to delete;
-- those ids, and those of expired messages, go to the slot's payload graveyard in the same step as
-- the messages, and the replicas delete the objects from there (never before the messages). The
-- graveyard keeps the newest {{graveyardCapacity}}: past that, older ones are left to the sweep.
local function isOffloaded(id) return string.find('GHJKMNPQRSTVWXYZ', string.sub(id, 1, 1), 1, true) ~= nil end
local function holdOffloaded(q, id)
  if isOffloaded(id) then redis.call('SADD', key(q, 'offloaded'), id) end
end
local function bury(ids)
  if #ids == 0 then return end
  local graveyard = indexKey('payload-graveyard')
  for start = 1, #ids, 500 do redis.call('RPUSH', graveyard, unpack(ids, start, math.min(start + 499, #ids))) end
  redis.call('LTRIM', graveyard, -{{graveyardCapacity}}, -1)
end

-- Stores new messages (lists of ids and bodies) at the tail of q's priority, or delayed; wakes,
-- indexes, registers and counts. One INCRBY and one RPUSH (or ZADD) per 500 messages. `trace`
-- (or nil) is the producer's trace context, kept in each envelope (version 3).
local function store(q, s, ids, bodies, priority, delay, trace)
  local n = #ids
  local firstSeq = redis.call('INCRBY', key(q, 'seq'), n) - n + 1
  local version, header = '2|', string.format('|%d|%d|0|0|0|0|', now, priority)
  if trace then version, header = '3|', header .. #trace .. '|' .. trace end
  local chunk = {}
  for i = 1, n do
    if delay > 0 then
      chunk[#chunk + 1] = now + delay
      chunk[#chunk + 1] = version .. string.format('%016d', firstSeq + i - 1) .. '|' .. ids[i] .. header .. bodies[i]
    else
      chunk[#chunk + 1] = version .. string.format('%d', firstSeq + i - 1) .. '|' .. ids[i] .. header .. bodies[i]
    end
    if #chunk >= 1000 or i == n then
      if delay > 0 then
        redis.call('ZADD', key(q, 'delayed'), unpack(chunk))
      else
        redis.call('RPUSH', readyKey(q, priority), unpack(chunk))
      end
      chunk = {}
    end
  end
  if delay > 0 then
    redis.call('ZADD', indexKey('delay-index'), 'LT', now + delay, q)
  else
    indexRetention(q, now, s.retention)
    notify(q)
  end
  redis.call('SADD', indexKey('queues'), q)
  for i = 1, n do holdOffloaded(q, ids[i]) end
  count(q, 'enqueued', n)
end

-- A message left q: its nack reason, dead-letter history and place in the offloaded set go.
local function forget(q, id)
  redis.call('HDEL', key(q, 'errors'), id)
  redis.call('HDEL', key(q, 'history'), id)
  if isOffloaded(id) then redis.call('SREM', key(q, 'offloaded'), id) end
end

-- A message q deleted for good without a consumer's ack (expiry): forgotten, its body buried.
local function expired(q, id)
  forget(q, id)
  if isOffloaded(id) then bury({ id }) end
end

-- Moves a message (already out of its source state) to the tail of the dead-letter queue.
local function deadLetter(q, s, m)
  local target = s.dlq
  local reason = redis.call('HGET', key(q, 'errors'), m.id) or ''
  forget(q, m.id)
  local history = q .. '|' .. m.count .. '|' .. m.first .. '|' .. m.last .. '|' .. reason
  m.seq = redis.call('INCR', key(target, 'seq'))
  m.enq, m.count, m.first, m.last = now, 0, 0, 0
  redis.call('RPUSH', readyKey(target, m.priority), build(m))
  redis.call('HSET', key(target, 'history'), m.id, history)
  holdOffloaded(target, m.id)
  -- On a cluster a queue is counted in a global registry no script here can reach: a new
  -- dead-letter queue waits in its slot's `unregistered` set for the next maintenance round.
  if redis.call('SADD', indexKey('queues'), target) == 1 and clustered then redis.call('SADD', indexKey('unregistered'), target) end
  indexRetention(target, now, settings(target).retention)
  count(q, 'deadLettered', 1)
  count(target, 'enqueued', 1)
  notify(target)
end

-- A receive that failed (nack, visibility 0, expired lease): dead letter, delayed retry or
-- back at the head. The message is already out of the in-flight state.
local function failed(q, s, m, delay)
  if now - m.enq >= s.retention then
    expired(q, m.id)
    count(q, 'expired', 1)
  elseif s.maxReceive and m.count >= s.maxReceive then
    deadLetter(q, s, m)
  else
    count(q, 'retried', 1)
    if delay > 0 then
      -- Never later than its retention allows: it expires on time, not after the delay.
      local due = math.min(now + delay, m.enq + s.retention)
      redis.call('ZADD', key(q, 'delayed'), due, buildDelayed(m))
      redis.call('ZADD', indexKey('delay-index'), 'LT', due, q)
    else
      requeue(q, m)
      notify(q)
    end
  end
end

-- The in-flight message `id` if `token` still holds its claim: the claim is the latest one
-- and its lease has not ended (whether or not a sweep has returned it yet).
local function heldClaim(q, id, token)
  local envelope = redis.call('HGET', key(q, 'inflight'), id)
  if not envelope then return nil end
  local m = parse(envelope)
  if m.claims ~= tonumber(token) then return nil end
  local expiry = tonumber(redis.call('ZSCORE', key(q, 'leases'), id))
  if not expiry or expiry <= now then return nil end
  return m
end

-- The claim token (the claims field) of an in-flight envelope as its text, read without copying
-- its body. Both it and a receipt's token are written as plain integers (`%d`; the Swift side's
-- Int64), so equal tokens are equal texts and no number is parsed.
local function claimsOf(e)
  return string.match(e, '^[23]|%d+|[^|]+|%d+|%d|%d+|(%d+)|') or string.match(e, '^1|%d+|[^|]+|%d+|%d+|(%d+)|')
end

-- Lua's unpack holds at most a few thousand values: commands taking many arguments go in pages.
local page = 500

-- heldClaim for every (id, token) pair in ARGV from index `first` on: the in-flight envelope
-- where the token still holds the claim, false where not, in the pairs' order; and how many pairs.
-- One HMGET and one ZMSCORE per page of pairs, not two commands each: a batch of acks is cheap.
local function heldClaims(q, first)
  local n = math.floor((#ARGV - first + 1) / 2)
  local out = {}
  for start = 0, n - 1, page do
    local stop = math.min(start + page, n) - 1
    local ids = {}
    for j = start, stop do ids[#ids + 1] = ARGV[first + 2 * j] end
    local envelopes = redis.call('HMGET', key(q, 'inflight'), unpack(ids))
    local expiries = redis.call('ZMSCORE', key(q, 'leases'), unpack(ids))
    for j = start, stop do
      local e, expiry = envelopes[j - start + 1], tonumber(expiries[j - start + 1])
      out[j + 1] = (e and expiry and expiry > now and claimsOf(e) == ARGV[first + 2 * j + 1]) and e or false
    end
  end
  return out, n
end

-- takeClaim for every pair, as heldClaims: the envelopes taken (false where the pair does not
-- hold its claim, or repeats one taken already), how many pairs, and the ids taken.
local function takeClaims(q, first)
  local held, n = heldClaims(q, first)
  local taken, seen = {}, {}
  for j = 1, n do
    local id = ARGV[first + 2 * (j - 1)]
    if held[j] and not seen[id] then
      seen[id] = true
      taken[#taken + 1] = id
    else
      held[j] = false
    end
  end
  for start = 1, #taken, page do
    local stop = math.min(start + page - 1, #taken)
    redis.call('HDEL', key(q, 'inflight'), unpack(taken, start, stop))
    redis.call('ZREM', key(q, 'leases'), unpack(taken, start, stop))
  end
  return held, n, taken
end

-- forget for many ids: a hash or set the queue never had costs one EXISTS, not a command per
-- message.
local function forgetAll(q, ids)
  if #ids == 0 then return end
  for _, suffix in ipairs({ 'errors', 'history', 'offloaded' }) do
    if redis.call('EXISTS', key(q, suffix)) == 1 then
      local remove = suffix == 'offloaded' and 'SREM' or 'HDEL'
      for start = 1, #ids, page do
        redis.call(remove, key(q, suffix), unpack(ids, start, math.min(start + page - 1, #ids)))
      end
    end
  end
end

-- Takes a claim out of the in-flight state if `token` still holds it.
local function takeClaim(q, id, token)
  local m = heldClaim(q, id, token)
  if not m then return nil end
  redis.call('HDEL', key(q, 'inflight'), id)
  redis.call('ZREM', key(q, 'leases'), id)
  return m
end

-- Sets queue q's score in a global index to the earliest score in its sorted set `suffix`,
-- or removes q from the index when that set is empty.
local function reindex(index, q, suffix)
  local first = redis.call('ZRANGE', key(q, suffix), 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('ZREM', indexKey(index), q)
  else
    redis.call('ZADD', indexKey(index), first[2], q)
  end
end

-- Delayed messages whose time has come become ready: never-received ones at the tail,
-- retries back at the head. Returns how many.
-- Bounded per run by count and by bytes (read in pages of 16, so one page of the largest
-- messages is what a run holds at once). Returns how many moved and whether more are due:
-- the rest stays in the delay index, already due, for the next run.
local function promote(q, s)
  local moved, bytes, more = 0, 0, false
  while true do
    if moved >= 1000 or bytes >= 4194304 then more = true break end
    local page = math.min(16, 1000 - moved)
    local due = redis.call('ZRANGEBYSCORE', key(q, 'delayed'), '-inf', now, 'LIMIT', 0, page)
    for _, envelope in ipairs(due) do
      redis.call('ZREM', key(q, 'delayed'), envelope)
      local m = parse(envelope)
      if m.count > 0 or m.claims > 0 then requeue(q, m) else redis.call('RPUSH', readyKey(q, m.priority), build(m)) end
      indexRetention(q, m.enq, s.retention)
      bytes = bytes + #envelope
    end
    moved = moved + #due
    if #due < page then break end
  end
  if moved > 0 then
    reindex('delay-index', q, 'delayed')
    notify(q)
  end
  return moved, more
end
