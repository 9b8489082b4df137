import SkiffRedis

/// The Lua scripts behind every state change of a message in Redis (docs/message-lifecycle.md
/// gives the rules, docs/redis-data-model.md the keys). Each runs atomically and reads time from
/// Redis (`TIME`), never from a replica, so replica clock skew cannot move a lease or a due time.
///
/// Every script takes `ARGV[1]` = key prefix and `ARGV[2]` = queue name, and builds key names
/// from them, because a failed receive may write to another queue (the dead-letter queue) named
/// by the stored settings. That needs a standalone Redis (Memorystore Standard), not Redis Cluster.
///
/// A stored message is one string, the envelope:
/// `2|<seq>|<id>|<enqueuedAtMs>|<priority>|<receiveCount>|<claims>|<firstReceiveMs>|<lastReceiveMs>|<body>`.
/// `claims` never goes down, so it identifies one delivery (the claim token in a receipt).
enum RedisQueueScripts {
    private static let defaults = QueueSettings()

    /// Shared definitions: keys, time, envelopes, settings, counters, requeue, dead-lettering.
    static let library = """
        local prefix, queue = ARGV[1], ARGV[2]
        local function key(q, suffix) return prefix .. ':{' .. q .. '}:' .. suffix end
        local function readyKey(q, priority)
          if priority == 0 then return key(q, 'ready') end
          return key(q, 'ready:' .. priority)
        end
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

        local function parse(e)
          local seq, id, enq, priority, count, claims, first, last, rest =
            string.match(e, '^2|(%d+)|([^|]+)|(%d+)|(%d)|(%d+)|(%d+)|(%d+)|(%d+)|()')
          if seq then
            return { seq = tonumber(seq), id = id, enq = tonumber(enq), priority = tonumber(priority), count = tonumber(count),
                     claims = tonumber(claims), first = tonumber(first), last = tonumber(last), body = string.sub(e, rest) }
          end
          seq, id, enq, count, claims, rest = string.match(e, '^1|(%d+)|([^|]+)|(%d+)|(%d+)|(%d+)|()')
          return { seq = tonumber(seq), id = id, enq = tonumber(enq), priority = 0, count = tonumber(count),
                   claims = tonumber(claims), first = 0, last = 0, body = string.sub(e, rest) }
        end
        local function build(m)
          return string.format('2|%d|%s|%d|%d|%d|%d|%d|%d|', m.seq, m.id, m.enq, m.priority, m.count, m.claims, m.first, m.last) .. m.body
        end
        -- In the delayed set, messages due at the same time are ordered by their text: there the
        -- sequence number is zero-padded to 16 digits so that 100 sorts after 99.
        local function buildDelayed(m)
          return string.format('2|%016d|%s|%d|%d|%d|%d|%d|%d|', m.seq, m.id, m.enq, m.priority, m.count, m.claims, m.first, m.last) .. m.body
        end

        local function settings(q)
          local c = redis.call('HMGET', key(q, 'config'), 'visibilityTimeoutMs', 'maxReceiveCount', 'deadLetterQueue',
            'retryBackoffBaseMs', 'retryBackoffCapMs', 'retentionMs', 'delayMs', 'maxDepth', 'dedupWindowMs')
          return {
            visibility = tonumber(c[1]) or \(defaults.visibilityTimeoutMilliseconds),
            maxReceive = tonumber(c[2]),
            dlq = c[3] or (string.sub(q, 1, \(QueueName.maximumLength - 4)) .. '-dlq'),
            backoffBase = tonumber(c[4]) or \(defaults.retryBackoffBaseMilliseconds),
            backoffCap = tonumber(c[5]) or \(defaults.retryBackoffCapMilliseconds),
            retention = tonumber(c[6]) or \(defaults.retentionMilliseconds),
            delay = tonumber(c[7]) or \(defaults.delayMilliseconds),
            maxDepth = tonumber(c[8]),
            dedupWindow = tonumber(c[9]) or \(defaults.dedupWindowMilliseconds),
          }
        end

        -- Totals, plus 10-second buckets for the last-minute figures.
        local function count(q, field, n)
          if n == 0 then return end
          redis.call('HINCRBY', key(q, 'stats'), field, n)
          local bucket = key(q, 'rate:' .. math.floor(now / 10000))
          redis.call('HINCRBY', bucket, field, n)
          redis.call('PEXPIRE', bucket, 80000)
        end

        local function notify(q) redis.call('PUBLISH', key(q, 'notify'), '1') end

        -- Whether queue q may be used: it exists, or there is room for one more (`maximum`).
        local function mayCreate(q, maximum)
          return redis.call('SISMEMBER', prefix .. ':queues', q) == 1 or redis.call('SCARD', prefix .. ':queues') < maximum
        end

        local function readyDepth(q)
          local n = 0
          for p = 0, 9 do n = n + redis.call('LLEN', readyKey(q, p)) end
          return n
        end

        -- Earliest possible retention expiry of the queue: the sweep looks at it then.
        local function indexRetention(q, enqueuedAt, retention)
          redis.call('ZADD', prefix .. ':retention-index', 'LT', enqueuedAt + retention, q)
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

        local function forget(q, id)
          redis.call('HDEL', key(q, 'errors'), id)
          redis.call('HDEL', key(q, 'history'), id)
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
          redis.call('SADD', prefix .. ':queues', target)
          indexRetention(target, now, settings(target).retention)
          count(q, 'deadLettered', 1)
          count(target, 'enqueued', 1)
          notify(target)
        end

        -- A receive that failed (nack, visibility 0, expired lease): dead letter, delayed retry or
        -- back at the head. The message is already out of the in-flight state.
        local function failed(q, s, m, delay)
          if now - m.enq >= s.retention then
            forget(q, m.id)
            count(q, 'expired', 1)
          elseif s.maxReceive and m.count >= s.maxReceive then
            deadLetter(q, s, m)
          else
            count(q, 'retried', 1)
            if delay > 0 then
              -- Never later than its retention allows: it expires on time, not after the delay.
              local due = math.min(now + delay, m.enq + s.retention)
              redis.call('ZADD', key(q, 'delayed'), due, buildDelayed(m))
              redis.call('ZADD', prefix .. ':delay-index', 'LT', due, q)
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
            redis.call('ZREM', prefix .. ':' .. index, q)
          else
            redis.call('ZADD', prefix .. ':' .. index, first[2], q)
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

        """

    /// A script on the shared library. `drains`: it frees memory or moves it (claims, acks,
    /// sweeps, reads), so it may run while Redis refuses writes for memory (`noeviction` OOM):
    /// consumers can always drain a full Redis. Sends, settings and redrives cannot.
    private static func script(_ name: String, drains: Bool = true, _ body: String) -> RedisScript {
        RedisScript(name: name, source: (drains ? "#!lua flags=allow-oom\n" : "") + library + body)
    }

    /// ARGV: prefix, queue, delay ms ('' = the queue's), priority, idempotency key ('' = none),
    /// maximum number of queues, count n, then n ids, then n bodies.
    /// Returns `{1, now}` when stored; `{0, "<enqueuedAt>|<id>,<id>..."}` for a duplicate;
    /// `{-1, maxDepth}` when full; `{-2, retention}` when the delay is beyond retention;
    /// `{-3, maximum}` when the queue does not exist and there are as many queues as allowed.
    static let enqueue = script(
        "enqueue",
        drains: false,
        """
        local s = settings(queue)
        local idempotencyKey = ARGV[5]
        if idempotencyKey ~= '' then
          -- `dedup-expiry` scores each key with its send time (data written before scored the end of
          -- its window, which keeps such a key one window longer): a key is judged by the window
          -- in force now, as docs/message-lifecycle.md says, also after the setting changed.
          local stale = redis.call('ZRANGEBYSCORE', key(queue, 'dedup-expiry'), '-inf', now - s.dedupWindow, 'LIMIT', 0, 100)
          for _, old in ipairs(stale) do
            redis.call('HDEL', key(queue, 'dedup'), old)
            redis.call('ZREM', key(queue, 'dedup-expiry'), old)
          end
          -- The cleanup above is bounded, so a key found here may still be past its window:
          -- only a key sent less than a window ago makes a duplicate.
          local original = redis.call('HGET', key(queue, 'dedup'), idempotencyKey)
          if original and (tonumber(redis.call('ZSCORE', key(queue, 'dedup-expiry'), idempotencyKey)) or 0) > now - s.dedupWindow then
            return { 0, original }
          end
        end
        if not mayCreate(queue, tonumber(ARGV[6])) then return { -3, tonumber(ARGV[6]) } end
        local delay = s.delay
        if ARGV[3] ~= '' then delay = tonumber(ARGV[3]) end
        if delay > s.retention then return { -2, s.retention } end
        local n = tonumber(ARGV[7])
        if s.maxDepth then
          local depth = readyDepth(queue) + redis.call('ZCARD', key(queue, 'delayed')) + redis.call('HLEN', key(queue, 'inflight'))
          if depth + n > s.maxDepth then return { -1, s.maxDepth } end
        end
        local priority = tonumber(ARGV[4])
        -- One INCRBY and one RPUSH (or ZADD) per 500 messages, not one each: batches are cheap.
        local firstSeq = redis.call('INCRBY', key(queue, 'seq'), n) - n + 1
        local header = string.format('|%d|%d|0|0|0|0|', now, priority)
        local ids, chunk = {}, {}
        for i = 1, n do
          local id = ARGV[7 + i]
          ids[i] = id
          if delay > 0 then
            chunk[#chunk + 1] = now + delay
            chunk[#chunk + 1] = '2|' .. string.format('%016d', firstSeq + i - 1) .. '|' .. id .. header .. ARGV[7 + n + i]
          else
            chunk[#chunk + 1] = '2|' .. string.format('%d', firstSeq + i - 1) .. '|' .. id .. header .. ARGV[7 + n + i]
          end
          if #chunk >= 1000 or i == n then
            if delay > 0 then
              redis.call('ZADD', key(queue, 'delayed'), unpack(chunk))
            else
              redis.call('RPUSH', readyKey(queue, priority), unpack(chunk))
            end
            chunk = {}
          end
        end
        if delay > 0 then
          redis.call('ZADD', prefix .. ':delay-index', 'LT', now + delay, queue)
        else
          indexRetention(queue, now, s.retention)
          notify(queue)
        end
        redis.call('SADD', prefix .. ':queues', queue)
        count(queue, 'enqueued', n)
        if idempotencyKey ~= '' then
          redis.call('HSET', key(queue, 'dedup'), idempotencyKey, now .. '|' .. table.concat(ids, ','))
          redis.call('ZADD', key(queue, 'dedup-expiry'), now, idempotencyKey)
        end
        return { 1, now }
        """
    )

    /// ARGV: prefix, queue, byte limit (0: none), then one lease per message to claim, oldest
    /// message first: a number of milliseconds, or '' for the queue's visibility timeout.
    /// With a byte limit, a message whose envelope would take the claimed envelopes past it stays
    /// at the head (unless it is the first): the reply never holds more than the limit plus one message.
    /// Returns `{e1, err1, hist1, lease1, e2, ..., stopped}`: per claimed message the updated
    /// envelope, the last nack reason (or nil), the dead-letter history (or nil) and its lease in
    /// ms; then 1 if the byte limit stopped the claim, else 0.
    static let claim = script(
        "claim",
        """
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
        while claimed < wanted and not stopped do
          -- Under a byte limit one at a time, so that what stops the claim can go back untouched.
          pop[14] = byteLimit > 0 and 1 or wanted - claimed
          local popped = redis.call('LMPOP', unpack(pop))
          if not popped then break end
          for _, envelope in ipairs(popped[2]) do
            if byteLimit > 0 and claimed > 0 and bytes + #envelope > byteLimit then
              redis.call('LPUSH', popped[1], envelope)
              stopped = true
              break
            end
            local m = parse(envelope)
            leftHead(queue, m)
            if now - m.enq >= s.retention then
              forget(queue, m.id)
              count(queue, 'expired', 1)
            elseif s.maxReceive and m.count >= s.maxReceive then
              deadLetter(queue, s, m)
            else
              claimed = claimed + 1
              bytes = bytes + #envelope
              local lease = tonumber(ARGV[3 + claimed]) or s.visibility
              m.count, m.claims, m.last = m.count + 1, m.claims + 1, now
              if m.first == 0 then m.first = now end
              local updated = build(m)
              redis.call('HSET', key(queue, 'inflight'), m.id, updated)
              redis.call('ZADD', key(queue, 'leases'), now + lease, m.id)
              if not earliest or now + lease < earliest then earliest = now + lease end
              local n = #out
              out[n + 1] = updated
              out[n + 2] = hasErrors and redis.call('HGET', key(queue, 'errors'), m.id)
              out[n + 3] = hasHistory and redis.call('HGET', key(queue, 'history'), m.id)
              out[n + 4] = lease
            end
          end
        end
        if earliest then redis.call('ZADD', prefix .. ':lease-index', 'LT', earliest, queue) end
        count(queue, 'delivered', claimed)
        out[#out + 1] = stopped and 1 or 0
        return out
        """
    )

    /// ARGV: prefix, queue, then id and token pairs. Deletes each message whose claim the token
    /// still holds. Returns one 1 or 0 per pair.
    static let acknowledge = script(
        "acknowledge",
        """
        local out = {}
        local acked = 0
        for i = 3, #ARGV - 1, 2 do
          local m = takeClaim(queue, ARGV[i], ARGV[i + 1])
          if m then
            forget(queue, m.id)
            acked = acked + 1
            out[#out + 1] = 1
          else
            out[#out + 1] = 0
          end
        end
        count(queue, 'acknowledged', acked)
        return out
        """
    )

    /// ARGV: prefix, queue, then id and token pairs. Puts claims that never reached their consumer
    /// back at the head in enqueue order, with the receive taken back. Returns how many.
    static let release = script(
        "release",
        """
        local released = 0
        for i = 3, #ARGV - 1, 2 do
          local m = takeClaim(queue, ARGV[i], ARGV[i + 1])
          if m then
            m.count = math.max(m.count - 1, 0)
            requeue(queue, m)
            released = released + 1
          end
        end
        if released > 0 then
          count(queue, 'delivered', -released)
          notify(queue)
        end
        return released
        """
    )

    /// ARGV: prefix, queue, id, token, delay ms ('' = the backoff), jitter in [0, 1), has reason
    /// ('1'/'0'), reason. A nack: returns 1, or 0 for a stale receipt.
    static let reject = script(
        "reject",
        """
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
        """
    )

    /// ARGV: prefix, queue, id, token, timeout ms. Restarts a held claim's lease at `timeout` from
    /// now; 0 is a failed receive without delay. Also the fence before a late hand-out. Returns 1 or 0.
    static let changeVisibility = script(
        "change-visibility",
        """
        if not heldClaim(queue, ARGV[3], ARGV[4]) then return 0 end
        local timeout = tonumber(ARGV[5])
        if timeout == 0 then
          failed(queue, settings(queue), takeClaim(queue, ARGV[3], ARGV[4]), 0)
        else
          redis.call('ZADD', key(queue, 'leases'), now + timeout, ARGV[3])
          redis.call('ZADD', prefix .. ':lease-index', 'LT', now + timeout, queue)
        end
        return 1
        """
    )

    /// ARGV: prefix, queue, limit, byte budget. Expired leases are failed receives: their messages
    /// come back to the head in their original order (or move to the dead-letter queue). At most
    /// `limit` claims and about `budget` bytes of messages per run, so one run stays short whatever
    /// a crashed consumer held. Returns `{returned, 1 if expired leases remain}`. O(returned log n).
    static let recover = script(
        "recover",
        """
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
        """
    )

    /// ARGV: prefix, queue. Makes due delayed messages ready, a bounded run of them.
    /// Returns `{moved, 1 if more are due now}`.
    static let promoteDue = script(
        "promote",
        """
        local moved, more = promote(queue, settings(queue))
        return { moved, more and 1 or 0 }
        """
    )

    /// ARGV: prefix, queue, limit. Removes messages past retention from the head of each
    /// priority, at most `limit` per run, and re-indexes the queue's next possible expiry.
    /// Returns `{removed, 1 if more may be due now}`.
    static let expire = script(
        "expire",
        """
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
            local enq = tonumber(string.match(head, '^2|%d+|[^|]+|(%d+)|') or string.match(head, '^1|%d+|[^|]+|(%d+)|'))
            if now - enq < s.retention then
              if not nextExpiry or enq + s.retention < nextExpiry then nextExpiry = enq + s.retention end
              break
            end
            redis.call('LPOP', k)
            redis.call('ZREM', returnedKey(queue, p), string.match(head, '^%d|(%d+)|'))
            forget(queue, string.match(head, '^%d|%d+|([^|]+)|'))
            removed = removed + 1
          end
        end
        count(queue, 'expired', removed)
        if more then
          -- Stopped at the limit: still due, the sweep runs this again at once.
          redis.call('ZADD', prefix .. ':retention-index', now, queue)
        elseif nextExpiry then
          redis.call('ZADD', prefix .. ':retention-index', nextExpiry, queue)
        else
          redis.call('ZREM', prefix .. ':retention-index', queue)
        end
        return { removed, more and 1 or 0 }
        """
    )

    /// ARGV: prefix, queue (unused), index key suffix, limit. Queues due in one of the indexes.
    static let dueQueues = script(
        "due-queues",
        """
        return redis.call('ZRANGEBYSCORE', prefix .. ':' .. ARGV[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
        """
    )

    /// ARGV: prefix, queue, max, maximum number of queues. Moves ready dead letters to the tail of
    /// the queue. Returns how many, or -3 when the queue does not exist and may not be created.
    static let redrive = script(
        "redrive",
        drains: false,
        """
        local s = settings(queue)
        if not mayCreate(queue, tonumber(ARGV[4])) then
          -- Nothing to move creates nothing; something to move needs the queue.
          if readyDepth(s.dlq) == 0 then return 0 end
          return -3
        end
        local source = s.dlq
        local wanted = tonumber(ARGV[3])
        local moved = 0
        for priority = 9, 0, -1 do
          while moved < wanted do
            local envelope = redis.call('LPOP', readyKey(source, priority))
            if not envelope then break end
            local m = parse(envelope)
            leftHead(source, m)
            forget(source, m.id)
            m.seq = redis.call('INCR', key(queue, 'seq'))
            m.enq, m.count, m.first, m.last = now, 0, 0, 0
            redis.call('RPUSH', readyKey(queue, m.priority), build(m))
            moved = moved + 1
          end
        end
        if moved > 0 then
          redis.call('SADD', prefix .. ':queues', queue)
          indexRetention(queue, now, s.retention)
          count(queue, 'enqueued', moved)
          notify(queue)
        end
        return moved
        """
    )

    /// ARGV: prefix, queue, maximum number of queues, then field/value pairs. Replaces the
    /// settings. Returns 1, or -3 when the queue does not exist and may not be created.
    static let configure = script(
        "configure",
        drains: false,
        """
        if not mayCreate(queue, tonumber(ARGV[3])) then return -3 end
        redis.call('DEL', key(queue, 'config'))
        for i = 4, #ARGV - 1, 2 do redis.call('HSET', key(queue, 'config'), ARGV[i], ARGV[i + 1]) end
        redis.call('SADD', prefix .. ':queues', queue)
        -- The retention may have shrunk: look at the queue's heads at the next sweep.
        redis.call('ZADD', prefix .. ':retention-index', now, queue)
        return 1
        """
    )

    /// The counter fields of `stats`, in the order the stats script returns them.
    static let counterFields = ["enqueued", "delivered", "acknowledged", "retried", "deadLettered", "expired"]

    /// ARGV: prefix, queue. Returns `{ready, inFlight, delayed, deadLetterReady, oldestAge or -1,
    /// totals..., lastMinute...}` with the counters in ``counterFields`` order. O(1): no scan.
    static let stats = script(
        "stats",
        """
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
        local fields = { \(counterFields.map { "'\($0)'" }.joined(separator: ", ")) }
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
        """
    )

    /// ARGV: prefix, queue (unused), cursor, page size. One page of the queue set (`SSCAN`):
    /// returns `{next cursor, name, ready, inFlight, delayed, ...}`; the cursor is "0" at the end.
    static let list = script(
        "list",
        """
        local page = redis.call('SSCAN', prefix .. ':queues', ARGV[3], 'COUNT', tonumber(ARGV[4]))
        local out = { page[1] }
        for _, q in ipairs(page[2]) do
          out[#out + 1] = q
          out[#out + 1] = readyDepth(q)
          out[#out + 1] = redis.call('HLEN', key(q, 'inflight'))
          out[#out + 1] = redis.call('ZCARD', key(q, 'delayed'))
        end
        return out
        """
    )

    /// ARGV: prefix, queue, '1' to delete the queue too. Deletes every message; with delete, also
    /// settings, counters, idempotency keys and the queue's registration. Returns
    /// `{messages deleted, 1 if the queue existed}`.
    static let purge = script(
        "purge",
        """
        local existed = redis.call('SISMEMBER', prefix .. ':queues', queue)
        local n = readyDepth(queue) + redis.call('HLEN', key(queue, 'inflight')) + redis.call('ZCARD', key(queue, 'delayed'))
        for p = 0, 9 do redis.call('DEL', readyKey(queue, p), returnedKey(queue, p)) end
        redis.call('DEL', key(queue, 'inflight'), key(queue, 'leases'), key(queue, 'delayed'), key(queue, 'errors'), key(queue, 'history'))
        for _, index in ipairs({ 'lease-index', 'delay-index', 'retention-index' }) do redis.call('ZREM', prefix .. ':' .. index, queue) end
        if ARGV[3] == '1' then
          redis.call('DEL', key(queue, 'config'), key(queue, 'stats'), key(queue, 'seq'), key(queue, 'dedup'), key(queue, 'dedup-expiry'))
          local current = math.floor(now / 10000)
          for b = current - 7, current do redis.call('DEL', key(queue, 'rate:' .. b)) end
          redis.call('SREM', prefix .. ':queues', queue)
        end
        return { n, existed }
        """
    )
}
