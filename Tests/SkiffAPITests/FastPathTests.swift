import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import Prometheus
import SkiffAPI
import SkiffRedis
import SkiffTestSupport
import Testing

@testable import SkiffQueue

/// The fast path for a plain `POST /api/{queue}` and `GET /api/{queue}` (FastPathHandler) answers
/// exactly as the route does, and hands everything it does not serve to the routes untouched.
@Suite("Fast path", .timeLimit(.minutes(2)))
struct FastPathTests {
    private func post(_ path: String, _ body: String, headers: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\(headers)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    private func get(_ path: String) -> String {
        "GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n"
    }

    /// A request with `body` sent in chunks of 1 to 6 bytes, sizes in either case, some with
    /// leading zeros.
    private func chunked(_ requestLine: String, _ body: String, _ random: inout SplitMix64) -> String {
        var text = "\(requestLine) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        let bytes = Array(body.utf8)
        var offset = 0
        while offset < bytes.count {
            let count = min(bytes.count - offset, Int.random(in: 1...6, using: &random))
            let size = String(count, radix: 16, uppercase: Bool.random(using: &random))
            text += (Bool.random(using: &random) ? "0" : "") + size + "\r\n" + String(decoding: bytes[offset..<offset + count], as: UTF8.self) + "\r\n"
            offset += count
        }
        return text + "0\r\n\r\n"
    }

    /// A replica on the memory backend whose `/metrics` (its own Prometheus registry) needs no key.
    private func applicationWithOpenMetrics() throws -> SkiffApplication {
        let registry = PrometheusCollectorRegistry()
        return try makeObservedApplication(metricsFactory: PrometheusMetricsFactory(registry: registry), registry: registry) {
            $0.metricsRequireAuth = false
        }
    }

    /// Header names of a raw response head, lowercased, without the status line.
    private func headerNames(_ head: String) -> [String] {
        head.split(separator: "\r\n").dropFirst().map { String($0.split(separator: ":")[0]).lowercased() }.sorted()
    }

    /// The answers to `requests`, sent pipelined on one connection to a live replica.
    private func pipelined(
        _ kind: BackendKind,
        configure: (inout SkiffConfiguration) -> Void = { _ in },
        _ requests: [String]
    ) async throws -> [(status: String, head: String, body: String)] {
        try await makeApplication(kind, configure: configure).test(.live) { client in try await RawHTTP.pipelined(port: try #require(client.port), requests) }
    }

    /// The answers to `requests` (sent pipelined on one connection) with the fast path on, then off.
    private func answeredBothWays(
        _ kind: BackendKind,
        _ requests: [String],
        configure: (inout SkiffConfiguration) -> Void = { _ in }
    ) async throws -> (fast: [(status: String, head: String, body: String)], routed: [(status: String, head: String, body: String)]) {
        var answers: [[(status: String, head: String, body: String)]] = []
        for fastPath in [true, false] {
            answers.append(
                try await pipelined(
                    kind,
                    configure: {
                        configure(&$0)
                        $0.fastPath = fastPath
                    }, requests)
            )
        }
        return (answers[0], answers[1])
    }

    @Test(arguments: BackendKind.available)
    func aPlainPostIsAnsweredAsTheRouteAnswersIt(kind: BackendKind) async throws {
        let queue = TestEnvironment.uniqueName("fast")
        let answers = try await answeredBothWays(kind, [post("/api/\(queue)", #"{"n":1}"#, headers: "X-Request-Id: given-id\r\n")])
        let (fast, routed) = (answers.fast[0], answers.routed[0])
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
    func aReadyGetIsAnsweredAsTheRouteAnswersIt(kind: BackendKind) async throws {
        let queue = TestEnvironment.uniqueName("fast-get")
        let answers = try await answeredBothWays(
            kind,
            [post("/api/\(queue)?priority=3", #"{"n": [1, 2]}"#), "GET /api/\(queue)?timeout=0 HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: given\r\n\r\n"]
        )
        let (fast, routed) = (answers.fast[1], answers.routed[1])
        #expect(fast.status == "HTTP/1.1 200 OK")
        #expect(fast.status == routed.status)
        #expect(headerNames(fast.head) == headerNames(routed.head))
        #expect(fast.head.contains("X-Request-Id: given"))
        #expect(fast.head.contains("Skiff-Priority: 3"))
        #expect(fast.head.contains("Skiff-Receive-Count: 1"))
        #expect(fast.head.contains("Content-Type: application/json\r\n"))
        #expect(fast.body == #"{"n": [1, 2]}"#)
        #expect(routed.body == fast.body)
    }

    /// With API keys, the fast path serves what a key allows and leaves every refusal (no key, an
    /// unknown one, the wrong scope, another queue prefix) to the routes: the answers are the same
    /// either way, 401 with its challenge and 403 included, and a refused GET takes nothing.
    @Test(arguments: BackendKind.available)
    func withAPIKeysTheAnswersAreTheRoutes(kind: BackendKind) async throws {
        let queue = "orders-" + TestEnvironment.uniqueName("keyed")
        func bearer(_ key: String) -> String { "Authorization: Bearer \(key)\r\n" }
        func get(_ key: String?) -> String {
            "GET /api/\(queue)?timeout=0 HTTP/1.1\r\nHost: localhost\r\n\(key.map(bearer) ?? "")\r\n"
        }
        let answers = try await answeredBothWays(
            kind,
            [
                post("/api/\(queue)", #""one""#, headers: bearer(TestKeys.send)),
                post("/api/\(queue)", #""two""#),
                post("/api/\(queue)", #""two""#, headers: bearer("unknown-key-0123456789")),
                post("/api/\(queue)", #""two""#, headers: bearer(TestKeys.receive)),
                post("/api/\(queue)", #""two""#, headers: bearer(TestKeys.orders)),
                get(nil), get(TestKeys.send), get(TestKeys.receive), get(TestKeys.orders), get(TestKeys.orders),
            ]
        ) { $0.apiKeys = TestKeys.all }
        #expect(answers.fast.map { $0.status } == answers.routed.map { $0.status })
        #expect(answers.fast.map { $0.status.split(separator: " ")[1] } == ["201", "401", "401", "403", "201", "401", "403", "200", "200", "204"])
        for (fast, routed) in zip(answers.fast, answers.routed) {
            #expect(headerNames(fast.head) == headerNames(routed.head))
            if !fast.status.contains(" 201 ") { #expect(fast.body == routed.body) }
        }
        #expect(answers.fast[1].head.contains(#"WWW-Authenticate: Bearer realm="skiff""#))
        #expect(answers.fast[7].body == #""one""# && answers.fast[8].body == #""two""#)
    }

    /// A plain publish to a topic is served by the fast path with the route's answer; one with
    /// an option, a body that is not JSON, or a key the topic refuses gets the route's answer too.
    @Test(arguments: BackendKind.available)
    func aPlainTopicPublishIsAnsweredAsTheRouteAnswersIt(kind: BackendKind) async throws {
        func bearer(_ key: String) -> String { "Authorization: Bearer \(key)\r\n" }
        /// The same requests on names of their own (both runs share one Redis).
        func requests() -> [String] {
            let (topic, queue) = ("orders-" + TestEnvironment.uniqueName("fast-topic"), "orders-" + TestEnvironment.uniqueName("fast-sub"))
            let subscription = #"{"queue":"\#(queue)","filter":{"n":[{"numeric":[">",0]}]}}"#
            let receive = "GET /api/\(queue)?timeout=0 HTTP/1.1\r\nHost: localhost\r\n\(bearer(TestKeys.orders))\r\n"
            return [
                "PUT /api/topics/\(topic)/subscriptions/s HTTP/1.1\r\nHost: localhost\r\n\(bearer(TestKeys.admin))"
                    + "Content-Length: \(subscription.utf8.count)\r\n\r\n\(subscription)",
                post("/api/topics/\(topic)", #"{"n":1}"#, headers: bearer(TestKeys.send)),
                post("/api/topics/\(topic)", #"{"n":0}"#, headers: bearer(TestKeys.orders)),
                post("/api/topics/\(topic)", #"{"n":2}"#),
                post("/api/topics/\(topic)", #"{"n":3}"#, headers: bearer(TestKeys.receive)),
                post("/api/topics/other-\(topic)", #"{"n":4}"#, headers: bearer(TestKeys.orders)),
                post("/api/topics/\(topic)", "{n", headers: bearer(TestKeys.send)),
                post("/api/topics/\(topic)", #"{"n":5}"#, headers: bearer(TestKeys.send) + "Idempotency-Key: k1\r\n"),
                receive, receive, receive,
            ]
        }
        var answers: [[(status: String, head: String, body: String)]] = []
        for fastPath in [true, false] {
            answers.append(
                try await pipelined(
                    kind,
                    configure: {
                        $0.apiKeys = TestKeys.all
                        $0.fastPath = fastPath
                    }, requests())
            )
        }
        let (fast, routed) = (answers[0], answers[1])
        #expect(fast.map { $0.status } == routed.map { $0.status })
        #expect(fast.map { $0.status.split(separator: " ")[1] } == ["201", "201", "201", "401", "403", "403", "400", "201", "200", "200", "204"])
        for (fast, routed) in zip(fast, routed) {
            #expect(headerNames(fast.head) == headerNames(routed.head))
            if fast.status.contains(" 4") { #expect(fast.body == routed.body) }
        }
        for answers in [fast, routed] {
            #expect(answers[1].body.contains(#","deliveredTo":1,"publishedAt":""#), "\(answers[1].body)")
            // Filtered out: published, delivered nowhere.
            #expect(answers[2].body.contains(#""deliveredTo":0"#))
            #expect(answers[8].body == #"{"n":1}"# && answers[9].body == #"{"n":5}"#)
        }
    }

    /// A publish served by the fast path and one served by the route count under the same route.
    @Test func fastPublishesAreCountedLikeRoutedOnes() async throws {
        let app = try applicationWithOpenMetrics()
        try await app.test(.live) { client in
            let topic = TestEnvironment.uniqueName("counted-topic")
            let answers = try await RawHTTP.pipelined(
                port: try #require(client.port),
                [post("/api/topics/\(topic)", "1"), post("/api/topics/\(topic)", "2", headers: "Idempotency-Key: k\r\n"), get("/metrics")]
            )
            #expect(answers[0].status.contains(" 201 ") && answers[1].status.contains(" 201 "))
            #expect(answers[2].body.contains(#"skiff_http_requests_total{route="/api/topics/{topic}",method="POST",status="201"} 2"#), "\(answers[2].body)")
        }
    }

    /// The fast path serves only a GET whose parameters the route would accept the same way.
    @Test(arguments: BackendKind.available)
    func aGetTheFastPathDoesNotServeGetsTheRoutesAnswer(kind: BackendKind) async throws {
        let queue = TestEnvironment.uniqueName("fast-get-routed")
        let answers = try await pipelined(
            kind,
            [
                post("/api/\(queue)", #""kept""#),
                get("/api/\(queue)?timeout=abc"),
                get("/api/\(queue)?timeout=60001"),
                get("/api/\(queue)?timeout="),
                get("/api/\(queue)?timeout=0&visibility=30000"),
                get("/api/\(queue)?timeout=0"),
            ]
        )
        #expect(answers.map { $0.status.split(separator: " ")[1] } == ["201", "400", "400", "400", "200", "204"])
        #expect(answers[1].body.hasPrefix(#"{"error":"timeout must be"#))
        // The message survived the refused GETs and went to the acknowledged-mode one.
        #expect(answers[4].body == #""kept""# && answers[4].head.contains("Skiff-Receipt: "))
    }

    /// A client that sends its GET and leaves while the claim is in flight (Redis is paused) gets
    /// nothing, and the message goes back to the head of the queue, on the fast path and the route.
    @Test(.enabled(if: TestEnvironment.hasRedis), arguments: [true, false])
    func aMessageClaimedForAClientThatLeftGoesBack(fastPath: Bool) async throws {
        let server = try RedisServerProcess()
        try server.start()
        defer { server.kill() }
        var configuration = try RedisConfiguration(url: server.url)
        // Generous: dozens of tests share two cores.
        configuration.connectTimeout = .seconds(5)
        configuration.commandTimeout = .seconds(5)
        let admin = RedisClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
        defer { admin.close() }
        let app = try makeApplication(.redis, redisURL: server.url) { $0.fastPath = fastPath }
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let probe = Probe(port: port)
            let queue = TestEnvironment.uniqueName("left")
            #expect(try await probe.post(queue, #""kept""#).status == .created)
            // Every command waits 300 ms: the claim is still in flight when the client is gone.
            _ = try await admin.send("CLIENT", "PAUSE", "300", "ALL")
            try await RawHTTP.sendAndLeave(port: port, request: get("/api/\(queue)?timeout=0"))
            try await Task.sleep(for: .milliseconds(500))
            let next = try await probe.get(queue, timeout: 5_000)
            #expect(next.status == .ok)
            #expect(next.text == #""kept""#)
        }
    }

    @Test(arguments: BackendKind.available)
    func pipelinedRequestsAreAnsweredInOrderWhicheverPathServesThem(kind: BackendKind) async throws {
        let queue = TestEnvironment.uniqueName("pipelined")
        let answers = try await pipelined(
            kind, configure: { $0.api.maximumMessageBytes = 64 },
            [
                post("/api/\(queue)", #""first""#),
                post("/api/\(queue)", #"{"broken":"#),
                post("/api/\(queue)", "\"" + String(repeating: "x", count: 80) + "\""),
                post("/api/\(queue)?priority=7", #""urgent""#),
                post("/api/\(queue)", #""second""#, headers: "Idempotency-Key: k1\r\n"),
                post("/api/\(queue)", #""second""#, headers: "Idempotency-Key: k1\r\n"),
                post("/api/bad%20name", "1"),
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

    /// More pipelined requests than the handler holds at once: it stops reading, drains, reads on.
    @Test(arguments: BackendKind.available)
    func aLongPipelineIsAnsweredInFull(kind: BackendKind) async throws {
        let queue = TestEnvironment.uniqueName("long-pipeline")
        // Well past what the handler buffers at once with this message limit (64 KiB + 16 KiB + 1 KiB).
        let count = 1_500
        let answers = try await pipelined(
            kind, configure: { $0.api.maximumMessageBytes = 1024 }, (0..<count).map { post("/api/\(queue)", "\($0)") } + [get("/api/\(queue)?timeout=0")])
        #expect(answers.prefix(count).allSatisfy { $0.status == "HTTP/1.1 201 Created" })
        #expect(answers[count].body == "0")
    }

    /// Requests the routes serve are passed on byte for byte and framed by their length (a batch
    /// body, a body-less GET, a chunked body framed by its chunks), and each answer
    /// comes in request order.
    @Test(arguments: BackendKind.available)
    func routedRequestsBetweenFastOnesArePassedOnWhole(kind: BackendKind) async throws {
        let queue = TestEnvironment.uniqueName("framed")
        let batch = #"["b1", "b2"]"#
        let answers = try await pipelined(
            kind,
            [
                post("/api/\(queue)", #""a""#),
                post("/api/\(queue)/batch", batch),
                // Not /health: a replica reports Redis unhealthy until its first health check.
                get("/api/\(queue)/stats"),
                post("/api/\(queue)", #""c""#),
                get("/api/\(queue)/batch?max=2&timeout=0"),
                get("/api/\(queue)?timeout=0"),
                "POST /api/\(queue) HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n\"d\"\"\"\r\n0\r\n\r\n",
                post("/api/\(queue)", #""e""#),
                get("/api/\(queue)?timeout=0"),
                get("/api/\(queue)?timeout=0"),
                get("/api/\(queue)?timeout=0"),
            ]
        )
        #expect(answers.map { $0.status.split(separator: " ")[1] } == ["201", "201", "200", "201", "200", "200", "400", "201", "200", "200", "204"])
        #expect(answers[2].body.contains(#""ready":3"#), "\(answers[2].body)")
        #expect(answers[4].body.contains(#""body":"a""#) && answers[4].body.contains(#""body":"b1""#))
        #expect(answers[5].body == #""b2""#)
        // `"d"""` is not JSON: the route read the chunked body and said so.
        #expect(answers[6].body.hasPrefix(#"{"error":"body is not valid JSON"#))
        #expect(answers[8].body == #""c""#)
        #expect(answers[9].body == #""e""#)
    }

    /// Whatever the mix and wherever the bytes are cut, a pipeline is answered as the routes
    /// answer it in one piece: the fast path and NIO's decoder agree on where every request ends.
    /// (Seeded: a failure names the seed that replays it.)
    @Test(arguments: [1, 2, 3])
    func aRandomPipelineCutAnywhereIsAnsweredAsTheRoutesAnswerIt(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        let queue = TestEnvironment.uniqueName("random-\(seed)")
        let templates: [(inout SplitMix64) -> String] = [
            { _ in self.post("/api/\(queue)", #"{"k": [1, "two"]}"#) },
            { random in self.post("/api/\(queue)", "\(UInt8.random(in: 0...200, using: &random))") },
            { _ in self.post("/api/\(queue)", #"{"broken": "#) },
            { _ in self.post("/api/\(queue)?priority=2", #""prioritised""#) },
            { _ in self.post("/api/\(queue)/batch", #"["b1", {"b": 2}]"#) },
            { _ in self.get("/api/\(queue)?timeout=0") },
            { _ in self.get("/api/\(queue)") + "" },
            { _ in self.get("/api/\(queue)/batch?max=2&timeout=0") },
            { _ in self.get("/health") },
            { _ in "DELETE /api/\(queue)/messages/nope HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc" },
            { _ in "POST /api/\(queue) HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: fixed\r\nContent-Length: 4\r\n\r\ntrue" },
            // A routed request whose body is a whole fast request: it must stay a body.
            { _ in
                let inner = self.get("/api/\(queue)?timeout=0")
                return "DELETE /api/\(queue)/messages/nope HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(inner.utf8.count)\r\n\r\n" + inner
            },
            // Chunked bodies in chunks of random sizes: a message, a batch whose whitespace looks
            // like the last chunk, and a body that is a whole fast request.
            { random in self.chunked("POST /api/\(queue)", #"{"chunked": [1, 2]}"#, &random) },
            { random in self.chunked("POST /api/\(queue)/batch", "[\"c1\",\r\n0\r\n\r\n, \"c2\"]", &random) },
            { random in self.chunked("DELETE /api/\(queue)/messages/nope", self.post("/api/\(queue)", "7"), &random) },
        ]
        // Plain GETs wait at most 0 ms here: the routes and the fast path must not wait differently.
        var requests = (0..<40).map { _ in templates[Int.random(in: 0..<templates.count, using: &random)](&random) }
        requests = requests.map { $0.replacingOccurrences(of: "GET /api/\(queue) HTTP", with: "GET /api/\(queue)?timeout=0 HTTP") }
        let whole = requests.joined()
        var pieces: [String] = []
        var rest = Substring(whole)
        while !rest.isEmpty {
            let length = min(rest.utf8.count, Int.random(in: 1...180, using: &random))
            let cut = rest.utf8.index(rest.startIndex, offsetBy: length)
            pieces.append(String(rest[..<cut]))
            rest = rest[cut...]
        }
        let (allRequests, allPieces) = (requests, pieces)
        var answers: [[(status: String, head: String, body: String)]] = []
        for fastPath in [true, false] {
            let app = try makeApplication(.memory) { $0.fastPath = fastPath }
            answers.append(
                try await app.test(.live) { client in
                    let port = try #require(client.port)
                    return fastPath
                        ? try await RawHTTP.exchange(port: port, pieces: allPieces, pause: .milliseconds(2), responses: allRequests.count)
                        : try await RawHTTP.pipelined(port: port, allRequests)
                }
            )
        }
        #expect(answers[0].map(\.status) == answers[1].map(\.status), "seed \(seed)")
        for (index, (fast, routed)) in zip(answers[0], answers[1]).enumerated() where !fast.status.contains(" 201 ") {
            // Bodies, except ids and timestamps: a 200 of a single GET is the message itself.
            if fast.head.contains("Skiff-Message-Id") || fast.status.contains(" 204 ") || fast.status.contains(" 4") {
                #expect(fast.body == routed.body, "seed \(seed), request \(index)")
            }
        }
    }

    /// A fast request waits for the routed one before it: here a batch long-poll, which must time
    /// out with 204 before the POST behind it is served (served early, its message would go to the
    /// waiting batch and its answer would come first).
    @Test(arguments: BackendKind.available)
    func aFastRequestWaitsForTheRoutedResponseBeforeIt(kind: BackendKind) async throws {
        let queue = TestEnvironment.uniqueName("ordered")
        let answers = try await pipelined(
            kind,
            [get("/api/\(queue)/batch?max=1&timeout=300"), post("/api/\(queue)", #""late""#), get("/api/\(queue)?timeout=0")]
        )
        #expect(answers.map { $0.status.split(separator: " ")[1] } == ["204", "201", "200"])
        #expect(answers[2].body == #""late""#)
    }

    /// Requests split anywhere across reads (inside the request line, between head and body,
    /// inside the body) are put together before they are served.
    @Test(arguments: BackendKind.available)
    func aRequestSplitAcrossReadsIsServedWhole(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let queue = TestEnvironment.uniqueName("split")
            let body = #"{"split": [1, 2, 3]}"#
            let request = post("/api/\(queue)", body) + get("/api/\(queue)?timeout=0")
            let cuts = [3, request.utf8.count - body.utf8.count - 60, request.utf8.count - 50, request.utf8.count - 10]
            var pieces: [String] = []
            var start = request.startIndex
            for cut in cuts {
                let end = request.index(request.startIndex, offsetBy: cut)
                pieces.append(String(request[start..<end]))
                start = end
            }
            pieces.append(String(request[start...]))
            let answers = try await RawHTTP.exchange(port: port, pieces: pieces, responses: 2)
            #expect(answers[0].status == "HTTP/1.1 201 Created")
            #expect(answers[1].status == "HTTP/1.1 200 OK")
            #expect(answers[1].body == body)
        }
    }

    /// A client that sends its requests and closes its side still gets every answer. A GET among
    /// them gets 204 and its message stays queued: a closed side cannot be told from a client that
    /// left (as on the route), so nothing is handed over.
    @Test(arguments: BackendKind.available)
    func aClientThatHalfClosesGetsEveryAnswer(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let queue = TestEnvironment.uniqueName("half-closed")
            let requests = [post("/api/\(queue)", "1"), post("/api/\(queue)", "2"), get("/api/\(queue)?timeout=0")]
            let answers = try await RawHTTP.exchange(port: port, pieces: [requests.joined()], halfClose: true, responses: 3)
            #expect(answers.map { $0.status.split(separator: " ")[1] } == ["201", "201", "204"])
            // Both are still there (the one claimed for the GET goes back just after its 204).
            let probe = Probe(port: port)
            let left = [try await probe.get(queue, timeout: 5_000).text, try await probe.get(queue, timeout: 5_000).text]
            #expect(left.sorted() == ["1", "2"])
        }
    }

    /// A chunked request is passed on and framed by its chunks: the requests behind it are still
    /// the fast path's (no handover counted). A chunk extension, outside the strict grammar, hands
    /// the rest of the connection to the routes, which still answer everything right.
    @Test func aChunkedRequestKeepsTheFastPathAndAnOddOneHandsTheConnectionOver() async throws {
        let app = try applicationWithOpenMetrics()
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let queue = TestEnvironment.uniqueName("chunked")
            func chunked(_ path: String, _ chunks: String) -> String {
                "POST \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\(chunks)"
            }
            let handovers = #"skiff_fast_path_handovers_total"#
            let kept = try await RawHTTP.exchange(
                port: port,
                pieces: [
                    post("/api/\(queue)", #""a""#) + chunked("/api/\(queue)/batch", "5\r\n[\"b\",\r\n"),
                    // The rest of the batch (one chunk's data looks like the last chunk: only its
                    // size tells), a chunked send, then fast requests.
                    "7\r\n\r\n0\r\n\r\n\r\n6\r\n, \"c\"]\r\n0\r\n\r\n" + chunked("/api/\(queue)", "3\r\n\"d\"\r\n0\r\n\r\n")
                        + post("/api/\(queue)", #""e""#) + get("/api/\(queue)?timeout=0") + get("/api/\(queue)?timeout=0"),
                    get("/api/\(queue)/batch?max=10&timeout=0") + get("/metrics"),
                ],
                responses: 8
            )
            #expect(kept.map { $0.status.split(separator: " ")[1] } == ["201", "201", "201", "201", "200", "200", "200", "200"])
            #expect(kept[1].body.hasPrefix(#"{"ids":["#))
            #expect(kept[4].body == #""a""#)
            #expect(kept[5].body == #""b""#)
            let rest = kept[6].body
            #expect(rest.contains(#""body":0"#) && rest.contains(#""body":"c""#) && rest.contains(#""body":"d""#) && rest.contains(#""body":"e""#), "\(rest)")
            #expect(kept[7].body.contains("\(handovers) 0"), "\(kept[7].body)")

            let odd = try await RawHTTP.pipelined(
                port: port,
                [chunked("/api/\(queue)", "3;x=1\r\n\"f\"\r\n0\r\n\r\n"), post("/api/\(queue)", #""g""#), get("/api/\(queue)?timeout=0"), get("/metrics")]
            )
            #expect(odd.map { $0.status.split(separator: " ")[1] } == ["201", "201", "200", "200"])
            #expect(odd[2].body == #""f""#)
            #expect(odd[3].body.contains("\(handovers) 1"), "\(odd[3].body)")
        }
    }

    @Test func fastRequestsAreCountedLikeRoutedOnes() async throws {
        let app = try applicationWithOpenMetrics()
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let queue = TestEnvironment.uniqueName("counted")
            let answers = try await RawHTTP.pipelined(
                port: port,
                [
                    post("/api/\(queue)", "1"), post("/api/\(queue)", "2"), post("/api/\(queue)", "{"),
                    get("/api/\(queue)?timeout=0"), get("/metrics"),
                ]
            )
            let text = answers[4].body
            #expect(text.contains(#"skiff_http_requests_total{route="/api/{queue}",method="POST",status="201"} 2"#), "\(text)")
            #expect(text.contains(#"skiff_http_requests_total{route="/api/{queue}",method="POST",status="400"} 1"#))
            #expect(text.contains(#"skiff_messages_enqueued_total{queue="\#(queue)"} 2"#))
            #expect(text.contains(#"skiff_http_requests_total{route="/api/{queue}",method="GET",status="200"} 1"#))
            #expect(text.contains(#"skiff_messages_delivered_total{queue="\#(queue)"} 1"#))
        }
    }
}
