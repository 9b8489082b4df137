import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import MetricsTestKit
import NIOCore
import NIOPosix
import SkiffAPI
import SkiffQueue
import SkiffRedis
import SkiffTestSupport
import Testing

/// Queue names can never reach outside their own Redis keys: hostile names get 400 or 404, and
/// Redis holds no key but `<prefix>:{<valid name>}:...` and the backend's own global keys.
@Suite("Queue name escapes", .timeLimit(.minutes(2)))
struct QueueNameEscapeTests {
    /// Names as they appear in the URI, and what each tries.
    static let hostileNames: [String] = [
        "a{b", "a}b", "%7Bq%7D", "q}:x", "q:x", "x*", "*", "..", "a..b", "%2E%2E", "..%2F..%2Fx", "a%2Fb", "%2F",
        "%C3%A9", "caf%C3%A9", "%E2%80%AE", "%F0%9F%9A%80", "a%00b", "a%20b", "a%0Ab", "a%0D%0Aset", "%7B", "%7D%3A*",
        String(repeating: "q", count: 129), "?", "%3F", "a'b", "a\"b", "a%5Cb", "%25",
    ]

    static func attempt(_ client: some TestClientProtocol, _ name: String) async throws {
        let requests: [(HTTPRequest.Method, String)] = [(.post, "/api/\(name)"), (.get, "/api/\(name)?timeout=0")]
        for (method, uri) in requests {
            let response = try await client.execute(uri: uri, method: method, body: method == .post ? ByteBuffer(string: "1") : nil)
            #expect([HTTPResponse.Status.badRequest, .notFound].contains(response.status), "\(method) \(uri) answered \(response.status)")
        }
    }

    @Test func queueNameRejectsEveryHostileName() {
        for raw in ["a{b", "a}b", "q:x", "x*", "..", "a/b", "é", "\u{202E}", "a\u{0}b", "a b", String(repeating: "q", count: 129), ""] {
            #expect(QueueName(raw) == nil, "\(raw)")
        }
        #expect(QueueName(String(repeating: "q", count: 128)) != nil)
    }

    @Test(arguments: BackendKind.available)
    func hostileNamesGet400Or404(kind: BackendKind) async throws {
        try await makeObservedApplication(kind, metricsFactory: TestMetrics()).test(.router) { client async throws in
            for name in Self.hostileNames {
                try await Self.attempt(client, name)
            }
        }
    }

    @Test(.enabled(if: TestEnvironment.hasRedis))
    func redisHoldsOnlyTheKeysOfValidQueues() async throws {
        let prefix = TestEnvironment.uniqueName("escape")
        let valid = "ok-queue_1"
        let app = try makeObservedApplication(.redis, metricsFactory: TestMetrics()) { $0.keyPrefix = prefix }
        try await app.test(.router) { client async throws in
            #expect(try await client.execute(uri: "/api/\(valid)", method: .post, body: ByteBuffer(string: "1")).status == .created)
            for name in Self.hostileNames {
                try await Self.attempt(client, name)
            }
            #expect(try await client.execute(uri: "/api/\(valid)?timeout=0", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/api/\(valid)", method: .post, body: ByteBuffer(string: "2")).status == .created)
        }

        let redis = RedisClient(
            configuration: try RedisConfiguration(url: try #require(TestEnvironment.redisURL)),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test")
        )
        defer { redis.close() }
        var keys: [String] = []
        var cursor = "0"
        repeat {
            let reply = try await redis.send("SCAN", .string(cursor), "MATCH", .string("*\(prefix)*"), "COUNT", "1000")
            let parts = try #require(reply.array)
            cursor = try #require(parts[0].string)
            keys += try #require(parts[1].array).compactMap(\.string)
        } while cursor != "0"

        #expect(keys.contains { $0.hasPrefix("\(prefix):{\(valid)}:") }, "the valid queue's keys are there: \(keys)")
        for key in keys {
            #expect(key.hasPrefix("\(prefix):"), "\(key)")
            let rest = key.dropFirst(prefix.count + 1)
            if rest.hasPrefix("{") {
                #expect(rest.hasPrefix("{\(valid)}:"), "a queue key of anything but the valid queue: \(key)")
            } else {
                // The backend's own global keys (queue set, lease index): plain words, no hash tag.
                #expect(rest.allSatisfy { $0.isLetter || $0 == "-" || $0 == "_" }, "\(key)")
            }
        }
    }
}
