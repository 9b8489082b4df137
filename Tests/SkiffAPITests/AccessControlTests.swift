import HTTPTypes
import Hummingbird
import HummingbirdTesting
import MetricsTestKit
import NIOCore
import Prometheus
import SkiffAPI
import SkiffTestSupport
import Testing

/// API keys over HTTP: 401 and 403 with JSON bodies, open routes, open mode, `/metrics`.
@Suite("Access control", .timeLimit(.minutes(2)))
struct AccessControlTests {
    func makeApp(metricsRequireAuth: Bool = true, keys: [APIKey] = TestKeys.all) throws -> SkiffApplication {
        try makeObservedApplication(metricsFactory: TestMetrics(), registry: PrometheusCollectorRegistry()) {
            $0.apiKeys = keys
            $0.metricsRequireAuth = metricsRequireAuth
        }
    }

    @Test func missingOrUnknownKeyGets401WithChallenge() async throws {
        try await makeApp().test(.router) { client async throws in
            for headers in [HTTPFields(), TestKeys.bearer("unknown-key-0123456789"), [.authorization: "Basic Zm9vOmJhcg=="]] {
                let response = try await client.execute(uri: "/api/q", method: .post, headers: headers, body: ByteBuffer(string: "1"))
                #expect(response.status == .unauthorized)
                #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                #expect(response.text.hasPrefix(#"{"error":""#))
                #expect(response.headers[HTTPField.Name("X-Request-Id")!] != nil)
            }
        }
    }

    @Test func wrongScopeOrPrefixGets403() async throws {
        try await makeApp().test(.router) { client async throws in
            let wrongScope = try await client.execute(uri: "/api/q", method: .post, headers: TestKeys.bearer(TestKeys.receive), body: ByteBuffer(string: "1"))
            #expect(wrongScope.status == .forbidden)
            #expect(wrongScope.text.contains("'send'"))
            #expect(wrongScope.headers[.wwwAuthenticate] == nil)
            let wrongPrefix = try await client.execute(
                uri: "/api/billing", method: .post, headers: TestKeys.bearer(TestKeys.orders), body: ByteBuffer(string: "1"))
            #expect(wrongPrefix.status == .forbidden)
            #expect(wrongPrefix.text.contains("orders-"))
        }
    }

    @Test func rightKeysSendAndReceive() async throws {
        try await makeApp().test(.router) { client async throws in
            let sent = try await client.execute(uri: "/api/orders-eu", method: .post, headers: TestKeys.bearer(TestKeys.orders), body: ByteBuffer(string: "17"))
            #expect(sent.status == .created)
            let received = try await client.execute(uri: "/api/orders-eu?timeout=0", method: .get, headers: TestKeys.bearer(TestKeys.receive))
            #expect(received.status == .ok)
            #expect(received.text == "17")
            // Auth comes first, then the usual validation.
            let badName = try await client.execute(uri: "/api/bad.name", method: .post, headers: TestKeys.bearer(TestKeys.send), body: ByteBuffer(string: "1"))
            #expect(badName.status == .badRequest)
        }
    }

    /// A key confined to a prefix must not reach another tenant's queue through a name in a body
    /// or in stored settings: here, a dead-letter queue outside its prefix, which a redrive would
    /// otherwise read from and move into a queue the key can read.
    @Test func aPrefixedAdminKeyCannotNameAQueueOutsideItsPrefix() async throws {
        try await makeApp().test(.router) { client async throws in
            let admin = TestKeys.bearer(TestKeys.admin)
            let confined = TestKeys.bearer(TestKeys.ordersAdmin)
            #expect(
                try await client.execute(uri: "/api/billing", method: .post, headers: TestKeys.bearer(TestKeys.send), body: ByteBuffer(string: #""secret""#))
                    .status == .created)

            let escape = try await client.execute(
                uri: "/api/orders-x/config", method: .put, headers: confined, body: ByteBuffer(string: #"{"deadLetterQueue":"billing"}"#))
            #expect(escape.status == .forbidden)
            #expect(escape.text.contains("deadLetterQueue"))
            #expect(escape.text.contains("orders-"))
            // Nothing was stored: the default dead-letter queue is still the queue's own.
            let stored = try await client.execute(uri: "/api/orders-x/config", method: .get, headers: confined)
            #expect(stored.text.contains(#""deadLetterQueue":"orders-x-dlq""#))
            // Inside the prefix it is allowed.
            let inside = try await client.execute(
                uri: "/api/orders-x/config", method: .put, headers: confined, body: ByteBuffer(string: #"{"deadLetterQueue":"orders-dead"}"#))
            #expect(inside.status == .ok)

            // Settings an unrestricted admin stored are not a way around it either.
            let unrestricted = try await client.execute(
                uri: "/api/orders-y/config", method: .put, headers: admin, body: ByteBuffer(string: #"{"deadLetterQueue":"billing"}"#))
            #expect(unrestricted.status == .ok)
            let redrive = try await client.execute(uri: "/api/orders-y/redrive", method: .post, headers: confined)
            #expect(redrive.status == .forbidden)
            #expect(redrive.text.contains("billing"))
            let received = try await client.execute(uri: "/api/billing?timeout=0", method: .get, headers: TestKeys.bearer(TestKeys.receive))
            #expect(received.text == #""secret""#)
        }
    }

    @Test func healthAndReadyStayOpen() async throws {
        try await makeApp().test(.router) { client async throws in
            #expect(try await client.execute(uri: "/health", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/ready", method: .get).status == .ok)
        }
    }

    @Test func withoutKeysTheServiceIsOpen() async throws {
        try await makeApp(keys: []).test(.router) { client async throws in
            #expect(try await client.execute(uri: "/api/q-open", method: .post, body: ByteBuffer(string: "1")).status == .created)
            #expect(try await client.execute(uri: "/api/q-open?timeout=0", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/metrics", method: .get).status == .ok)
        }
    }

    @Test func metricsNeedsAdminWhenRequired() async throws {
        try await makeApp(metricsRequireAuth: true).test(.router) { client async throws in
            #expect(try await client.execute(uri: "/metrics", method: .get).status == .unauthorized)
            #expect(try await client.execute(uri: "/metrics", method: .get, headers: TestKeys.bearer(TestKeys.send)).status == .forbidden)
            let scraped = try await client.execute(uri: "/metrics", method: .get, headers: TestKeys.bearer(TestKeys.admin))
            #expect(scraped.status == .ok)
            #expect(scraped.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
        }
        try await makeApp(metricsRequireAuth: false).test(.router) { client async throws in
            #expect(try await client.execute(uri: "/metrics", method: .get).status == .ok)
        }
    }

    /// `METRICS_PORT`: the same exposition with no key, on 127.0.0.1 only and nothing else there;
    /// the main port still wants the admin key.
    @Test func theMetricsPortServesMetricsWithoutAKeyOnLoopbackOnly() async throws {
        let metricsPort = try RedisServerProcess.freePort()
        let app = try makeObservedApplication(metricsFactory: TestMetrics(), registry: PrometheusCollectorRegistry()) {
            $0.apiKeys = TestKeys.all
            $0.host = "127.0.0.1"
            $0.metricsPort = metricsPort
        }
        try await app.test(.live) { client async throws in
            let port = try #require(client.port)
            #expect(try await Probe(port: port).request(.get, "/metrics").status == .unauthorized)
            let listener = Probe(port: metricsPort)
            let scraped = try await eventually(until: { $0?.status == .ok }) { try? await listener.request(.get, "/metrics", timeout: .seconds(5)) }
            #expect(scraped?.status == .ok)
            #expect(scraped?.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(try await listener.request(.post, "/api/q", body: "1").status == .notFound)
            #expect(try await listener.request(.get, "/api/q?timeout=0").status == .notFound)
            #expect(try await listener.request(.post, "/metrics").status == .methodNotAllowed)
            // Bound to 127.0.0.1 itself, not to every address: another loopback address is refused.
            await #expect(throws: (any Error).self) { try await Probe(port: metricsPort, host: "127.0.0.2").request(.get, "/metrics", timeout: .seconds(5)) }
        }
    }

    @Test func unknownPathsNeedAdminThenGet404() async throws {
        try await makeApp().test(.router) { client async throws in
            #expect(try await client.execute(uri: "/nowhere", method: .get, headers: TestKeys.bearer(TestKeys.send)).status == .forbidden)
            #expect(try await client.execute(uri: "/nowhere", method: .get, headers: TestKeys.bearer(TestKeys.admin)).status == .notFound)
        }
    }
}
