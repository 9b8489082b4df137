import NIOCore
import NIOHTTP1

#if canImport(SkiffAPI)
@testable import SkiffAPI
#endif

/// What `FastPathRequestHead.parse` must keep for any bytes (issue 16):
/// - it never reads past the bytes it is given;
/// - a head it accepts ends in the first CRLF CRLF, is read the same from its own bytes alone,
///   and every shorter prefix of it is `incomplete` (bytes arrive in pieces);
/// - NIO's decoder (the router path) accepts the same head, with the same method, target and
///   `Content-Length`, and ends the request where the fast path would: after `Content-Length`
///   body bytes, or after the last chunk, a request appended behind it is the next request.
///
/// Intentional differences, allowed here and nowhere else:
/// - A method NIO does not know (llhttp has a fixed list) is refused by NIO: the fast path reads
///   such a head as `other` and passes it to the routes, which answer 400 and close, so nothing
///   behind it is ever executed.
/// - NIO stops parsing after a request it takes for an upgrade (`Upgrade` with `Connection:
///   upgrade`, or `CONNECT`), and refuses any byte after a `Connection: close` request: the router
///   path reads nothing behind them. The fast path routes both (`hasSpecialHeader`) and reads on;
///   the live tests (FastPathSmugglingTests) check that nothing behind them is executed.
public enum RequestHeadOracle {
    public static func check(_ bytes: [UInt8]) throws(OracleFailure) {
        let parsed = try withExactAllocation(bytes) { FastPathRequestHead.parse($0) }
        guard case .head(let head) = parsed else {
            if parsed == .incomplete, bytes.count >= FastPathRequestHead.maximumBytes {
                throw OracleFailure("\(bytes.count) bytes without a head are still incomplete: \(OracleFailure.literal(bytes))")
            }
            return
        }
        try checkSelfConsistency(head, bytes)
        try checkAgainstRouterPath(head, bytes)
    }

    private static func checkSelfConsistency(_ head: FastPathRequestHead, _ bytes: [UInt8]) throws(OracleFailure) {
        let input = OracleFailure.literal(bytes)
        guard head.length >= 4, head.length <= bytes.count, bytes[(head.length - 4)..<head.length].elementsEqual([13, 10, 13, 10]) else {
            throw OracleFailure("a head of length \(head.length) does not end in CRLF CRLF within the input: \(input)")
        }
        let own = try withExactAllocation(bytes[..<head.length]) { FastPathRequestHead.parse($0) }
        guard own == .head(head) else { throw OracleFailure("the head's own bytes read \(own), the whole input \(head): \(input)") }
        for cut in Set([head.length - 1, head.length - 2, head.length - 3, head.length / 2]) where cut >= 0 {
            let prefix = try withExactAllocation(bytes[..<cut]) { FastPathRequestHead.parse($0) }
            guard prefix == .incomplete else { throw OracleFailure("the first \(cut) bytes of a head read \(prefix), not incomplete: \(input)") }
        }
        guard head.contentLength >= 0, !(head.isChunked && head.contentLength != 0) else {
            throw OracleFailure("content length \(head.contentLength), chunked \(head.isChunked): \(input)")
        }
    }

    private static func checkAgainstRouterPath(_ head: FastPathRequestHead, _ bytes: [UInt8]) throws(OracleFailure) {
        // The body as the fast path frames it, then a request it never sees: where the router path
        // finds that request is where it thinks the first one ended. Huge lengths get a few body
        // bytes only: then the request must still be incomplete.
        let framedWhole = head.contentLength <= 65_536
        var framed = Array(bytes[..<head.length])
        if head.isChunked {
            framed += Array("0\r\n\r\n".utf8)
        } else {
            framed += [UInt8](repeating: UInt8(ascii: "x"), count: framedWhole ? head.contentLength : 16)
        }
        if framedWhole { framed += Sentinel.request }
        let decoded = RouterPathDecoding(framed)
        let input = OracleFailure.literal(bytes[..<head.length])

        guard let first = decoded.requests.first else {
            if head.method == .other { return }  // a method NIO does not know: 400 and close
            throw OracleFailure(
                "the fast path reads \(head.method) \(head.target) but NIO refuses the head (\(String(describing: decoded.error))): \(input)"
            )
        }
        let method = String(decoding: bytes.prefix { $0 != UInt8(ascii: " ") }, as: UTF8.self)
        guard first.head.method.rawValue == method, first.head.uri == head.target, first.head.version == .http1_1 else {
            throw OracleFailure(
                "NIO reads \(first.head.method) \(first.head.uri) \(first.head.version), the fast path \(method) \(head.target): \(input)"
            )
        }
        let contentLengths = first.head.headers["content-length"]
        let transferEncodings = first.head.headers["transfer-encoding"]
        if head.isChunked {
            guard contentLengths.isEmpty, transferEncodings.count == 1 else {
                throw OracleFailure(
                    "chunked for the fast path, NIO sees Content-Length \(contentLengths), Transfer-Encoding \(transferEncodings): \(input)"
                )
            }
        } else {
            // NIO keeps the whitespace after a value (`Content-Length: 4 `), and frames by the number.
            guard transferEncodings.isEmpty, contentLengths.count <= 1, (contentLengths.first.flatMap { Int(trimmed($0)) } ?? 0) == head.contentLength
            else {
                throw OracleFailure(
                    "Content-Length \(head.contentLength) for the fast path, "
                        + "NIO sees Content-Length \(contentLengths), Transfer-Encoding \(transferEncodings): \(input)"
                )
            }
        }
        for (name, value) in [("x-request-id", head.requestID), ("authorization", head.authorization)] {
            let values = first.head.headers[name]
            guard value == values.last.map({ trimmed($0) }) else {
                throw OracleFailure("\(name) is \(String(describing: value)) for the fast path, \(values) for NIO: \(input)")
            }
        }

        let isUpgrade = first.head.method == .CONNECT || first.head.headers.contains(name: "upgrade")
        guard framedWhole else {
            guard !first.isComplete, decoded.requests.count == 1 else {
                throw OracleFailure("NIO ended a request of \(head.contentLength) bytes early: \(input)")
            }
            return
        }
        if isUpgrade, decoded.requests.count == 1, decoded.error == nil { return }  // NIO reads nothing after an upgrade
        let seen = decoded.requests.map { "\($0.head.method) \($0.head.uri) body \($0.body.count) complete \($0.isComplete)" }
        let disagreement = OracleFailure(
            "NIO ends the request elsewhere than the fast path (length \(head.length) + \(head.contentLength), chunked \(head.isChunked)): "
                + "NIO saw \(seen), error \(String(describing: decoded.error)): \(input)"
        )
        guard first.isComplete, first.body.count == (head.isChunked ? 0 : head.contentLength) else { throw disagreement }
        // After `Connection: close` NIO refuses any byte more (the router path answers and closes).
        if !first.head.isKeepAlive {
            guard decoded.requests.count == 1 else { throw disagreement }
            return
        }
        guard decoded.requests.count == 2, decoded.requests[1].head.uri == Sentinel.target, decoded.requests[1].isComplete, decoded.error == nil
        else {
            throw disagreement
        }
    }

    private static func trimmed(_ value: String) -> String {
        var scalars = Substring(value).unicodeScalars
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        return String(scalars)
    }
}
