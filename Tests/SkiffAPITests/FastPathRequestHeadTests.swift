import NIOCore
import SkiffQueue
import Testing

@testable import SkiffAPI

/// The fast path's own reading of request heads: strict, and `unframeable` at the first doubt, so
/// it can never disagree with NIO's decoder about where a request ends.
@Suite("Fast path request heads")
struct FastPathRequestHeadTests {
    private func parse(_ text: String) -> FastPathRequestHead.Parsed {
        FastPathRequestHead.parse(ByteBuffer(string: text))
    }

    private func head(_ text: String) throws -> FastPathRequestHead {
        guard case .head(let head) = parse(text) else {
            Issue.record("not parsed: \(text.debugDescription)")
            throw CancellationError()
        }
        return head
    }

    @Test func aPlainPostHeadIsRead() throws {
        let text = "POST /api/orders HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 12\r\nX-Request-Id:  abc-1 \r\n\r\n"
        let head = try head(text + #"{"n": "tail"}"#)
        #expect(head.method == .post)
        #expect(head.target == "/api/orders")
        #expect(head.length == text.utf8.count)
        #expect(head.contentLength == 12)
        #expect(head.requestID == "abc-1")
        #expect(!head.hasSpecialHeader)
    }

    @Test func getsAndOtherMethodsAreTold() throws {
        #expect(try head("GET /api/q?timeout=5 HTTP/1.1\r\n\r\n").method == .get)
        #expect(try head("GET /api/q?timeout=5 HTTP/1.1\r\n\r\n").target == "/api/q?timeout=5")
        #expect(try head("DELETE /api/q HTTP/1.1\r\nhost: x\r\n\r\n").method == .other)
        #expect(try head("get /api/q HTTP/1.1\r\n\r\n").method == .other)
    }

    @Test func aHeadNotYetCompleteWaitsForMoreBytes() {
        #expect(parse("") == .incomplete)
        #expect(parse("POST /api/q HTTP/1.1\r\nContent-Len") == .incomplete)
        #expect(parse("POST /api/q HTTP/1.1\r\nContent-Length: 1\r\n\r") == .incomplete)
    }

    @Test func anOverlongHeadIsLeftToTheDecoder() {
        let long = "GET /api/q HTTP/1.1\r\nX-Filler: " + String(repeating: "a", count: FastPathRequestHead.maximumBytes)
        #expect(parse(long) == .unframeable)
    }

    @Test(arguments: [
        "GET /api/q HTTP/1.0\r\n\r\n",
        "GET /api/q HTTP/2.0\r\n\r\n",
        "GET  /api/q HTTP/1.1\r\n\r\n",
        "GET api/q HTTP/1.1\r\n\r\n",
        "GET /api/q\r\n\r\n",
        "GET /api/q HTTP/1.1\n\r\n",
        "GET /api/q HTTP/1.1\r\nHost: a\n\r\n",
        "GET /api/q HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        "GET /api/q HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET /api/q HTTP/1.1\r\n Host: a\r\n\r\n",
        "GET /api/q HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        "GET /api/q HTTP/1.1\r\nHost: caf\u{E9}\r\n\r\n",
        "GET /api/q HTTP/1.1\r\nNo-Colon\r\n\r\n",
        "POST /api/q HTTP/1.1\r\ntransfer-encoding: identity\r\nContent-Length: 2\r\n\r\n",
        "POST /api/q HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST /api/q HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "POST /api/q HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /api/q HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        "POST /api/q HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /api/q HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
        "POST /api/q HTTP/1.1\r\nContent-Length: +2\r\n\r\n",
        "POST /api/q HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n",
        "POST /api/q HTTP/1.1\r\nContent-Length:\r\n\r\n",
        "POST /api/q HTTP/1.1\r\nContent-Length: 1234567890123456\r\n\r\n",
    ])
    func anythingOutsideTheStrictGrammarIsUnframeable(text: String) {
        #expect(parse(text) == .unframeable, "\(text.debugDescription)")
    }

    @Test func headersThatChangeTheHandlingAreMarked() throws {
        for header in [
            "Expect: 100-continue", "Idempotency-Key: k", "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "TraceParent: x",
            "Upgrade: websocket", "Connection: close", "connection: Upgrade",
        ] {
            #expect(try head("POST /api/q HTTP/1.1\r\n\(header)\r\nContent-Length: 1\r\n\r\n").hasSpecialHeader, "\(header)")
        }
        #expect(try !head("POST /api/q HTTP/1.1\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n").hasSpecialHeader)
        // One Authorization is read for the API keys; two are for the route to judge.
        let keyed = try head("GET /api/q HTTP/1.1\r\nauthorization: Bearer k-1 \r\n\r\n")
        #expect(keyed.authorization == "Bearer k-1" && !keyed.hasSpecialHeader)
        #expect(try head("GET /api/q HTTP/1.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n").hasSpecialHeader)
    }

    /// One `Transfer-Encoding: chunked` and no `Content-Length`: framed by its chunks, and always
    /// for the routes, whatever the method and path.
    @Test func aChunkedHeadIsFramedByItsChunksAndGoesToTheRoutes() throws {
        let settings = APISettings(maximumMessageBytes: 100)
        for text in [
            "POST /api/q HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /api/q HTTP/1.1\r\ntransfer-encoding:  Chunked \r\n\r\n",
            "GET /api/q HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let head = try head(text)
            #expect(head.isChunked && head.hasSpecialHeader && head.contentLength == 0, "\(text.debugDescription)")
            #expect(FastPathRequest.classify(head, settings: settings) == nil, "\(text.debugDescription)")
        }
        #expect(try !head("POST /api/q HTTP/1.1\r\nContent-Length: 5\r\n\r\n").isChunked)
    }

    @Test func onlyPlainRequestsAreEligible() throws {
        let settings = APISettings(maximumMessageBytes: 100)
        func eligible(_ text: String) throws -> FastPathRequest? {
            FastPathRequest.classify(try head(text), settings: settings)
        }
        #expect(try eligible("POST /api/q HTTP/1.1\r\nContent-Length: 5\r\n\r\n") == .send(try #require(.init("q"))))
        #expect(try eligible("GET /api/q HTTP/1.1\r\n\r\n") == .receive(try #require(.init("q")), timeoutMilliseconds: 10_000))
        #expect(try eligible("GET /api/q?timeout=250 HTTP/1.1\r\n\r\n") == .receive(try #require(.init("q")), timeoutMilliseconds: 250))
        #expect(try eligible("POST /api/topics/t HTTP/1.1\r\nContent-Length: 5\r\n\r\n") == .publish(try #require(.init("t"))))
        for text in [
            "POST /api/q HTTP/1.1\r\n\r\n",
            "POST /api/q HTTP/1.1\r\nContent-Length: 101\r\n\r\n",
            "POST /api/q?priority=1 HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            "POST /api/q/batch HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            "POST /api/bad%20name HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            "POST /api/q HTTP/1.1\r\nIdempotency-Key: k\r\nContent-Length: 5\r\n\r\n",
            "GET /api/q?timeout=60001 HTTP/1.1\r\n\r\n",
            "GET /api/q?timeout=0&visibility=10 HTTP/1.1\r\n\r\n",
            "GET /api/q HTTP/1.1\r\nContent-Length: 2\r\n\r\n",
            "GET /api/ HTTP/1.1\r\n\r\n",
            "GET /health HTTP/1.1\r\n\r\n",
            "PUT /api/q HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            // Topic routes other than a plain publish of one message.
            "POST /api/topics/t?delay=10 HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            "POST /api/topics/t/batch HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            "POST /api/topics/t/filter-test HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            "POST /api/topics/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            "POST /api/topics/t HTTP/1.1\r\nContent-Length: 101\r\n\r\n",
            "POST /api/topics/t HTTP/1.1\r\nIdempotency-Key: k\r\nContent-Length: 5\r\n\r\n",
            "GET /api/topics/t HTTP/1.1\r\n\r\n",
            "GET /api/topics HTTP/1.1\r\n\r\n",
            "POST /api/topics HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
        ] {
            #expect(try eligible(text) == nil, "\(text.debugDescription)")
        }
    }
}
