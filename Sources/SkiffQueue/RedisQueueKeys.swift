/// The Redis keys of one queue. The queue name is inside a hash tag (`{name}`), so all of a
/// queue's keys live in one slot, and ``QueueName``'s character set keeps names from escaping it.
struct RedisQueueKeys: Sendable {
    let ready: String
    let inFlight: String
    let leases: String
    let sequence: String
    let channel: String

    init(prefix: String, queue: QueueName) {
        let base = "\(prefix):{\(queue.rawValue)}:"
        ready = base + "ready"
        inFlight = base + "inflight"
        leases = base + "leases"
        sequence = base + "seq"
        channel = base + "notify"
    }

    static func queueSet(prefix: String) -> String { "\(prefix):queues" }
    static func leaseIndex(prefix: String) -> String { "\(prefix):lease-index" }

    /// The queue a notification channel belongs to.
    static func queue(fromChannel channel: String, prefix: String) -> QueueName? {
        let start = prefix + ":{"
        guard channel.hasPrefix(start), channel.hasSuffix("}:notify") else { return nil }
        return QueueName(channel.dropFirst(start.count).dropLast("}:notify".count))
    }
}
