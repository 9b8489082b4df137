import HTTPTypes
import Hummingbird
import HummingbirdTesting
import MetricsTestKit
import NIOCore
import Synchronization
import Testing

@testable import SkiffAPI

/// Token buckets per API key and queue: 429 with `Retry-After`, off unless configured.
@Suite("Rate limiting", .timeLimit(.minutes(2)))
struct RateLimitTests {
    @Test func bucketRefillsAtItsRate() {
        var bucket = TokenBucket(burst: 2, nowNanoseconds: 0)
        #expect(bucket.take(nowNanoseconds: 0, rate: 4, burst: 2) == nil)
        #expect(bucket.take(nowNanoseconds: 0, rate: 4, burst: 2) == nil)
        #expect(bucket.take(nowNanoseconds: 0, rate: 4, burst: 2) == .milliseconds(250))
        #expect(bucket.take(nowNanoseconds: 125_000_000, rate: 4, burst: 2) == .milliseconds(125))
        #expect(bucket.take(nowNanoseconds: 250_000_000, rate: 4, burst: 2) == nil)
        // Never more than the burst, however long it was idle.
        #expect(bucket.isFull(nowNanoseconds: 10_000_000_000, rate: 4, burst: 2))
        #expect(bucket.take(nowNanoseconds: 10_000_000_000, rate: 4, burst: 2) == nil)
        #expect(bucket.take(nowNanoseconds: 10_000_000_000, rate: 4, burst: 2) == nil)
        #expect(bucket.take(nowNanoseconds: 10_000_000_000, rate: 4, burst: 2) != nil)
    }

    @Test func limiterKeepsOneBucketPerKeyAndQueue() {
        let clock = ManualClock()
        let limiter = RateLimiter(settings: RateLimitSettings(requestsPerSecond: 0.5, burst: 1), maximumBuckets: 3) {
            clock.nanoseconds.load(ordering: .relaxed)
        }
        #expect(limiter.take(key: "a", queue: "q1") == .allowed)
        #expect(limiter.take(key: "a", queue: "q1") == .limited(retryAfterSeconds: 2))
        #expect(limiter.take(key: "a", queue: "q2") == .allowed)
        #expect(limiter.take(key: "b", queue: "q1") == .allowed)
        clock.nanoseconds.store(1_500_000_000, ordering: .relaxed)
        #expect(limiter.take(key: "a", queue: "q1") == .limited(retryAfterSeconds: 1))
        clock.nanoseconds.store(2_000_000_000, ordering: .relaxed)
        #expect(limiter.take(key: "a", queue: "q1") == .allowed)
        // Past the bucket limit, idle (full) buckets are forgotten.
        clock.nanoseconds.store(10_000_000_000, ordering: .relaxed)
        #expect(limiter.take(key: "c", queue: "q1") == .allowed)
        #expect(limiter.bucketCount == 1)
    }

    func makeApp(perSecond: Double?, keys: [APIKey] = TestKeys.all) throws -> SkiffApplication {
        try makeObservedApplication(metricsFactory: TestMetrics()) {
            $0.apiKeys = keys
            $0.rateLimit = perSecond.map { RateLimitSettings(requestsPerSecond: $0, burst: 2) }
        }
    }

    @Test func exhaustedBucketGets429WithRetryAfter() async throws {
        try await makeApp(perSecond: 0.1).test(.router) { client async throws in
            func post(_ queue: String, _ key: String) async throws -> TestResponse {
                try await client.execute(uri: "/api/\(queue)", method: .post, headers: TestKeys.bearer(key), body: ByteBuffer(string: "1"))
            }
            #expect(try await post("orders-a", TestKeys.orders).status == .created)
            #expect(try await post("orders-a", TestKeys.orders).status == .created)
            let limited = try await post("orders-a", TestKeys.orders)
            #expect(limited.status == .tooManyRequests)
            #expect(limited.headers[.retryAfter].flatMap(Int.init).map { (1...10).contains($0) } == true)
            #expect(limited.text.hasPrefix(#"{"error":""#))
            // Per queue: the same key on another queue has its own bucket.
            #expect(try await post("orders-b", TestKeys.orders).status == .created)
            // Per key: another key on the same queue has its own bucket.
            #expect(try await post("orders-a", TestKeys.send).status == .created)
            // Health is never limited.
            for _ in 0..<5 { #expect(try await client.execute(uri: "/health", method: .get).status == .ok) }
        }
    }

    @Test func openModeLimitsPerQueue() async throws {
        try await makeApp(perSecond: 0.1, keys: []).test(.router) { client async throws in
            for expected in [HTTPResponse.Status.created, .created, .tooManyRequests] {
                #expect(try await client.execute(uri: "/api/open-q", method: .post, body: ByteBuffer(string: "1")).status == expected)
            }
            #expect(try await client.execute(uri: "/api/open-r", method: .post, body: ByteBuffer(string: "1")).status == .created)
        }
    }

    @Test func offByDefault() async throws {
        #expect(SkiffConfiguration().rateLimit == nil)
        try await makeApp(perSecond: nil).test(.router) { client async throws in
            for _ in 0..<30 {
                let response = try await client.execute(
                    uri: "/api/orders-x", method: .post, headers: TestKeys.bearer(TestKeys.orders), body: ByteBuffer(string: "1"))
                #expect(response.status == .created)
            }
        }
    }
}

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    let nanoseconds = Atomic<UInt64>(0)
}
