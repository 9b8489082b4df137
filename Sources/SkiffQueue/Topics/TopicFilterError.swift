/// Why a filter policy was rejected, and where.
///
/// ``path`` names the offending part of the policy, JSONPath-like: `$` is the policy's root, object keys are joined by
/// `.` (`$.store.price`), array indexes stand in brackets (`$.store.price[1]`), and keys that are not plain identifiers
/// (letters, digits, `_` and `$`, not starting with a digit) are quoted in brackets (`$.price[0]["anything-but"]`).
/// Keys longer than 64 characters are cut short in a path, ending in `…`.
public struct TopicFilterError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where in the policy the problem is, e.g. `$.store.price[1]`; `$` alone for the policy as a whole.
    public let path: String
    /// What is wrong there, in a sentence fit to show to the user who wrote the policy.
    public let message: String

    /// Makes an error; ``TopicFilter/init(policy:)`` is what normally throws one.
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    /// `filter <path>: <message>`.
    public var description: String { "filter \(path): \(message)" }

    init(_ path: PolicyPath, _ message: String) {
        self.init(path: path.description, message: message)
    }
}
