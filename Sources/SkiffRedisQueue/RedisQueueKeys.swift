import SkiffQueue
import SkiffRedis

/// The Redis keys of one queue, in one of two layouts (docs/redis-data-model.md):
///
/// - on a single Redis, `<prefix>:{<queue>}:<suffix>`, with the queue set and the sweep indexes
///   global (`<prefix>:queues`, `<prefix>:lease-index`, ...);
/// - on a Redis Cluster, `<prefix>:{<family>}:<queue>:<suffix>`, where the family is the queue
///   name without its `-dlq` suffixes, so that a queue and its dead-letter queue share a hash slot
///   and one script can move a message between them; the slot's own queue set and indexes live
///   under `<prefix>:{<tag>}`, a tag of that same slot (``ClusterSlotTags``), so that every script
///   touches one slot. The slot is registered in `<prefix>:slots` before its first use, so the
///   sweeps and the queue list find it.
///
/// ``QueueName``'s character set keeps names from escaping the tag. The scripts build the same
/// names from the prefix, the queue name and their KEYS (see library.lua).
struct RedisQueueKeys: Sendable {
    let base: String
    let channel: String
    let config: String
    /// KEYS of a script run on this queue: none on a single Redis; on a cluster the routing key
    /// and the base of the slot's indexes.
    let scriptKeys: [String]
    /// The hash slot of the queue's keys (cluster layout only).
    let slot: Int?

    init(prefix: String, queue: QueueName, clustered: Bool) {
        if clustered {
            let family = Self.family(queue.rawValue)
            let slot = ClusterSlot.of(family)
            base = "\(prefix):{\(family)}:\(queue.rawValue):"
            scriptKeys = ["\(prefix):{\(family)}", Self.indexBase(prefix: prefix, slot: slot)]
            self.slot = slot
        } else {
            base = "\(prefix):{\(queue.rawValue)}:"
            scriptKeys = []
            slot = nil
        }
        channel = base + "notify"
        config = base + "config"
    }

    func ready(priority: Int) -> String { priority == 0 ? base + "ready" : base + "ready:\(priority)" }

    /// Where the queue set and sweep indexes of `slot` live on a cluster.
    static func indexBase(prefix: String, slot: Int) -> String { "\(prefix):{\(ClusterSlotTags.tag(for: slot))}" }

    /// KEYS for a script that reads the indexes of `slot` (the sweeps, the queue list).
    static func slotScriptKeys(prefix: String, slot: Int) -> [String] {
        let base = indexBase(prefix: prefix, slot: slot)
        return [base, base]
    }

    /// The set of slots that hold queues, on a cluster.
    static func slotSet(prefix: String) -> String { "\(prefix):slots" }

    /// The global registry of queues on a cluster, counted against `MAX_QUEUES` (on a single
    /// Redis the queue set itself, `<prefix>:queues`, does that).
    static func queueRegistry(prefix: String) -> String { "\(prefix):queues" }

    /// The family: the name cut where the default dead-letter name cuts it (124 characters), then
    /// stripped of any trailing `-dlq` and of any trailing piece of one (`-dl`, `-d`, `-`, which
    /// the cut may leave), so that `<q>-dlq` and its own dead-letter queues share `q`'s slot
    /// whatever `q`'s length; `_` if nothing is left. Partition p (`<q>~p`) of a queue and of its
    /// dead-letter queues is family `<family of q>~p`, a slot of its own shared by them.
    /// library.lua's `family` is the same function.
    static func family(_ name: String) -> String {
        if let tilde = name.firstIndex(of: "~") {
            return family(String(name[..<tilde])) + name[tilde...]
        }
        var family = Substring(name.prefix(QueueName.maximumLength - 4))
        while true {
            if let piece = ["-dlq", "-dl", "-d", "-"].first(where: { family.hasSuffix($0) }) {
                family = family.dropLast(piece.count)
            } else {
                break
            }
        }
        return family.isEmpty ? "_" : String(family)
    }

    /// The queue a notification channel belongs to.
    static func queue(fromChannel channel: String, prefix: String, clustered: Bool) -> QueueName? {
        let start = prefix + ":{"
        guard channel.hasPrefix(start), channel.hasSuffix(":notify") else { return nil }
        let inner = channel.dropFirst(start.count).dropLast(":notify".count)
        if clustered {
            guard let close = inner.firstIndex(of: "}"), inner[close...].hasPrefix("}:") else { return nil }
            return QueueName(stored: inner[inner.index(close, offsetBy: 2)...])
        }
        guard inner.hasSuffix("}") else { return nil }
        return QueueName(stored: inner.dropLast())
    }
}

/// For every hash slot a short tag that hashes to it, so that a key can be placed in the slot
/// of another one without sharing its name: the first base-36 number (0, 1, ..., z, 10, ...)
/// whose slot it is. The table is a pure function of CRC16, the same in every replica and every
/// version (the keys in Redis depend on it; a test pins some of its values).
enum ClusterSlotTags {
    static func tag(for slot: Int) -> String { table[slot] }

    private static let table: [String] = {
        var tags = [String?](repeating: nil, count: ClusterSlot.count)
        var missing = ClusterSlot.count
        var candidate = 0
        while missing > 0 {
            let text = String(candidate, radix: 36)
            let slot = ClusterSlot.of(text)
            if tags[slot] == nil {
                tags[slot] = text
                missing -= 1
            }
            candidate += 1
        }
        return tags.map { $0! }
    }()
}
