/// The name of an object in a payload store, relative to the store's root or bucket, such as
/// `orders/01JD3Z8V9Q2W4X6Y8Z0A1B2C3D`. Callers choose keys; this is the one place that decides
/// which are acceptable, so no key can reach outside its store.
///
/// A key is 1 to ``maximumLength`` bytes of `A-Z a-z 0-9 _ - . ~` in segments separated by `/`:
/// no empty segment (so no leading, trailing or doubled `/`), and no segment starting with `.`
/// (so no `.` or `..`, and the filesystem store's temporary files, which start with `.`, can never
/// be named by a key).
public struct PayloadKey: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let rawValue: String

    /// Well under Cloud Storage's 1 024-byte object names and common filesystems' path limits.
    public static let maximumLength = 512

    /// - Throws: ``PayloadStoreError/invalidKey(_:)`` when `rawValue` breaks a rule.
    public init(_ rawValue: String) throws(PayloadStoreError) {
        guard Self.isValid(rawValue, allowingPrefix: false) else {
            throw .invalidKey(
                "\"\(rawValue.prefix(80))\" (1 to \(Self.maximumLength) bytes of A-Z a-z 0-9 _ - . ~ in /-separated segments, none empty or starting with .)")
        }
        self.rawValue = rawValue
    }

    /// Checks a listing prefix: empty (every object), or the start of a key, which may end with `/`.
    public static func validatePrefix(_ prefix: String) throws(PayloadStoreError) {
        guard prefix.isEmpty || isValid(prefix, allowingPrefix: true) else {
            throw .invalidKey("prefix \"\(prefix.prefix(80))\" is not the start of a valid key")
        }
    }

    public var description: String { rawValue }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    private static func isValid(_ value: String, allowingPrefix: Bool) -> Bool {
        let utf8 = value.utf8
        guard (1...maximumLength).contains(utf8.count) else { return false }
        var segmentLength = 0
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "/"):
                guard segmentLength > 0 else { return false }
                segmentLength = 0
            case UInt8(ascii: "."):
                guard segmentLength > 0 else { return false }
                segmentLength += 1
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "~"):
                segmentLength += 1
            default:
                return false
            }
        }
        // A key's last segment is not empty; a prefix may end with `/`.
        return segmentLength > 0 || allowingPrefix
    }
}
