/// A validated queue name: 1 to 128 characters from `A-Z a-z 0-9 _ -`, case-sensitive, other
/// than `topics` (``reserved``: `/api/topics` is the topic API).
///
/// The character set excludes `{`, `}` and `:`, so a name can never reach outside its own
/// Redis keys (`skiff:{name}:...`).
///
/// Partition `p` (1 or more) of a partitioned queue `q` is stored as the queue `q~p`
/// (``partition(_:)``): `~` is outside the character set, so no request can name a partition or
/// collide with one; partition 0 is `q` itself. Backends read such names back from storage with
/// ``init(stored:)``.
public struct QueueName: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let rawValue: String

    public static let maximumLength = 128
    /// Partitions a queue can have at most (``QueueSettings/partitions``).
    public static let maximumPartitions = 64

    /// Names no queue can have: `/api/topics/...` addresses topics.
    public static let reserved: Set<String> = ["topics"]

    public init?(_ rawValue: some StringProtocol) {
        guard Self.isValid(rawValue), !Self.reserved.contains(String(rawValue)) else { return nil }
        self.rawValue = String(rawValue)
    }

    /// Whether `name` has the length and characters of a name (queues, topics, subscriptions).
    public static func isValid(_ name: some StringProtocol) -> Bool {
        let utf8 = name.utf8
        return (1...maximumLength).contains(utf8.count) && utf8.allSatisfy(isAllowed)
    }

    /// A name as a backend stored it: a queue name, or a partition's (`q~p`, p from 1 to
    /// ``maximumPartitions`` - 1, no leading zero).
    public init?(stored rawValue: some StringProtocol) {
        guard let tilde = rawValue.firstIndex(of: "~") else {
            // A reserved name stored before it was reserved stays readable, so sweeps and the
            // queue list still reach it (requests cannot name it any more).
            guard Self.isValid(rawValue) else { return nil }
            self.init(unchecked: String(rawValue))
            return
        }
        let digits = rawValue[rawValue.index(after: tilde)...]
        guard let base = QueueName(rawValue[..<tilde]), let index = Int(digits), (1..<Self.maximumPartitions).contains(index),
            String(index) == digits
        else { return nil }
        self = base.partition(index)
    }

    private init(unchecked rawValue: String) { self.rawValue = rawValue }

    /// The queue that stores partition `index` of this one: itself for 0, `name~index` otherwise.
    public func partition(_ index: Int) -> QueueName {
        precondition((0..<Self.maximumPartitions).contains(index), "partition \(index) is out of range")
        return index == 0 ? logical : QueueName(unchecked: logical.rawValue + "~" + String(index))
    }

    /// Which partition of ``logical`` this name stores (0 for a queue's own name).
    public var partitionIndex: Int {
        guard let tilde = rawValue.utf8.lastIndex(of: UInt8(ascii: "~")) else { return 0 }
        return Int(rawValue[rawValue.index(after: tilde)...]) ?? 0
    }

    /// The queue a partition belongs to (the name itself when it is no partition).
    public var logical: QueueName {
        guard let tilde = rawValue.utf8.firstIndex(of: UInt8(ascii: "~")) else { return self }
        return QueueName(unchecked: String(rawValue[..<tilde]))
    }

    public var description: String { rawValue }

    public static func < (lhs: QueueName, rhs: QueueName) -> Bool { lhs.rawValue < rhs.rawValue }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }
}
