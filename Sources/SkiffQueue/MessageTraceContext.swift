/// The W3C Trace Context (`traceparent`, `tracestate`) a producer sent with a message. It is kept
/// beside the body, outside its size limit, and handed back with every delivery of the message, so
/// that the consumer's work joins the producer's trace (docs/tracing.md).
///
/// Only well-formed values are kept, as the W3C recommendation asks of a receiver: a `traceparent`
/// that does not parse is dropped with its `tracestate`; a `tracestate` that is longer than 512
/// bytes or has bytes outside printable ASCII is dropped alone.
public struct MessageTraceContext: Sendable, Hashable {
    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; a later version's value
    /// is cut to the fields version 00 defines, as the recommendation says to parse it.
    public let traceparent: String
    public let tracestate: String?

    public static let maximumTracestateBytes = 512

    public init?(traceparent: String, tracestate: String? = nil) {
        guard let parent = Self.normalizedTraceparent(traceparent) else { return nil }
        self.traceparent = parent
        self.tracestate = tracestate.flatMap(Self.validTracestate)
    }

    /// The form backends store: the `traceparent`, then a line feed and the `tracestate` if there
    /// is one (neither can contain a line feed). At most 568 bytes.
    public var stored: String {
        guard let tracestate else { return traceparent }
        return traceparent + "\n" + tracestate
    }

    /// Reads ``stored``; `nil` for anything else.
    public init?(stored: some StringProtocol) {
        if let newline = stored.utf8.firstIndex(of: UInt8(ascii: "\n")) {
            let state = stored[stored.utf8.index(after: newline)...]
            self.init(traceparent: String(stored[..<newline]), tracestate: String(state))
            guard self.tracestate != nil else { return nil }
        } else {
            self.init(traceparent: String(stored))
        }
    }

    /// The trace id, 32 hex digits.
    public var traceID: Substring { traceparent.dropFirst(3).prefix(32) }
    /// The producer's span id, 16 hex digits.
    public var parentID: Substring { traceparent.dropFirst(36).prefix(16) }
    /// The `sampled` flag: the producer records this trace.
    public var isSampled: Bool { UInt8(traceparent.suffix(2), radix: 16).map { $0 & 1 == 1 } ?? false }

    static func normalizedTraceparent(_ value: String) -> String? {
        // Lowercase hex only (HEXDIGLC): an uppercase digit makes it invalid.
        let bytes = Array(value.utf8)
        // version-traceId-parentId-flags; version ff is invalid, a later version may append fields.
        guard bytes.count >= 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-") else { return nil }
        let version = bytes[0..<2]
        guard version.allSatisfy(\.isLowerHex), version != [0x66, 0x66] else { return nil }
        if version == [0x30, 0x30] {
            guard bytes.count == 55 else { return nil }
        } else if bytes.count > 55, bytes[55] != UInt8(ascii: "-") {
            return nil
        }
        let traceID = bytes[3..<35]
        let parentID = bytes[36..<52]
        let flags = bytes[53..<55]
        guard traceID.allSatisfy(\.isLowerHex), parentID.allSatisfy(\.isLowerHex), flags.allSatisfy(\.isLowerHex),
            traceID.contains(where: { $0 != UInt8(ascii: "0") }), parentID.contains(where: { $0 != UInt8(ascii: "0") })
        else { return nil }
        // Version 00's fields, whatever version it came as: that is what this replica understands.
        return "00" + String(decoding: bytes[2..<55], as: UTF8.self)
    }

    static func validTracestate(_ value: String) -> String? {
        let trimmed = value.utf8.drop(while: { $0 == 0x20 || $0 == 0x09 })
        guard !trimmed.isEmpty, value.utf8.count <= maximumTracestateBytes,
            value.utf8.allSatisfy({ $0 == 0x09 || (0x20...0x7E).contains($0) })
        else { return nil }
        return value
    }
}

extension UInt8 {
    fileprivate var isLowerHex: Bool { (0x30...0x39).contains(self) || (0x61...0x66).contains(self) }
}
