import SkiffRedis

/// The Lua scripts behind every state change of a message in Redis. Each runs atomically and
/// reads time from Redis (`TIME`), never from a replica, so replica clock skew cannot move a lease.
///
/// A stored message is one string, the envelope: `1|<seq>|<id>|<enqueuedAtMs>|<receiveCount>|<claims>|<body>`.
/// `seq` is the queue's enqueue counter (order for recovery); `receiveCount` counts deliveries to
/// consumers (a release undoes one); `claims` counts claims and never goes down, so it identifies
/// one delivery (the claim token); the body is the posted bytes verbatim.
/// See docs/redis-data-model.md for keys and invariants.
enum RedisQueueScripts {
    /// Sets `now` to Redis's clock in milliseconds. Newlines on both sides so it can be spliced in.
    static let now = """

        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

        """

    /// Defines `requeue(key, envelope, seq)`: puts a message back near the head of the ready list,
    /// after any messages with a lower enqueue sequence that were put back before it, so messages
    /// returned by separate releases or sweeps keep their original order. Costs O(position),
    /// and the position is at the head (bounded at 1000).
    static let requeue = """

        local function requeue(key, envelope, seq)
          local position = 0
          while position < 1000 do
            local item = redis.call('LINDEX', key, position)
            if not item or tonumber(string.match(item, '^1|(%d+)|')) > seq then break end
            position = position + 1
          end
          if position == 0 then
            redis.call('LPUSH', key, envelope)
          else
            redis.call('LINSERT', key, 'AFTER', redis.call('LINDEX', key, position - 1), envelope)
          end
        end

        """

    /// KEYS: ready, seq, queues. ARGV: id, body, channel, queue name. Returns enqueuedAt (ms).
    static let enqueue = RedisScript(
        name: "enqueue",
        source: now + """

            local seq = redis.call('INCR', KEYS[2])
            redis.call('RPUSH', KEYS[1], string.format('1|%d|%s|%d|0|0|', seq, ARGV[1], now) .. ARGV[2])
            redis.call('SADD', KEYS[3], ARGV[4])
            redis.call('PUBLISH', ARGV[3], '1')
            return now
            """
    )

    /// KEYS: ready, inflight, leases, lease index. ARGV: count, lease ms, queue name.
    /// Pops up to `count` messages from the head, counts the receive, and leases them.
    /// Returns the updated envelopes, oldest first.
    static let claim = RedisScript(
        name: "claim",
        source: """
            local items = redis.call('LPOP', KEYS[1], tonumber(ARGV[1]))
            if not items then return {} end
            """ + now + """

            local expiry = now + tonumber(ARGV[2])
            local out = {}
            for i, envelope in ipairs(items) do
              local seq, id, enqueued, count, claims, rest = string.match(envelope, '^1|(%d+)|([^|]+)|(%d+)|(%d+)|(%d+)|()')
              local updated = '1|' .. seq .. '|' .. id .. '|' .. enqueued .. '|' .. (tonumber(count) + 1) .. '|' .. (tonumber(claims) + 1) .. '|' .. string.sub(envelope, rest)
              redis.call('HSET', KEYS[2], id, updated)
              redis.call('ZADD', KEYS[3], expiry, id)
              out[i] = updated
            end
            redis.call('ZADD', KEYS[4], 'LT', expiry, ARGV[3])
            return out
            """
    )

    /// KEYS: inflight, leases. ARGV: id, claim token (the claims counter).
    /// Deletes the message for good if this claim still holds it. Returns 1, or 0 if the claim is stale.
    static let complete = RedisScript(
        name: "complete",
        source: """
            local envelope = redis.call('HGET', KEYS[1], ARGV[1])
            if not envelope then return 0 end
            if string.match(envelope, '^1|%d+|[^|]+|%d+|%d+|(%d+)|') ~= ARGV[2] then return 0 end
            redis.call('HDEL', KEYS[1], ARGV[1])
            redis.call('ZREM', KEYS[2], ARGV[1])
            return 1
            """
    )

    /// KEYS: ready, inflight, leases. ARGV: channel, then id and token pairs.
    /// Puts still-held claims back at the head in enqueue order, without counting the receive.
    static let release = RedisScript(
        name: "release",
        source: requeue + """
            local released = 0
            for i = 2, #ARGV - 1, 2 do
              local id, token = ARGV[i], ARGV[i + 1]
              local envelope = redis.call('HGET', KEYS[2], id)
              if envelope then
                local seq, enqueued, count, claims, rest = string.match(envelope, '^1|(%d+)|[^|]+|(%d+)|(%d+)|(%d+)|()')
                if claims == token then
                  local previous = math.max(tonumber(count) - 1, 0)
                  requeue(KEYS[1], '1|' .. seq .. '|' .. id .. '|' .. enqueued .. '|' .. previous .. '|' .. claims .. '|' .. string.sub(envelope, rest), tonumber(seq))
                  redis.call('HDEL', KEYS[2], id)
                  redis.call('ZREM', KEYS[3], id)
                  released = released + 1
                end
              end
            end
            if released > 0 then redis.call('PUBLISH', ARGV[1], '1') end
            return released
            """
    )

    /// KEYS: ready, inflight, leases, lease index. ARGV: queue name, limit, channel.
    /// Returns messages whose lease expired to the head of the queue in their original order.
    /// Costs O(expired log n) plus the walk of `requeue`. Returns how many were recovered.
    static let recover = RedisScript(
        name: "recover",
        source: requeue + now + """

            local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
            local entries = {}
            for _, id in ipairs(ids) do
              local envelope = redis.call('HGET', KEYS[2], id)
              if envelope then
                entries[#entries + 1] = { tonumber(string.match(envelope, '^1|(%d+)|')), envelope }
              end
              redis.call('HDEL', KEYS[2], id)
              redis.call('ZREM', KEYS[3], id)
            end
            table.sort(entries, function(a, b) return a[1] < b[1] end)
            for _, entry in ipairs(entries) do requeue(KEYS[1], entry[2], entry[1]) end
            local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
            if #first == 0 then
              redis.call('ZREM', KEYS[4], ARGV[1])
            else
              redis.call('ZADD', KEYS[4], first[2], ARGV[1])
            end
            if #entries > 0 then redis.call('PUBLISH', ARGV[3], '1') end
            return #entries
            """
    )

    /// KEYS: lease index. ARGV: limit. Queues that may hold an expired lease.
    static let dueQueues = RedisScript(
        name: "due-queues",
        source: now + """

            return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
            """
    )

    /// KEYS: inflight, leases, lease index. ARGV: id, token, lease ms, queue name.
    /// Re-checks a claim and restarts its lease (the fence before a late hand-out). Returns 1 or 0.
    static let renew = RedisScript(
        name: "renew",
        source: """
            local envelope = redis.call('HGET', KEYS[1], ARGV[1])
            if not envelope then return 0 end
            if string.match(envelope, '^1|%d+|[^|]+|%d+|%d+|(%d+)|') ~= ARGV[2] then return 0 end
            """ + now + """

            redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
            redis.call('ZADD', KEYS[3], 'LT', now + tonumber(ARGV[3]), ARGV[4])
            return 1
            """
    )
}
