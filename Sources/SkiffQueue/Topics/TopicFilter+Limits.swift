extension TopicFilter {
    /// The bounds every policy must keep; ``TopicFilter/init(policy:)`` rejects one that crosses any of them, naming
    /// the path where it does. Together they bound both compiling and matching.
    public struct Limits: Sendable, Equatable {
        /// Policy objects nested in one another, the root counting as 1: a nested key's object and each `$or` branch
        /// count one more level.
        public let maxDepth: Int
        /// Keys in the whole policy, `$or` keys included.
        public let maxKeys: Int
        /// Conditions in one leaf array; also values in one `anything-but` array.
        public let maxConditionsPerKey: Int
        /// SNS's combination count: per object, the product of its keys' counts (a leaf counts its conditions, a
        /// nested object its own combinations, an `$or` the sum of its branches' combinations).
        public let maxCombinations: Int
        /// UTF-8 bytes in one string of the policy: a key or a string condition.
        public let maxStringBytes: Int
    }

    /// The limits in force.
    public static let limits = Limits(
        maxDepth: 8,
        maxKeys: 64,
        maxConditionsPerKey: 100,
        maxCombinations: 1000,
        maxStringBytes: 1024
    )
}
