import Foundation
import Logging
import Prometheus
import SkiffAPI
import SkiffTestSupport
import Testing

/// The fast path and the routes are two transports over one exchange: for a table of requests that
/// covers every route and error, a replica with the fast path and one without answer alike — the
/// same status, the same headers (names and values, apart from `Date` and `X-Request-Id`), the same
/// body — and record alike: the same metrics and the same access-log lines. Message ids, receipts,
/// timestamps and the queue's unique name are masked, nothing else.
@Suite("Transport drift", .timeLimit(.minutes(3)))
struct TransportDriftTests {
    /// One request of the table: its text, given the queue's name and the answers so far.
    struct Step: Sendable {
        let request: @Sendable (_ queue: String, _ answers: [Answer]) -> String
        /// Sent while the request before it is still waiting (a long-poll), on its own connection.
        var whileWaiting = false
    }

    struct Answer: Sendable, Equatable, CustomStringConvertible {
        let status: String
        let headers: [String]
        let body: String
        var description: String { ([status] + headers + [body]).joined(separator: "\n") }
    }

    private static func request(_ method: String, _ path: String, body: String? = nil, headers: String = "") -> String {
        let framing = body.map { "Content-Type: application/json\r\nContent-Length: \($0.utf8.count)\r\n" } ?? ""
        return "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n\(headers)\(framing)\r\n\(body ?? "")"
    }

    private static func step(_ method: String, _ path: String, body: String? = nil, headers: String = "") -> Step {
        Step { queue, _ in request(method, path.replacingOccurrences(of: "{q}", with: queue), body: body, headers: headers) }
    }

    /// The receipt in the body of the latest answer that has one.
    private static func lastReceipt(_ answers: [Answer]) -> String {
        for answer in answers.reversed() {
            if let header = answer.headers.first(where: { $0.hasPrefix("Skiff-Receipt: ") }) { return String(header.dropFirst(15)) }
        }
        return "none.1"
    }

    private static func bearer(_ key: String) -> String { "Authorization: Bearer \(key)\r\n" }

    /// Every route, and the errors each can answer, in an order that leaves something to find.
    static let open: [Step] = [
        step("POST", "/api/{q}", body: #"{"n":1}"#),
        step("POST", "/api/{q}", body: #""two""#),
        step("POST", "/api/{q}", body: "{"),
        step("POST", "/api/{q}", body: ""),
        step("POST", "/api/{q}", body: String(repeating: "1", count: 2048)),
        step("POST", "/api/{q}?priority=7&delay=0", body: "7"),
        step("POST", "/api/{q}?priority=12", body: "7"),
        step("POST", "/api/{q}", body: "8", headers: "Idempotency-Key: k-1\r\n"),
        step("POST", "/api/{q}", body: "8", headers: "Idempotency-Key: k-1\r\n"),
        step("POST", "/api/not%20a%20name", body: "1"),
        step("GET", "/api/{q}"),
        step("GET", "/api/{q}?timeout=0"),
        step("GET", "/api/{q}?timeout=abc"),
        step("GET", "/api/{q}?timeout=999999999"),
        step("GET", "/api/{q}?timeout=0&visibility=30000"),
        Step { queue, answers in request("DELETE", "/api/\(queue)/messages/\(lastReceipt(answers))") },
        Step { queue, answers in request("DELETE", "/api/\(queue)/messages/\(lastReceipt(answers))") },
        step("DELETE", "/api/{q}/messages/bad"),
        step("GET", "/api/{q}?visibility"),
        Step { queue, answers in request("POST", "/api/\(queue)/messages/\(lastReceipt(answers))/nack?delay=0", body: #"{"reason":"x"}"#) },
        step("GET", "/api/{q}?visibility=1000&timeout=0"),
        Step { queue, answers in request("POST", "/api/\(queue)/messages/\(lastReceipt(answers))/visibility", body: #"{"timeout":0}"#) },
        step("POST", "/api/{q}/batch", body: #"[1,2,{"three":3}]"#),
        step("POST", "/api/{q}/batch", body: "[]"),
        step("GET", "/api/{q}/batch?max=2&timeout=0"),
        step("GET", "/api/{q}/batch?max=0"),
        step("GET", "/api/{q}/batch?max=3&visibility=5000"),
        step("POST", "/api/{q}/ack", body: #"{"receipts":["none.1"]}"#),
        step("GET", "/api/{q}?timeout=0"),
        step("GET", "/api/{q}?timeout=50"),
        // A long-poll that a send made on another connection answers.
        step("GET", "/api/{q}?timeout=5000"),
        Step(request: { queue, _ in request("POST", "/api/\(queue)", body: #""woken""#) }, whileWaiting: true),
        step("PUT", "/api/{q}/config", body: #"{"maxDepth":1}"#),
        step("GET", "/api/{q}/config"),
        step("POST", "/api/{q}", body: "1"),
        step("POST", "/api/{q}", body: "2"),
        step("PUT", "/api/{q}/config", body: #"{"maxDepth":0}"#),
        step("POST", "/api/{q}/redrive"),
        step("POST", "/api/{q}/purge"),
        step("PATCH", "/api/{q}"),
        step("PUT", "/api/{q}/batch", body: "[]"),
        step("DELETE", "/api/{q}"),
        step("DELETE", "/api/{q}"),
        step("GET", "/api/{q}?timeout=0"),
        step("GET", "/health"),
        step("GET", "/nowhere"),
    ]

    /// The same requests as the keys allow or refuse them.
    static let keyed: [Step] = [
        step("POST", "/api/{q}", body: "1", headers: bearer(TestKeys.send)),
        step("POST", "/api/{q}", body: "2"),
        step("POST", "/api/{q}", body: "2", headers: bearer("unknown-key-0123456789")),
        step("POST", "/api/{q}", body: "2", headers: bearer(TestKeys.receive)),
        step("POST", "/api/{q}", body: "2", headers: bearer(TestKeys.orders)),
        step("POST", "/api/{q}", body: "{", headers: bearer(TestKeys.orders)),
        step("GET", "/api/{q}?timeout=0"),
        step("GET", "/api/{q}?timeout=0", headers: bearer(TestKeys.send)),
        step("GET", "/api/{q}?timeout=0", headers: bearer(TestKeys.receive)),
        step("GET", "/api/{q}?timeout=0", headers: bearer(TestKeys.orders)),
        step("GET", "/api/{q}?timeout=0", headers: bearer(TestKeys.orders)),
        step("GET", "/api/{q}?timeout=0", headers: bearer(TestKeys.orders)),
        step("GET", "/api/{q}/stats", headers: bearer(TestKeys.orders)),
        step("GET", "/api/{q}/stats", headers: bearer(TestKeys.ordersAdmin)),
        step("GET", "/api/{q}/config", headers: bearer(TestKeys.ordersAdmin)),
        step("DELETE", "/api/{q}", headers: bearer(TestKeys.orders)),
        step("DELETE", "/api/{q}", headers: bearer(TestKeys.ordersAdmin)),
    ]

    /// Everything one replica answered and recorded for `steps`.
    struct Record: Sendable {
        var answers: [Answer] = []
        var metrics: [String] = []
        var accessLog: [String] = []
    }

    private func run(_ kind: BackendKind, fastPath: Bool, keys: Bool, _ steps: [Step]) async throws -> Record {
        let queue = (keys ? "orders-" : "") + TestEnvironment.uniqueName("drift")
        let registry = PrometheusCollectorRegistry()
        let (logger, logs) = RecordingLogHandler.logger()
        let app = try makeObservedApplication(kind, metricsFactory: PrometheusMetricsFactory(registry: registry), registry: registry, logger: logger) {
            $0.fastPath = fastPath
            $0.metricsRequireAuth = false
            $0.api.maximumMessageBytes = 1024
            if keys { $0.apiKeys = TestKeys.all }
        }
        var record = try await app.test(.live) { client in
            var record = Record()
            let port = try #require(client.port)
            var index = 0
            while index < steps.count {
                let step = steps[index]
                if index + 1 < steps.count, steps[index + 1].whileWaiting {
                    // The wait starts, is seen waiting in the metrics, then the next step ends it.
                    let waiting = step.request(queue, record.answers)
                    async let waited = RawHTTP.pipelined(port: port, [waiting])
                    try await eventually { try await Self.waiters(port: port) == 1 }
                    let other = try await RawHTTP.pipelined(port: port, [steps[index + 1].request(queue, record.answers)])[0]
                    record.answers.append(Self.normalized(try await waited[0], queue: queue))
                    record.answers.append(Self.normalized(other, queue: queue))
                    index += 2
                    continue
                }
                let answer = try await RawHTTP.pipelined(port: port, [step.request(queue, record.answers)])[0]
                record.answers.append(Self.normalized(answer, queue: queue))
                index += 1
            }
            // Settlement runs after the response: the counters settle shortly after.
            try await eventually {
                let text = try await RawHTTP.pipelined(port: port, [Self.request("GET", "/metrics")])[0].body
                return !text.contains("skiff_messages_delivered_total") || text.contains("skiff_messages_acked_total")
            }
            let metrics = try await RawHTTP.pipelined(port: port, [Self.request("GET", "/metrics")])[0].body
            record.metrics = Self.comparableMetrics(metrics, queue: queue)
            return record
        }
        record.accessLog = logs.all.withLock { records in
            records.filter { $0.message == "request" && $0.metadata["url.path"] != "/metrics" }.map { entry in
                ["http.method", "http.route", "url.path", "http.status"].map { "\($0)=\(entry.metadata[$0].map { "\($0)" } ?? "-")" }
                    .joined(separator: " ").replacingOccurrences(of: queue, with: "<queue>")
            }
        }.sorted()  // two requests that end together may log in either order
        return record
    }

    /// The long-poll waiters gauge, as `/metrics` shows it now.
    private static func waiters(port: Int) async throws -> Int {
        let text = try await RawHTTP.pipelined(port: port, [request("GET", "/metrics")])[0].body
        let line = text.split(separator: "\n").first { $0.hasPrefix("skiff_long_poll_waiters ") }
        return line.flatMap { Double($0.split(separator: " ")[1]) }.map { Int($0) } ?? 0
    }

    /// Counters and gauges that requests move (the duration histograms' sums and buckets are time).
    private static func comparableMetrics(_ text: String, queue: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { line in
            !line.hasPrefix("#")
                && (line.hasPrefix("skiff_http_requests_total") || line.hasPrefix("skiff_messages_")
                    || line.hasPrefix("skiff_long_poll_waiters") || line.hasPrefix("skiff_http_request_duration_seconds_count"))
                && !line.contains(#"route="/metrics""#)
                // Queue counters of other tests' queues (the backends count retries globally).
                && (!line.contains("queue=") || line.contains(queue))
        }.map { $0.replacingOccurrences(of: queue, with: "<queue>") }.sorted()
    }

    /// The answer with what legitimately differs between two runs masked.
    static func normalized(_ answer: (status: String, head: String, body: String), queue: String) -> Answer {
        func mask(_ text: String) -> String {
            var text = text.replacingOccurrences(of: queue, with: "<queue>")
            for (pattern, replacement) in [
                (#"[0-9A-HJKMNP-TV-Z]{26}\.[0-9]+"#, "<receipt>"),
                (#"[0-9A-HJKMNP-TV-Z]{26}"#, "<id>"),
                (#"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z"#, "<time>"),
                (#""oldestAgeMs":[0-9]+"#, #""oldestAgeMs":<age>"#),
                // Rolling windows: when a step falls in them is time, not the transport.
                (#""(lastMinute|ratesPerSecond)":\{[^}]*\}"#, #""$1":<window>"#),
                // Connections open as nodes are first used (a cluster has a pool per node).
                (#""redis\.connections":"[0-9]+""#, #""redis.connections":<n>"#),
            ] {
                text = text.replacingOccurrences(of: pattern, with: replacement, options: .regularExpression)
            }
            return text
        }
        let headers = answer.head.split(separator: "\r\n").dropFirst().map(String.init).filter {
            let name = $0.split(separator: ":")[0].lowercased()
            return name != "date" && name != "x-request-id"
        }.map(mask)
        let body = mask(answer.body)
        // A rolling figure's digits are time; so is the length of a body that holds them.
        let variable = body.contains("<window>") || body.contains("<age>")
        return Answer(
            status: answer.status,
            headers: headers.map { variable && $0.hasPrefix("Content-Length:") ? "Content-Length: <n>" : $0 }.sorted(),
            body: body
        )
    }

    private func compare(_ fast: Record, _ routed: Record, _ steps: [Step]) {
        #expect(fast.answers.count == steps.count)
        for (index, (a, b)) in zip(fast.answers, routed.answers).enumerated() {
            #expect(a == b, "step \(index): fast path\n\(a)\n-- routes --\n\(b)")
        }
        #expect(fast.metrics == routed.metrics, "metrics: fast path \(fast.metrics)\nroutes \(routed.metrics)")
        #expect(fast.accessLog == routed.accessLog, "access log: fast path \(fast.accessLog)\nroutes \(routed.accessLog)")
    }

    @Test(arguments: BackendKind.available)
    func everyRouteAndErrorIsAnsweredAndRecordedAlikeOnBothPaths(kind: BackendKind) async throws {
        let fast = try await run(kind, fastPath: true, keys: false, Self.open)
        let routed = try await run(kind, fastPath: false, keys: false, Self.open)
        compare(fast, routed, Self.open)
        // The table reaches what it is for: successes and every kind of refusal.
        let statuses = Set(fast.answers.map { $0.status.split(separator: " ")[1] })
        #expect(statuses.isSuperset(of: ["200", "201", "204", "400", "404", "405", "413", "429"]), "\(statuses.sorted())")
    }

    @Test(arguments: BackendKind.available)
    func keysAllowAndRefuseAlikeOnBothPaths(kind: BackendKind) async throws {
        let fast = try await run(kind, fastPath: true, keys: true, Self.keyed)
        let routed = try await run(kind, fastPath: false, keys: true, Self.keyed)
        compare(fast, routed, Self.keyed)
        #expect(fast.answers.map { String($0.status.split(separator: " ")[1]) }.prefix(6) == ["201", "401", "401", "403", "201", "400"])
    }
}
