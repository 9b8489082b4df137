/// Finds where a `Transfer-Encoding: chunked` request body ends, as ``FastPathHandler`` passes the
/// body on to NIO's decoder, so that the connection's next request is read by the fast path again.
///
/// Strict, like ``FastPathRequestHead``: chunk sizes of 1 to 8 hex digits with no extensions and
/// no whitespace, every line ended by CRLF, and no trailer fields. Anything else is `unframeable`
/// and the handler gives the rest of the connection to the decoder, so the two never disagree on
/// where the body ends (no request smuggling between them). Resumable: bytes come as they are read.
struct ChunkedBodyFraming: Equatable {
    enum Outcome: Equatable {
        /// Every byte scanned belongs to the body, and more is to come.
        case needsMore
        /// The body ends after this many of the bytes scanned.
        case ended(bytes: Int)
        /// Outside the strict grammar: not for this scanner.
        case unframeable
    }

    private enum State: Equatable {
        /// In a chunk-size line: digits read so far and their value.
        case size(digits: Int, value: Int)
        /// After a chunk size's CR.
        case sizeLineFeed(value: Int)
        case data(remaining: Int)
        case dataCarriageReturn
        case dataLineFeed
        /// After the last chunk's size line: the empty line that ends the body.
        case endCarriageReturn
        case endLineFeed
    }

    /// Eight hex digits: at most 4 GiB per chunk; the routes' body limit applies long before.
    static let maximumSizeDigits = 8

    private var state = State.size(digits: 0, value: 0)

    mutating func scan(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch state {
            case .size(let digits, let value):
                if byte == Self.cr, digits > 0 {
                    state = .sizeLineFeed(value: value)
                } else if let digit = Self.hexValue(byte), digits < Self.maximumSizeDigits {
                    state = .size(digits: digits + 1, value: value << 4 | digit)
                } else {
                    return .unframeable
                }
            case .sizeLineFeed(let value):
                guard byte == Self.lf else { return .unframeable }
                state = value == 0 ? .endCarriageReturn : .data(remaining: value)
            case .data(let remaining):
                let taken = min(remaining, bytes.count - index)
                state = taken == remaining ? .dataCarriageReturn : .data(remaining: remaining - taken)
                index += taken
                continue
            case .dataCarriageReturn:
                guard byte == Self.cr else { return .unframeable }
                state = .dataLineFeed
            case .dataLineFeed:
                guard byte == Self.lf else { return .unframeable }
                state = .size(digits: 0, value: 0)
            case .endCarriageReturn:
                // A trailer field would start here.
                guard byte == Self.cr else { return .unframeable }
                state = .endLineFeed
            case .endLineFeed:
                guard byte == Self.lf else { return .unframeable }
                return .ended(bytes: index + 1)
            }
            index += 1
        }
        return .needsMore
    }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A")) + 10
        default: nil
        }
    }
}
