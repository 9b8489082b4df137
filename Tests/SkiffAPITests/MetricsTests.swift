import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Metrics
import MetricsTestKit
import NIOCore
import Prometheus
import SkiffAPI
import SkiffTestSupport
import Testing

/// `/metrics` and the metrics behind it. Each test has its own factory and registry: nothing is
/// bootstrapped globally, so tests running in parallel cannot see each other's numbers.
@Suite("Metrics", .timeLimit(.minutes(2)))
struct MetricsTests {
    @Test func metricsShowsHTTPCountersByRoutePattern() async throws {
        let registry = PrometheusCollectorRegistry()
        let app = try makeObservedApplication(metricsFactory: PrometheusMetricsFactory(registry: registry), registry: registry) {
            $0.metricsRequireAuth = false
        }
        try await app.test(.router) { client async throws in
            for queue in ["m-one", "m-two"] {
                #expect(try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: "1")).status == .created)
            }
            #expect(try await client.execute(uri: "/api/m-one?timeout=0", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/api/bad.name", method: .post, body: ByteBuffer(string: "1")).status == .badRequest)
            #expect(try await client.execute(uri: "/no/such/path", method: .get).status == .notFound)
            let scraped = try await client.execute(uri: "/metrics", method: .get)
            #expect(scraped.status == .ok)
            let text = scraped.text
            #expect(text.contains(#"skiff_http_requests_total{route="/api/{queue}",method="POST",status="201"} 2"#), "\(text)")
            #expect(text.contains(#"skiff_http_requests_total{route="/api/{queue}",method="GET",status="200"} 1"#))
            #expect(text.contains(#"skiff_http_requests_total{route="/api/{queue}",method="POST",status="400"} 1"#))
            #expect(text.contains(#"skiff_http_requests_total{route="unmatched",method="GET",status="404"} 1"#))
            #expect(text.contains(#"skiff_http_request_duration_seconds_count{route="/api/{queue}",method="POST",status="201"} 2"#))
            #expect(text.contains("# TYPE skiff_http_request_duration_seconds histogram"))
            // Raw paths never become route labels (the queue counters have a queue label of their own).
            #expect(!text.split(separator: "\n").contains { $0.hasPrefix("skiff_http") && $0.contains("m-one") })
            #expect(text.contains(#"skiff_messages_enqueued_total{queue="m-one"} 1"#))
            #expect(!text.contains("/no/such/path"))
        }
    }

    @Test func metricsRouteIsAbsentWithoutAnExposition() async throws {
        let app = try makeObservedApplication(metricsFactory: TestMetrics()) { $0.metricsRequireAuth = false }
        try await app.test(.router) { client async throws in
            #expect(try await client.execute(uri: "/metrics", method: .get).status == .notFound)
        }
    }

    @Test func httpMetricsThroughMetricsTestKit() async throws {
        let metrics = TestMetrics()
        try await makeObservedApplication(metricsFactory: metrics).test(.router) { client async throws in
            _ = try await client.execute(uri: "/health", method: .get)
            _ = try await client.execute(uri: "/health", method: .get)
        }
        let dimensions = [("route", "/health"), ("method", "GET"), ("status", "200")]
        #expect(try metrics.expectCounter("skiff_http_requests_total", dimensions).totalValue == 2)
        #expect(try metrics.expectTimer("skiff_http_request_duration_seconds", dimensions).values.count == 2)
    }

    @Test func queueCountersAndTheLabelCap() throws {
        let metrics = TestMetrics()
        let skiff = SkiffMetrics(factory: metrics, queueLabelLimit: 2)
        skiff.messageEnqueued(queue: "a", count: 3)
        skiff.messageEnqueued(queue: "b")
        skiff.messageEnqueued(queue: "c")
        skiff.messageEnqueued(queue: "d", count: 2)
        skiff.messageDelivered(queue: "a")
        skiff.messageAcked(queue: "a")
        skiff.messageRetried(queue: "b")
        skiff.messageDeadLettered(queue: "z")
        #expect(try metrics.expectCounter("skiff_messages_enqueued_total", [("queue", "a")]).totalValue == 3)
        #expect(try metrics.expectCounter("skiff_messages_enqueued_total", [("queue", "b")]).totalValue == 1)
        #expect(try metrics.expectCounter("skiff_messages_enqueued_total", [("queue", "other")]).totalValue == 3)
        #expect(try metrics.expectCounter("skiff_messages_delivered_total", [("queue", "a")]).totalValue == 1)
        #expect(try metrics.expectCounter("skiff_messages_acked_total", [("queue", "a")]).totalValue == 1)
        #expect(try metrics.expectCounter("skiff_messages_retried_total", [("queue", "b")]).totalValue == 1)
        #expect(try metrics.expectCounter("skiff_messages_dead_lettered_total", [("queue", "other")]).totalValue == 1)
        #expect(skiff.queueLabel("a") == "a")
        #expect(skiff.queueLabel("new") == "other")

        skiff.waitStarted()
        skiff.waitStarted()
        skiff.waitFinished()
        #expect(try metrics.expectMeter("skiff_long_poll_waiters").lastValue == 1)
    }

    @Test func gaugeRefresherSetsAndZeroesQueueGauges() async throws {
        let metrics = TestMetrics()
        let skiff = SkiffMetrics(factory: metrics, queueLabelLimit: 1)
        let refresher = QueueGaugeRefresher(metrics: skiff, logger: Logger(label: "test")) {
            [
                QueueGaugeSnapshot(queue: "a", depth: 5, inFlight: 1, oldestMessageAgeSeconds: 2.5),
                QueueGaugeSnapshot(queue: "b", depth: 2, inFlight: 0, oldestMessageAgeSeconds: 9),
                QueueGaugeSnapshot(queue: "c", depth: 3, inFlight: 4, oldestMessageAgeSeconds: 1),
            ]
        }
        let seen = await refresher.refresh()
        #expect(seen == ["a", "b", "c"])
        #expect(try metrics.expectGauge("skiff_queue_depth", [("queue", "a")]).lastValue == 5)
        #expect(try metrics.expectGauge("skiff_queue_in_flight", [("queue", "a")]).lastValue == 1)
        #expect(try metrics.expectGauge("skiff_queue_oldest_message_age_seconds", [("queue", "a")]).lastValue == 2.5)
        // Past the label cap: summed depths, the oldest age.
        #expect(try metrics.expectGauge("skiff_queue_depth", [("queue", "other")]).lastValue == 5)
        #expect(try metrics.expectGauge("skiff_queue_in_flight", [("queue", "other")]).lastValue == 4)
        #expect(try metrics.expectGauge("skiff_queue_oldest_message_age_seconds", [("queue", "other")]).lastValue == 9)

        let emptied = QueueGaugeRefresher(metrics: skiff, logger: Logger(label: "test")) { [] }
        #expect(await emptied.refresh(previous: seen).isEmpty)
        #expect(try metrics.expectGauge("skiff_queue_depth", [("queue", "a")]).lastValue == 0)
        #expect(try metrics.expectGauge("skiff_queue_depth", [("queue", "other")]).lastValue == 0)
    }

    @Test(.enabled(if: TestEnvironment.hasRedis))
    func redisClientRecordsCommandLatencies() async throws {
        let metrics = TestMetrics()
        let app = try makeObservedApplication(.redis, metricsFactory: metrics)
        let queue = TestEnvironment.uniqueName("metrics")
        try await app.test(.router) { client async throws in
            #expect(try await client.execute(uri: "/api/\(queue)", method: .post, body: ByteBuffer(string: "1")).status == .created)
            #expect(try await client.execute(uri: "/api/\(queue)?timeout=0", method: .get).status == .ok)
        }
        let commands = metrics.timers(label: "skiff_redis_command_duration_seconds")
        #expect(!commands.isEmpty)
        #expect(commands.allSatisfy { timer in timer.dimensions.contains { $0.0 == "command" } })
        #expect(commands.reduce(0) { $0 + $1.values.count } >= 2)
    }
}

/// The access log: one line per request with the fields operators filter on, and never a key.
@Suite("Access log", .timeLimit(.minutes(2)))
struct AccessLogTests {
    @Test func oneLinePerRequestWithRouteStatusDurationAndRequestID() async throws {
        let (logger, records) = RecordingLogHandler.logger()
        let app = try makeObservedApplication(metricsFactory: TestMetrics(), logger: logger) { $0.apiKeys = TestKeys.all }
        try await app.test(.router) { client async throws in
            let headers: HTTPFields = [.authorization: "Bearer \(TestKeys.send)", HTTPField.Name("X-Request-Id")!: "req-access-log-1"]
            #expect(try await client.execute(uri: "/api/log-q", method: .post, headers: headers, body: ByteBuffer(string: "1")).status == .created)
            #expect(try await client.execute(uri: "/api/log-q", method: .post, body: ByteBuffer(string: "1")).status == .unauthorized)
        }
        let lines = records.all.withLock { $0 }.filter { $0.message == "request" }
        #expect(lines.count == 2)
        let first = try #require(lines.first)
        #expect(first.level == .info)
        #expect(first.metadata["http.method"] == "POST")
        #expect(first.metadata["http.route"] == "/api/{queue}")
        #expect(first.metadata["url.path"] == "/api/log-q")
        #expect(first.metadata["http.status"] == "201")
        #expect(first.metadata["request.id"] == "req-access-log-1")
        #expect(first.metadata["http.duration_ms"].flatMap { Double("\($0)") } != nil)
        #expect(lines.last?.metadata["http.status"] == "401")
        let everything = records.all.withLock { $0 }.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n")
        #expect(!everything.contains(TestKeys.send), "an API key reached the logs")
    }
}
