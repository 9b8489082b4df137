import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Prometheus
import SkiffAPI
import SkiffTestSupport
import Testing

/// The fast path for a plain `POST /api/{queue}` (FastSendHandler) answers exactly as the route
/// does, and hands everything it does not serve to the routes untouched.
@Suite("Fast send path", .timeLimit(.minutes(2)))
struct FastSendTests {
    private func post(_ port: Int, _ path: String, _ body: String, headers: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\(headers)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    private func get(_ path: String) -> String {
        "GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n"
    }

    /// Header names of a raw response head, lowercased, without the status line.
    private func headerNames(_ head: String) -> [String] {
        head.split(separator: "\r\n").dropFirst().map { String($0.split(separator: ":")[0]).lowercased() }.sorted()
    }

    @Test(arguments: BackendKind.available)
    func aPlainPostIsAnsweredAsTheRouteAnswersIt(kind: BackendKind) async throws {
        let queue = TestEnvironment.uniqueName("fast")
        var answers: [(status: String, head: String, body: String)] = []
        for fastSend in [true, false] {
            let app = try makeApplication(kind) { $0.fastSend = fastSend }
            answers += try await app.test(.live) { client in
                let port = try #require(client.port)
                let request = post(port, "/api/\(queue)", #"{"n":1}"#, headers: "X-Request-Id: given-id\r\n")
                return try await RawHTTP.pipelined(port: port, [request])
            }
        }
        let (fast, routed) = (answers[0], answers[1])
        #expect(fast.status == "HTTP/1.1 201 Created")
        #expect(fast.status == routed.status)
        #expect(headerNames(fast.head) == headerNames(routed.head))
        #expect(fast.head.contains("X-Request-Id: given-id"))
        #expect(fast.head.contains("Content-Type: application/json; charset=utf-8"))
        #expect(fast.head.contains("Server: skiff"))
        for answer in [fast, routed] {
            #expect(answer.body.hasPrefix(#"{"id":""#) && answer.body.contains(#","queue":"\#(queue)","enqueuedAt":""#))
        }
    }

    @Test(arguments: BackendKind.available)
    func pipelinedRequestsAreAnsweredInOrderWhicheverPathServesThem(kind: BackendKind) async throws {
        let app = try makeApplication(kind) { $0.api.maximumMessageBytes = 64 }
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let queue = TestEnvironment.uniqueName("pipelined")
            let answers = try await RawHTTP.pipelined(
                port: port,
                [
                    post(port, "/api/\(queue)", #""first""#),
                    post(port, "/api/\(queue)", #"{"broken":"#),
                    post(port, "/api/\(queue)", "\"" + String(repeating: "x", count: 80) + "\""),
                    post(port, "/api/\(queue)?priority=7", #""urgent""#),
                    post(port, "/api/\(queue)", #""second""#, headers: "Idempotency-Key: k1\r\n"),
                    post(port, "/api/\(queue)", #""second""#, headers: "Idempotency-Key: k1\r\n"),
                    post(port, "/api/bad%20name", "1"),
                    get("/api/\(queue)?timeout=0"),
                    get("/api/\(queue)?timeout=0"),
                    get("/api/\(queue)?timeout=0"),
                    get("/api/\(queue)?timeout=0"),
                ]
            )
            #expect(answers.map { $0.status.split(separator: " ")[1] } == ["201", "400", "413", "201", "201", "200", "400", "200", "200", "200", "204"])
            // The routes answered what the fast path handed on: their JSON errors, their options.
            #expect(answers[1].body.hasPrefix(#"{"error":"body is not valid JSON"#))
            #expect(answers[2].body.contains("MAX_MESSAGE_BYTES"))
            #expect(answers[5].head.contains("Skiff-Duplicate: true"))
            #expect(answers[7].body == #""urgent""# && answers[7].head.contains("Skiff-Priority: 7"))
            #expect(answers[8].body == #""first""#)
            #expect(answers[9].body == #""second""#)
        }
    }

    /// More pipelined requests than the handler holds at once: it stops reading, drains, reads on.
    @Test(arguments: BackendKind.available)
    func aLongPipelineIsAnsweredInFull(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let queue = TestEnvironment.uniqueName("long-pipeline")
            let count = 300
            let answers = try await RawHTTP.pipelined(port: port, (0..<count).map { post(port, "/api/\(queue)", "\($0)") } + [get("/api/\(queue)?timeout=0")])
            #expect(answers.prefix(count).allSatisfy { $0.status == "HTTP/1.1 201 Created" })
            #expect(answers[count].body == "0")
        }
    }

    @Test func fastSendsAreCountedLikeRoutedOnes() async throws {
        let registry = PrometheusCollectorRegistry()
        let app = try makeObservedApplication(metricsFactory: PrometheusMetricsFactory(registry: registry), registry: registry) {
            $0.metricsRequireAuth = false
        }
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let queue = TestEnvironment.uniqueName("counted")
            let answers = try await RawHTTP.pipelined(
                port: port,
                [post(port, "/api/\(queue)", "1"), post(port, "/api/\(queue)", "2"), post(port, "/api/\(queue)", "{"), get("/metrics")]
            )
            let text = answers[3].body
            #expect(text.contains(#"skiff_http_requests_total{route="/api/{queue}",method="POST",status="201"} 2"#), "\(text)")
            #expect(text.contains(#"skiff_http_requests_total{route="/api/{queue}",method="POST",status="400"} 1"#))
            #expect(text.contains(#"skiff_messages_enqueued_total{queue="\#(queue)"} 2"#))
        }
    }
}
