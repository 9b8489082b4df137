import NIOCore

/// An HTTP/1.1 request head as ``FastPathHandler`` reads it from the raw bytes: strictly, and only
/// what it needs to serve the request or to know where the request ends.
///
/// Anything outside a narrow, unambiguous grammar is `unframeable`: another HTTP version, a
/// `Transfer-Encoding` other than one `chunked` (or with a `Content-Length`), a repeated or
/// malformed `Content-Length`, folded or non-ASCII header lines, bare line feeds. The handler then
/// gives the connection to NIO's HTTP parser for good, so the two parsers can never disagree on
/// where a request ends (no request smuggling between them). A chunked body is framed by
/// ``ChunkedBodyFraming``, as strictly.
struct FastPathRequestHead: Equatable {
    enum Method: Equatable {
        case get, post, other
    }

    enum Parsed: Equatable {
        /// More bytes are needed (the head is not complete yet and within the size limit).
        case incomplete
        /// Not for this parser: NIO's decoder takes the connection from here on.
        case unframeable
        case head(FastPathRequestHead)
    }

    /// Beyond this size a head is left to NIO's decoder (and its limits).
    static var maximumBytes: Int { 16 << 10 }

    var method: Method
    /// The request target as sent (origin form: path and query).
    var target: String
    /// Bytes up to and including the empty line.
    var length: Int
    /// `Content-Length`, 0 when absent.
    var contentLength: Int
    /// `Transfer-Encoding: chunked`: the body's end is found by ``ChunkedBodyFraming``. Such a
    /// request always goes to the routes (`hasSpecialHeader`).
    var isChunked = false
    var requestID: String?
    /// `Authorization`, for the API keys.
    var authorization: String?
    /// A header that changes how the request is handled: `Expect`, `Idempotency-Key`, `traceparent`, `Upgrade`,
    /// or a `Connection` other than `keep-alive`. Such a request goes to the routes.
    var hasSpecialHeader = false
    /// `Upgrade`, or a `Connection` other than `keep-alive`: the connection may end with this
    /// request or change protocol, so what follows it on the connection is not this parser's.
    var mayEndConnection = false

    /// The request line: `METHOD SP target SP HTTP/1.1 CRLF`.
    private static let version: [UInt8] = Array("HTTP/1.1".utf8)

    static func parse(_ buffer: ByteBuffer) -> Parsed {
        buffer.withUnsafeReadableBytes { bytes in parse(bytes) }
    }

    static func parse(_ bytes: UnsafeRawBufferPointer) -> Parsed {
        let limit = min(bytes.count, maximumBytes)
        // The end of the head: the first CRLF CRLF. Every line feed must end a CRLF, and since the
        // head ends in CRLF CRLF, every scan below stops at a CR before `end` (no bounds to pass).
        var end = -1
        var index = 3
        while index < limit {
            if bytes[index] == lf {
                guard bytes[index - 1] == cr else { return .unframeable }
                if bytes[index - 2] == lf, bytes[index - 3] == cr {
                    end = index + 1
                    break
                }
            }
            index += 1
        }
        guard end > 0 else { return bytes.count >= maximumBytes ? .unframeable : .incomplete }

        // Request line.
        var position = 0
        while position < end, isTokenCharacter(bytes[position]) { position += 1 }
        let methodEnd = position
        guard methodEnd > 0, position < end, bytes[position] == space else { return .unframeable }
        let method: Method
        if methodEnd == 3, bytes[0] == UInt8(ascii: "G"), bytes[1] == UInt8(ascii: "E"), bytes[2] == UInt8(ascii: "T") {
            method = .get
        } else if methodEnd == 4, bytes[0] == UInt8(ascii: "P"), bytes[1] == UInt8(ascii: "O"), bytes[2] == UInt8(ascii: "S"),
            bytes[3] == UInt8(ascii: "T")
        {
            method = .post
        } else {
            method = .other
        }
        position += 1
        let targetStart = position
        while position < end, bytes[position] > space, bytes[position] < 0x7F { position += 1 }
        guard position > targetStart, bytes[targetStart] == UInt8(ascii: "/"), position < end, bytes[position] == space else {
            return .unframeable
        }
        let target = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[targetStart..<position]), as: UTF8.self)
        position += 1
        guard position + version.count + 2 <= end else { return .unframeable }
        for (offset, byte) in version.enumerated() where bytes[position + offset] != byte { return .unframeable }
        position += version.count
        guard bytes[position] == cr, bytes[position + 1] == lf else { return .unframeable }
        position += 2

        var head = FastPathRequestHead(method: method, target: target, length: end, contentLength: 0)
        var sawContentLength = false
        // Header lines, up to the empty line.
        while position < end - 2 {
            let nameStart = position
            while position < end, isTokenCharacter(bytes[position]) { position += 1 }
            guard position > nameStart, bytes[position] == UInt8(ascii: ":") else { return .unframeable }
            let nameEnd = position
            position += 1
            while bytes[position] == space || bytes[position] == tab { position += 1 }
            let valueStart = position
            while bytes[position] != cr {
                let byte = bytes[position]
                guard (byte >= space && byte < 0x7F) || byte == tab else { return .unframeable }
                position += 1
            }
            // A bare CR is not a line end.
            guard bytes[position + 1] == lf else { return .unframeable }
            let lineEnd = position
            var valueEnd = position
            while valueEnd > valueStart, bytes[valueEnd - 1] == space || bytes[valueEnd - 1] == tab { valueEnd -= 1 }
            // llhttp refuses a tab after a length or a coding (`Content-Length: 4 \t`): the
            // framing headers take trailing spaces only, or they are the decoder's.
            let tabAfterValue = bytes[valueEnd..<lineEnd].contains(tab)
            position += 2
            let name = UnsafeRawBufferPointer(rebasing: bytes[nameStart..<nameEnd])
            let value = UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueEnd])
            switch name.count {
            case 6 where equalsLowercased(name, "expect"):
                head.hasSpecialHeader = true
            case 7 where equalsLowercased(name, "upgrade"):
                head.hasSpecialHeader = true
                head.mayEndConnection = true
            case 10 where equalsLowercased(name, "connection"):
                if !equalsLowercased(value, "keep-alive") {
                    head.hasSpecialHeader = true
                    head.mayEndConnection = true
                }
            case 11 where equalsLowercased(name, "traceparent"):
                // Kept with the message: the route's to read.
                head.hasSpecialHeader = true
            case 12 where equalsLowercased(name, "x-request-id"):
                head.requestID = String(decoding: value, as: UTF8.self)
            case 13 where equalsLowercased(name, "authorization"):
                // Twice is for the route to judge.
                if head.authorization != nil { head.hasSpecialHeader = true }
                head.authorization = String(decoding: value, as: UTF8.self)
            case 14 where equalsLowercased(name, "content-length"):
                guard !sawContentLength, !tabAfterValue, (1...15).contains(value.count),
                    value.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
                else { return .unframeable }
                sawContentLength = true
                head.contentLength = value.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
            case 15 where equalsLowercased(name, "idempotency-key"):
                head.hasSpecialHeader = true
            case 17 where equalsLowercased(name, "transfer-encoding"):
                // Exactly one coding, `chunked`, in one header line; anything else is the decoder's.
                guard !head.isChunked, !tabAfterValue, equalsLowercased(value, "chunked") else { return .unframeable }
                head.isChunked = true
                head.hasSpecialHeader = true
            default:
                break
            }
        }
        // Both framings at once is how requests are smuggled: never ours to settle.
        if head.isChunked, sawContentLength { return .unframeable }
        return .head(head)
    }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")
    private static let space = UInt8(ascii: " ")
    private static let tab = UInt8(ascii: "\t")

    /// RFC 9110 `tchar`.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// Whether `bytes`, ASCII-lowercased, are `lowercase`.
    private static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for index in 0..<bytes.count {
            var byte = bytes[index]
            if byte >= UInt8(ascii: "A"), byte <= UInt8(ascii: "Z") { byte += 0x20 }
            if byte != expected[index] { return false }
        }
        return true
    }
}
