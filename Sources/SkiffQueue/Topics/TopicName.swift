/// A validated topic name, with the rules of a ``QueueName``: 1 to 128 characters from
/// `A-Z a-z 0-9 _ -`, case-sensitive. Topics and queues are separate namespaces: a topic and a
/// queue may share a name.
public struct TopicName: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let rawValue: String

    public init?(_ rawValue: some StringProtocol) {
        // The same character set and length as a queue name (and so never `{`, `}` or `:` in a key).
        guard QueueName.isValid(rawValue) else { return nil }
        self.rawValue = String(rawValue)
    }

    public var description: String { rawValue }

    public static func < (lhs: TopicName, rhs: TopicName) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A validated subscription name, unique within its topic, with the rules of a ``QueueName``.
public struct SubscriptionName: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let rawValue: String

    public init?(_ rawValue: some StringProtocol) {
        guard QueueName.isValid(rawValue) else { return nil }
        self.rawValue = String(rawValue)
    }

    public var description: String { rawValue }

    public static func < (lhs: SubscriptionName, rhs: SubscriptionName) -> Bool { lhs.rawValue < rhs.rawValue }
}
