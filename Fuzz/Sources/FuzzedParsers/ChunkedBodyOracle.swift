#if canImport(SkiffAPI)
@testable import SkiffAPI
#endif

/// What `ChunkedBodyFraming.scan` must keep for any bytes (issue 16):
/// - it agrees with ``ReferenceChunkedDecoder`` (the same strict grammar, written as a plain
///   recursive reading of the whole buffer) on whether and where the body ends;
/// - it says the same whether the bytes come at once or in pieces of any size;
/// - it never reads past the bytes it is given;
/// - where it finds the end, NIO's decoder (the router path) finds it too, with the same data,
///   and reads the request appended behind it as the next request; where it needs more, NIO has
///   not ended the body either.
public enum ChunkedBodyOracle {
    private static let head = Array("POST /api/q/batch HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)

    public static func check(_ bytes: [UInt8]) throws(OracleFailure) {
        let input = OracleFailure.literal(bytes)
        let reference = ReferenceChunkedDecoder.decode(bytes)
        var framing = ChunkedBodyFraming()
        let whole = try withExactAllocation(bytes) { framing.scan($0) }
        guard whole == reference.outcome else { throw OracleFailure("scanned at once: \(whole), the reference: \(reference.outcome): \(input)") }

        // The same bytes in pieces whose sizes come from the bytes themselves (so a crash replays).
        var pieces = ChunkedBodyFraming()
        var offset = 0
        var inPieces = ChunkedBodyFraming.Outcome.needsMore
        var size = Int(bytes.first ?? 1) % 7 + 1
        while offset < bytes.count {
            let end = min(bytes.count, offset + size)
            switch try withExactAllocation(bytes[offset..<end], { pieces.scan($0) }) {
            case .needsMore: offset = end
            case .ended(let count):
                inPieces = .ended(bytes: offset + count)
                offset = bytes.count + 1
            case .unframeable:
                inPieces = .unframeable
                offset = bytes.count + 1
            }
            size = Int(bytes[end - 1]) % 13 + 1
        }
        guard inPieces == reference.outcome else {
            throw OracleFailure("scanned in pieces: \(inPieces), the reference: \(reference.outcome): \(input)")
        }

        switch reference.outcome {
        case .ended(let count):
            let decoded = RouterPathDecoding(head + bytes[..<count] + Sentinel.request)
            guard decoded.error == nil, decoded.requests.count == 2, decoded.requests[0].isComplete, decoded.requests[0].body == reference.data,
                decoded.requests[1].head.uri == Sentinel.target, decoded.requests[1].isComplete
            else {
                let seen = decoded.requests.map { "\($0.head.uri) body \(OracleFailure.literal($0.body)) complete \($0.isComplete)" }
                throw OracleFailure(
                    "the body ends after \(count) bytes with data \(OracleFailure.literal(reference.data)); "
                        + "NIO saw \(seen), error \(String(describing: decoded.error)): \(input)"
                )
            }
        case .needsMore:
            let decoded = RouterPathDecoding(head + bytes)
            guard !(decoded.requests.first?.isComplete ?? false), decoded.requests.count <= 1 else {
                throw OracleFailure("the body needs more bytes but NIO ended it: \(input)")
            }
        case .unframeable:
            break  // the decoder reads the rest of the connection alone
        }
    }
}

/// The strict chunked grammar of ``ChunkedBodyFraming``, read the plain way: the whole buffer at
/// once, chunk by chunk. `1*8HEXDIG CRLF data CRLF`, repeated, ended by a size of zero and an
/// empty line; no extensions, no whitespace, no trailer fields.
enum ReferenceChunkedDecoder {
    static func decode(_ bytes: [UInt8]) -> (outcome: ChunkedBodyFraming.Outcome, data: [UInt8]) {
        var data: [UInt8] = []
        var position = 0
        while true {
            // The size line.
            var digits = 0
            var size = 0
            while position + digits < bytes.count, let value = hexValue(bytes[position + digits]) {
                if digits == 8 { return (.unframeable, data) }
                size = size * 16 + value
                digits += 1
            }
            if position + digits == bytes.count { return (.needsMore, data) }
            if digits == 0 { return (.unframeable, data) }
            position += digits
            switch expectLineEnd(bytes, at: position) {
            case .some(false): return (.unframeable, data)
            case nil: return (.needsMore, data)
            case .some(true): position += 2
            }
            if size == 0 {
                switch expectLineEnd(bytes, at: position) {
                case .some(false): return (.unframeable, data)
                case nil: return (.needsMore, data)
                case .some(true): return (.ended(bytes: position + 2), data)
                }
            }
            // The data and its CRLF.
            if bytes.count - position < size { return (.needsMore, data) }
            data += bytes[position..<(position + size)]
            position += size
            switch expectLineEnd(bytes, at: position) {
            case .some(false): return (.unframeable, data)
            case nil: return (.needsMore, data)
            case .some(true): position += 2
            }
        }
    }

    /// `true` for CRLF at `position`, `false` for anything else, `nil` when the bytes end first.
    private static func expectLineEnd(_ bytes: [UInt8], at position: Int) -> Bool? {
        guard position < bytes.count else { return nil }
        guard bytes[position] == 13 else { return false }
        guard position + 1 < bytes.count else { return nil }
        return bytes[position + 1] == 10
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A")) + 10
        default: nil
        }
    }
}
