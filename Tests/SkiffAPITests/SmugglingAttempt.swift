import Foundation
import SkiffTestSupport
import Testing

/// A request-smuggling attempt (issue 16): one connection's bytes that parsers can frame
/// differently (conflicting `Content-Length` and `Transfer-Encoding`, obs-fold, bare LF...), with
/// a second request hidden where one reading sees a body and another a request. The hidden request
/// stores a message in a queue of its own, so whether it ran is a look at that queue.
///
/// Shared by the fast-path tests (SkiffAPITests) and the cluster tests (HAProxy and a replica),
/// through a symlink in Tests/SkiffClusterTests.
struct SmugglingAttempt: CustomTestStringConvertible, Sendable {
    enum Kind: Sendable {
        /// Two readings of the framing: the hidden request must never run. The answer is a 400 or a
        /// closed connection, or the outer request alone is answered (its body held the hidden one).
        case ambiguousFraming
        /// A `Connection: close` request with a request behind it, which must never run.
        case afterConnectionClose
        /// The request behind a refused upgrade may run (the connection stays HTTP) but only if it
        /// is answered on this connection.
        case afterUpgrade
    }

    let name: String
    let kind: Kind
    private let build: @Sendable (_ queue: String, _ hiddenQueue: String) -> String

    var testDescription: String { name }

    /// The attempt's bytes: its requests go to `queue`, the hidden one to `hiddenQueue`.
    func bytes(queue: String, hiddenQueue: String) -> String { build(queue, hiddenQueue) }

    private init(_ name: String, _ kind: Kind, _ build: @escaping @Sendable (_ queue: String, _ hiddenQueue: String) -> String) {
        self.name = name
        self.kind = kind
        self.build = build
    }

    /// The request that must not run where it was hidden: it stores `"hidden"` in `hiddenQueue`.
    static func hidden(_ hiddenQueue: String) -> String {
        "POST /api/\(hiddenQueue) HTTP/1.1\r\nHost: skiff\r\nX-Request-Id: hidden\r\n"
            + "Content-Type: application/json\r\nContent-Length: 8\r\n\r\n\"hidden\""
    }

    /// `Content-Length` covers a last chunk and the hidden request; the chunks end before it.
    private static func lengthCoversChunks(_ name: String, _ transferEncoding: String) -> Self {
        Self(name, .ambiguousFraming) { queue, hiddenQueue in
            let body = "0\r\n\r\n" + hidden(hiddenQueue)
            return
                "POST /api/\(queue) HTTP/1.1\r\nHost: skiff\r\nX-Request-Id: outer\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\(transferEncoding)\r\n\r\n\(body)"
        }
    }

    static let all: [SmugglingAttempt] = [
        // CL.TE: a reader of the length sees one request, a reader of the chunks two.
        lengthCoversChunks("CL.TE", "Transfer-Encoding: chunked"),
        // TE.CL: the hidden request is a chunk's data; the length ends the body before it.
        Self("TE.CL", .ambiguousFraming) { queue, hiddenQueue in
            let hiddenRequest = hidden(hiddenQueue)
            let size = String(hiddenRequest.utf8.count, radix: 16) + "\r\n"
            return
                "POST /api/\(queue) HTTP/1.1\r\nHost: skiff\r\nX-Request-Id: outer\r\n"
                + "Transfer-Encoding: chunked\r\nContent-Length: \(size.utf8.count)\r\n\r\n"
                + size + hiddenRequest + "\r\n0\r\n\r\n"
        },
        // Transfer-Encoding written so that some parsers miss it, next to a Content-Length.
        lengthCoversChunks("TE with a space before the colon", "Transfer-Encoding : chunked"),
        lengthCoversChunks("TE xchunked", "Transfer-Encoding: xchunked"),
        lengthCoversChunks("TE chunked, identity", "Transfer-Encoding: chunked, identity"),
        lengthCoversChunks("TE twice", "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked"),
        lengthCoversChunks("TE in capitals after a tab", "Transfer-Encoding:\tCHUNKED"),
        // obs-fold: a header continued on the next line, which RFC 9112 lets a server refuse.
        lengthCoversChunks("TE folded onto the next line", "Transfer-Encoding:\r\n chunked"),
        lengthCoversChunks("TE folded into another header", "X-Filler: a\r\n Transfer-Encoding: chunked"),
        // Bare LF: a line end for some parsers, a byte inside a line for others.
        lengthCoversChunks("TE after a bare LF", "X-Filler: a\nTransfer-Encoding: chunked"),
        Self("head ended by bare LFs", .ambiguousFraming) { queue, hiddenQueue in
            "POST /api/\(queue) HTTP/1.1\r\nHost: skiff\r\nX-Request-Id: outer\r\nContent-Length: 0\n\n" + hidden(hiddenQueue)
        },
        Self("head in bare LFs, body a request", .ambiguousFraming) { queue, hiddenQueue in
            let hiddenRequest = hidden(hiddenQueue)
            return "POST /api/\(queue) HTTP/1.1\nHost: skiff\nX-Request-Id: outer\nContent-Length: \(hiddenRequest.utf8.count)\n\n" + hiddenRequest
        },
        // Two lengths.
        Self("Content-Length 0 then n", .ambiguousFraming) { queue, hiddenQueue in
            let hiddenRequest = hidden(hiddenQueue)
            return
                "POST /api/\(queue) HTTP/1.1\r\nHost: skiff\r\nX-Request-Id: outer\r\n"
                + "Content-Length: 0\r\nContent-Length: \(hiddenRequest.utf8.count)\r\n\r\n"
                + hiddenRequest
        },
        Self("Content-Length n then 0", .ambiguousFraming) { queue, hiddenQueue in
            let hiddenRequest = hidden(hiddenQueue)
            return
                "POST /api/\(queue) HTTP/1.1\r\nHost: skiff\r\nX-Request-Id: outer\r\n"
                + "Content-Length: \(hiddenRequest.utf8.count)\r\nContent-Length: 0\r\n\r\n"
                + hiddenRequest
        },
        Self("Content-Length n, 0", .ambiguousFraming) { queue, hiddenQueue in
            let hiddenRequest = hidden(hiddenQueue)
            return "POST /api/\(queue) HTTP/1.1\r\nHost: skiff\r\nX-Request-Id: outer\r\nContent-Length: \(hiddenRequest.utf8.count), 0\r\n\r\n"
                + hiddenRequest
        },
        // A GET whose body is a request: a reader that skips bodies on GET would run it.
        Self("GET with a body", .ambiguousFraming) { queue, hiddenQueue in
            let hiddenRequest = hidden(hiddenQueue)
            return "GET /api/\(queue)?timeout=0 HTTP/1.1\r\nHost: skiff\r\nX-Request-Id: outer\r\nContent-Length: \(hiddenRequest.utf8.count)\r\n\r\n"
                + hiddenRequest
        },
        // The hidden request as a well-framed chunk: a plain body, never a request.
        Self("chunked body holding a request", .ambiguousFraming) { queue, hiddenQueue in
            let hiddenRequest = hidden(hiddenQueue)
            return "POST /api/\(queue) HTTP/1.1\r\nHost: skiff\r\nX-Request-Id: outer\r\nTransfer-Encoding: chunked\r\n\r\n"
                + String(hiddenRequest.utf8.count, radix: 16) + "\r\n" + hiddenRequest + "\r\n0\r\n\r\n"
        },
        Self("request after Connection: close", .afterConnectionClose) { queue, hiddenQueue in
            "GET /api/\(queue)?timeout=0 HTTP/1.1\r\nHost: skiff\r\nX-Request-Id: outer\r\nConnection: close\r\n\r\n" + hidden(hiddenQueue)
        },
        Self("request after a refused upgrade", .afterUpgrade) { queue, hiddenQueue in
            "GET /api/\(queue)?timeout=0 HTTP/1.1\r\nHost: skiff\r\nX-Request-Id: outer\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                + hidden(hiddenQueue)
        },
    ]
}

/// What a server answered on one connection to an attempt followed by a probe request.
struct SmugglingOutcome: CustomStringConvertible {
    struct Response {
        var status: Int
        var requestID: String?
        var body: String
    }

    var responses: [Response] = []
    /// The server closed the connection (`false`: it went quiet with the connection open).
    var closed = false

    /// The hidden request was answered on this connection.
    var hiddenAnswered: Bool { responses.contains { $0.requestID == "hidden" } }
    /// The probe sent after the attempt was answered: the connection went on.
    var probeAnswered: Bool { responses.contains { $0.requestID == "probe" } }

    var description: String {
        "\(responses.map { "\($0.status) \($0.requestID ?? "-")" }), \(closed ? "closed" : "left open")"
    }

    /// Sends `attempt` (for `queue` and `hiddenQueue`) and then a probe request on one connection
    /// to 127.0.0.1:`port`, and reads until the probe is answered or the server closes. A server
    /// that goes quiet with the connection open ends the read after `quietSeconds` (no timing is
    /// asserted: `closed` is then `false`). Runs on a thread of its own, as blocking I/O.
    static func exchange(port: Int, _ text: String, quietSeconds: Int = 5) async throws -> SmugglingOutcome {
        let probe = "GET /health HTTP/1.1\r\nHost: skiff\r\nX-Request-Id: probe\r\n\r\n"
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result { try blockingExchange(port: port, Array((text + probe).utf8), quietSeconds: quietSeconds) })
            }.start()
        }
    }

    private static func blockingExchange(port: Int, _ bytes: [UInt8], quietSeconds: Int) throws -> SmugglingOutcome {
        guard let fd = LoopbackSocket.connect(port: port, receiveTimeoutSeconds: quietSeconds) else { throw POSIXError(.ECONNREFUSED) }
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }

        var outcome = SmugglingOutcome()
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while !outcome.probeAnswered {
            if let (response, consumed) = parseResponse(received) {
                outcome.responses.append(response)
                received.removeFirst(consumed)
                continue
            }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 || (count < 0 && errno == ECONNRESET) {
                outcome.closed = true
                break
            }
            if count < 0 { break }  // quiet with the connection open
            received += buffer[0..<count]
        }
        return outcome
    }

    /// One response with a `Content-Length` body (or none) at the start of `bytes`.
    private static func parseResponse(_ bytes: [UInt8]) -> (Response, consumed: Int)? {
        guard let headEnd = bytes.indices.dropLast(3).first(where: { bytes[$0...($0 + 3)].elementsEqual([13, 10, 13, 10]) }) else { return nil }
        let lines = String(decoding: bytes[..<headEnd], as: UTF8.self).components(separatedBy: "\r\n")
        let status = lines[0].split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        var length = 0
        var requestID: String?
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            switch parts[0].lowercased() {
            case "content-length": length = Int(parts[1]) ?? 0
            case "x-request-id": requestID = parts[1]
            default: break
            }
        }
        let bodyStart = headEnd + 4
        guard bytes.count - bodyStart >= length else { return nil }
        let body = String(decoding: bytes[bodyStart..<(bodyStart + length)], as: UTF8.self)
        return (Response(status: status, requestID: requestID, body: body), bodyStart + length)
    }
}

extension SmugglingAttempt {
    /// Checks what one server did with this attempt: `hiddenRan` says whether the hidden request's
    /// message was stored (looked up afterwards on another connection). `behindProxy`: the bytes
    /// went through HAProxy, which reads a bare LF as a line end (RFC 9112 §2.2 allows it) and
    /// passes each request on with CRLF, so there a head ended by bare LFs is an ordinary request
    /// and what follows it the next one: both run and both are answered, in order.
    func expectNoSmuggling(
        _ outcome: SmugglingOutcome,
        hiddenRan: Bool,
        at place: String,
        behindProxy: Bool = false,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let context = Comment(rawValue: "\(name), \(place): \(outcome), hidden request \(hiddenRan ? "ran" : "did not run")")
        // Whatever ran was answered here, and nothing was answered that did not run: no desync.
        #expect(hiddenRan == outcome.hiddenAnswered, context, sourceLocation: sourceLocation)
        let ids = outcome.responses.map { $0.requestID ?? "-" }
        // Refused: one 4xx answer at most (HAProxy says 422 to some codings), then the close.
        let refused = outcome.responses.count <= 1 && outcome.responses.allSatisfy { (400..<500).contains($0.status) } && outcome.closed
        switch kind {
        case .ambiguousFraming:
            // Refused, or read as one request whose body held the hidden one (answered, and the
            // connection went on with the probe).
            let readAsTwo = behindProxy && ids == ["outer", "hidden", "probe"]
            #expect(!hiddenRan || readAsTwo, context, sourceLocation: sourceLocation)
            #expect(refused || ids == ["outer", "probe"] || readAsTwo, context, sourceLocation: sourceLocation)
        case .afterConnectionClose:
            #expect(!hiddenRan, context, sourceLocation: sourceLocation)
            #expect(ids == ["outer"] && outcome.closed, context, sourceLocation: sourceLocation)
        case .afterUpgrade:
            // Refused, or the outer request first and what follows, if anything, in order.
            #expect(refused || (["outer", "hidden", "probe"].starts(with: ids) && !ids.isEmpty), context, sourceLocation: sourceLocation)
        }
    }
}
