import SkiffQueue

/// The Redis keys of one queue. The queue name is inside a hash tag (`{name}`), so all of a
/// queue's keys live in one slot, and ``QueueName``'s character set keeps names from escaping it.
/// The scripts build the same names from the prefix and the queue name (see RedisQueueScripts).
struct RedisQueueKeys: Sendable {
    let base: String
    let channel: String
    let config: String

    init(prefix: String, queue: QueueName) {
        base = "\(prefix):{\(queue.rawValue)}:"
        channel = base + "notify"
        config = base + "config"
    }

    func ready(priority: Int) -> String { priority == 0 ? base + "ready" : base + "ready:\(priority)" }

    static func queueSet(prefix: String) -> String { "\(prefix):queues" }

    /// The queue a notification channel belongs to.
    static func queue(fromChannel channel: String, prefix: String) -> QueueName? {
        let start = prefix + ":{"
        guard channel.hasPrefix(start), channel.hasSuffix("}:notify") else { return nil }
        return QueueName(channel.dropFirst(start.count).dropLast("}:notify".count))
    }
}
