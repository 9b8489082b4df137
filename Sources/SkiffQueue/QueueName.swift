/// A validated queue name: 1 to 128 characters from `A-Z a-z 0-9 _ -`, case-sensitive.
///
/// The character set excludes `{`, `}` and `:`, so a name can never reach outside its own
/// Redis keys (`skiff:{name}:...`).
public struct QueueName: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let rawValue: String

    public static let maximumLength = 128

    public init?(_ rawValue: some StringProtocol) {
        let utf8 = rawValue.utf8
        guard (1...Self.maximumLength).contains(utf8.count), utf8.allSatisfy(Self.isAllowed) else { return nil }
        self.rawValue = String(rawValue)
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
