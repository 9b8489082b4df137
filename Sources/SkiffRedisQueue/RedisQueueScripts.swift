import SkiffQueue
import SkiffRedis

/// The Lua scripts behind every state change of a message in Redis (docs/message-lifecycle.md
/// gives the rules, docs/redis-data-model.md the keys). Each runs atomically and reads time from
/// Redis (`TIME`), never from a replica, so replica clock skew cannot move a lease or a due time.
///
/// Every script takes `ARGV[1]` = key prefix and `ARGV[2]` = queue name, and builds key names
/// from them, because a failed receive may write to another queue (the dead-letter queue) named
/// by the stored settings. On a Redis Cluster it also takes KEYS (``RedisQueueKeys``): the
/// queue's family puts a queue and its dead-letter queue in one slot, and the slot's indexes are
/// there too, so every script still touches one slot.
///
/// A stored message is one string, the envelope:
/// `2|<seq>|<id>|<enqueuedAtMs>|<priority>|<receiveCount>|<claims>|<firstReceiveMs>|<lastReceiveMs>|<body>`.
/// `claims` never goes down, so it identifies one delivery (the claim token in a receipt).
enum RedisQueueScripts {
    private static let defaults = QueueSettings()

    /// Shared definitions: keys, time, envelopes, settings, counters, requeue, dead-lettering.
    static let library = template(PackageResources.library_lua)

    /// A script on the shared library. `drains`: it frees memory or moves it (claims, acks,
    /// sweeps, reads), so it may run while Redis refuses writes for memory (`noeviction` OOM):
    /// consumers can always drain a full Redis. Sends, settings and redrives cannot.
    private static func script(_ name: String, drains: Bool = true, _ body: [UInt8]) -> RedisScript {
        RedisScript(name: name, source: (drains ? "#!lua flags=allow-oom\n" : "") + library + template(body))
    }

    /// Every script, for the test that loads each one into Redis.
    static var all: [RedisScript] {
        [
            enqueue, claim, acknowledge, held, release, reject, changeVisibility, recover, promoteDue, expire, dueQueues, redrive, configure, stats, list,
            purge, register, dueSlots, unregistered, publish, topicSubscriptions, subscribe, unsubscribe, deleteTopic, countPushes, appendToTopicLog,
            deliverTopicEntry, settleTopicEntry, topicLog, forgetTopicEntries, peek, lookUp, recordHistory, history, takeBuried,
            payloadReferences,
        ]
    }

    // MARK: Topics (docs/topics.md): the queue library, then the topic library, then the script.

    private static func topicScript(_ name: String, drains: Bool = true, _ body: [UInt8]) -> RedisScript {
        RedisScript(
            name: name,
            source: (drains ? "#!lua flags=allow-oom\n" : "") + library + template(PackageResources.topic_library_lua) + template(body)
        )
    }

    /// A publish's fan-out in one run; the arguments and answers are in publish.lua.
    static let publish = topicScript("publish", drains: false, PackageResources.publish_lua)
    /// ARGV: prefix, '', topic. Returns `{version, n, name1, stored1, ..., pushName1, push1, ...}`. Reads only.
    static let topicSubscriptions = topicScript("topic-subscriptions", PackageResources.topic_subscriptions_lua)
    /// Creates or replaces a subscription; the arguments and answers are in topic-subscribe.lua.
    static let subscribe = topicScript("topic-subscribe", drains: false, PackageResources.topic_subscribe_lua)
    /// ARGV: prefix, '', topic, name. Returns 1, or 0 for no such subscription.
    static let unsubscribe = topicScript("topic-unsubscribe", PackageResources.topic_unsubscribe_lua)
    /// ARGV: prefix, '', topic. Returns 1, or 0 for no such topic.
    static let deleteTopic = topicScript("topic-delete", PackageResources.topic_delete_lua)
    /// ARGV: prefix, '', topic, then (name, pushed, failed) per subscription. Returns 1.
    static let countPushes = topicScript("topic-count-pushes", drains: false, PackageResources.topic_count_pushes_lua)

    /// Redis Cluster: a publish appended to its topic's log; the arguments and answers are in topic-append.lua.
    static let appendToTopicLog = topicScript("topic-append", drains: false, PackageResources.topic_append_lua)
    /// Redis Cluster: one log entry's copies for one subscriber queue, in its slot, once (topic-deliver.lua).
    static let deliverTopicEntry = script("topic-deliver", drains: false, PackageResources.topic_deliver_lua)
    /// Redis Cluster: what the forwarders stored of one log entry; removes it when all is copied (topic-settle.lua).
    static let settleTopicEntry = topicScript("topic-settle", PackageResources.topic_settle_lua)
    /// Redis Cluster: the log entries left behind, taken for one sweep, or one entry (topic-log.lua).
    static let topicLog = topicScript("topic-log", PackageResources.topic_log_lua)
    /// Redis Cluster: a queue forgets log entries settled a minute ago (topic-forget.lua).
    static let forgetTopicEntries = script("topic-forget", PackageResources.topic_forget_lua)

    /// Without the library: the count of the messages sharing one payload object (payload-references.lua).
    /// Allowed when Redis is out of memory, as the acks are: a drain must be able to count copies down.
    static let payloadReferences = RedisScript(
        name: "payload-references", source: "#!lua flags=allow-oom\n" + template(PackageResources.payload_references_lua))

    /// Redis Cluster only, without the library: registers a queue in the global registry that
    /// counts queues against `MAX_QUEUES`. KEYS[1]: the registry; ARGV: queue, maximum.
    static let register = RedisScript(name: "register", source: template(PackageResources.register_lua))

    /// Redis Cluster only: the due queues of many slots of one node in one read-only run.
    static let dueSlots = RedisScript(name: "due-slots", source: template(PackageResources.due_slots_lua))

    /// Redis Cluster only: dead-letter queues not yet in the global registry, over many slots of one node.
    static let unregistered = RedisScript(name: "unregistered", source: template(PackageResources.unregistered_lua))

    /// The values the scripts' `{{name}}` placeholders stand for: the defaults they share with Swift.
    static let placeholders: [String: String] = [
        "visibilityTimeoutMs": String(defaults.visibilityTimeoutMilliseconds),
        "minimumVisibilityMs": String(QueueSettings.minimumReceiveVisibilityMilliseconds),
        "dlqPrefixLength": String(QueueName.maximumLength - 4),
        "retryBackoffBaseMs": String(defaults.retryBackoffBaseMilliseconds),
        "retryBackoffCapMs": String(defaults.retryBackoffCapMilliseconds),
        "retentionMs": String(defaults.retentionMilliseconds),
        "delayMs": String(defaults.delayMilliseconds),
        "dedupWindowMs": String(defaults.dedupWindowMilliseconds),
        "counterFields": counterFields.map { "'\($0)'" }.joined(separator: ", "),
        "historyWindowMs": String(QueueHistorySample.windowMilliseconds),
        "historyCapacity": String(QueueHistorySample.capacity),
        "graveyardCapacity": String(RedisQueueScripts.graveyardCapacity),
    ]

    /// A script file (`Lua/*.lua`, embedded at build time) with its placeholders filled in.
    static func template(_ bytes: [UInt8]) -> String {
        var text = String(decoding: bytes, as: UTF8.self)
        for (name, value) in placeholders { text = text.replacing("{{\(name)}}", with: value) }
        precondition(!text.contains("{{"), "a Lua script has a placeholder RedisQueueScripts.placeholders does not fill")
        return text
    }

    /// ARGV: prefix, queue, delay ms ('' = the queue's), priority, idempotency key ('' = none),
    /// maximum number of queues, count n, then n ids, then n bodies.
    /// Returns `{1, now}` when stored; `{0, "<enqueuedAt>|<id>,<id>..."}` for a duplicate;
    /// `{-1, maxDepth}` when full; `{-2, retention}` when the delay is beyond retention;
    /// `{-3, maximum}` when the queue does not exist and there are as many queues as allowed.
    static let enqueue = script("enqueue", drains: false, PackageResources.enqueue_lua)

    /// ARGV: prefix, queue, byte limit (0: none), then one lease per message to claim, oldest
    /// message first: a number of milliseconds, or '' for the queue's visibility timeout.
    /// With a byte limit, a message whose envelope would take the claimed envelopes past it stays
    /// at the head with the rest of its pop (16 at most) untouched (unless it is the first): the
    /// reply never holds more than the limit plus one message.
    /// Returns `{e1, err1, hist1, lease1, e2, ..., stopped}`: per claimed message the updated
    /// envelope, the last nack reason (or nil), the dead-letter history (or nil) and its lease in
    /// ms; then 1 if the byte limit stopped the claim, else 0.
    static let claim = script("claim", PackageResources.claim_lua)

    /// ARGV: prefix, queue, then id and token pairs. Deletes each message whose claim the token
    /// still holds. Returns one 1 or 0 per pair.
    static let acknowledge = script("acknowledge", PackageResources.acknowledge_lua)

    /// ARGV: prefix, queue, then id and token pairs. Returns one 1 or 0 per pair: whether the token
    /// still holds its message's claim. Changes nothing.
    static let held = script("held", PackageResources.held_lua)

    /// ARGV: prefix, queue, then id and token pairs. Puts claims that never reached their consumer
    /// back at the head in enqueue order, with the receive taken back. Returns how many.
    static let release = script("release", PackageResources.release_lua)

    /// ARGV: prefix, queue, id, token, delay ms ('' = the backoff), jitter in [0, 1), has reason
    /// ('1'/'0'), reason. A nack: returns 1, or 0 for a stale receipt.
    static let reject = script("reject", PackageResources.reject_lua)

    /// ARGV: prefix, queue, id, token, timeout ms. Restarts a held claim's lease at `timeout` from
    /// now; 0 is a failed receive without delay. Also the fence before a late hand-out. Returns 1 or 0.
    static let changeVisibility = script("change-visibility", PackageResources.change_visibility_lua)

    /// ARGV: prefix, queue, limit, byte budget. Expired leases are failed receives: their messages
    /// come back to the head in their original order (or move to the dead-letter queue). At most
    /// `limit` claims and about `budget` bytes of messages per run, so one run stays short whatever
    /// a crashed consumer held. Returns `{returned, 1 if expired leases remain}`. O(returned log n).
    static let recover = script("recover", PackageResources.recover_lua)

    /// ARGV: prefix, queue. Makes due delayed messages ready, a bounded run of them.
    /// Returns `{moved, 1 if more are due now}`.
    static let promoteDue = script("promote", PackageResources.promote_lua)

    /// ARGV: prefix, queue, limit. Removes messages past retention from the head of each
    /// priority, at most `limit` per run, and re-indexes the queue's next possible expiry.
    /// Returns `{removed, 1 if more may be due now}`.
    static let expire = script("expire", PackageResources.expire_lua)

    /// ARGV: prefix, queue (unused), index key suffix, limit. Queues due in one of the indexes.
    static let dueQueues = script("due-queues", PackageResources.due_queues_lua)

    /// ARGV: prefix, queue, max, maximum number of queues. Moves ready dead letters to the tail of
    /// the queue. Returns how many, or -3 when the queue does not exist and may not be created.
    static let redrive = script("redrive", drains: false, PackageResources.redrive_lua)

    /// ARGV: prefix, queue, maximum number of queues, then field/value pairs. Replaces the
    /// settings. Returns 1, or -3 when the queue does not exist and may not be created.
    static let configure = script("configure", drains: false, PackageResources.configure_lua)

    /// The counter fields of `stats`, in the order the stats script returns them.
    /// Ids of stored bodies whose messages are gone that the payload graveyard keeps at most (per
    /// slot on a cluster); past it the oldest are dropped, and their objects left to the sweep.
    static let graveyardCapacity = 100_000

    /// ARGV: prefix, queue (unused), count. Takes up to count ids from the graveyard (of the slot
    /// of KEYS on a cluster): the bodies to delete from the payload store.
    static let takeBuried = script("graveyard-take", PackageResources.graveyard_take_lua)

    static let counterFields = ["enqueued", "delivered", "acknowledged", "retried", "deadLettered", "expired"]

    /// ARGV: prefix, queue. Returns `{ready, inFlight, delayed, deadLetterReady, oldestAge or -1,
    /// totals..., lastMinute...}` with the counters in ``counterFields`` order. O(1): no scan.
    static let stats = script("stats", PackageResources.stats_lua)

    /// ARGV: prefix, queue (unused), cursor, page size. One page of the queue set (`SSCAN`):
    /// returns `{next cursor, name, ready, inFlight, delayed, ...}`; the cursor is "0" at the end.
    static let list = script("list", PackageResources.list_lua)

    /// ARGV: prefix, queue, limit, byte limit. Reads only: the first ready messages in claim
    /// order, not past retention, as `{envelope, last nack reason or '', history or '', ...}`.
    static let peek = script("peek", PackageResources.peek_lua)

    /// ARGV: prefix, queue, id, envelope budget, byte budget. Reads only: the message with that
    /// id, as `{state, envelope, last nack reason or '', history or ''}`, or `{'', 1 if the whole
    /// queue was searched}`.
    static let lookUp = script("lookup", PackageResources.lookup_lua)

    /// ARGV: prefix, queue, interval ms, ready, inFlight, delayed, deadLetter, enqueued, delivered,
    /// acknowledged. The queue's sample of the current interval unless it has one or the queue is
    /// gone; returns 1 if recorded.
    static let recordHistory = script("history-record", drains: false, PackageResources.history_record_lua)

    /// ARGV: prefix, queue. Reads only: the samples of the last hour, oldest first, each
    /// `<start>|<recorded at>|ready|inFlight|delayed|deadLetter|enqueued|delivered|acknowledged`.
    static let history = script("history", PackageResources.history_lua)

    /// ARGV: prefix, queue, '1' to delete the queue too. Deletes every message; with delete, also
    /// settings, counters, idempotency keys and the queue's registration. Returns
    /// `{messages deleted, 1 if the queue existed}`.
    static let purge = script("purge", PackageResources.purge_lua)
}
