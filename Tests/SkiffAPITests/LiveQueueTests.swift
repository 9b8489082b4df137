import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SkiffAPI
import SkiffTestSupport
import Synchronization
import Testing

/// Long-polls, disconnects, competing consumers and outages over real sockets.
@Suite("Live queue behaviour", .timeLimit(.minutes(3)))
struct LiveQueueTests {
    @Test(arguments: BackendKind.available)
    func subSecondTimeoutsAreHonoured(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.live) { client in
            let probe = Probe(port: try #require(client.port))
            let queue = TestEnvironment.uniqueName("subsecond")
            for milliseconds in [0, 1, 100, 250, 999] {
                let started = ContinuousClock.now
                let response = try await probe.get(queue, timeout: milliseconds)
                let elapsed = ContinuousClock.now - started
                #expect(response.status == .noContent)
                // Never early, and not rounded to whole seconds ("forever"); precision is measured by make bench.
                #expect(elapsed >= .milliseconds(milliseconds))
                #expect(elapsed < .milliseconds(milliseconds) + .seconds(5))
            }
        }
    }

    @Test(arguments: BackendKind.available)
    func aConsumerThatDisconnectsMidWaitTakesNoMessage(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.live) { client in
            let probe = Probe(port: try #require(client.port))
            let queue = TestEnvironment.uniqueName("leaver")
            try await probe.abandonedGet(queue, timeout: 30_000, after: .milliseconds(200))
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await probe.post(queue, #""kept""#).status == .created)
            let response = try await probe.get(queue, timeout: 5_000)
            #expect(response.status == .ok)
            #expect(response.text == #""kept""#)
        }
    }

    /// Consumers leave at random moments while messages arrive: a message claimed for a consumer
    /// that just left goes to another consumer or back to the head, never nowhere.
    @Test(arguments: BackendKind.available)
    func racingDisconnectsLoseNothing(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.live) { client in
            let probe = Probe(port: try #require(client.port))
            let queue = TestEnvironment.uniqueName("race")
            let total = 60
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<total {
                    group.addTask { try await probe.abandonedGet(queue, timeout: 30_000, after: .milliseconds(Int.random(in: 1...40))) }
                    group.addTask {
                        try await Task.sleep(for: .milliseconds(Int.random(in: 0...40)))
                        _ = try await probe.post(queue, "\(index)")
                    }
                }
                try await group.waitForAll()
            }
            // Everything not delivered to a consumer that stayed must still be there, once.
            var remaining: [String] = []
            while true {
                let response = try await probe.get(queue, timeout: 1_500)
                if response.status == .noContent { break }
                remaining.append(response.text)
            }
            // Abandoned GETs whose response was fully written before the close did receive
            // their message; all others must remain. So: no duplicates, and at most as many
            // missing as there were abandoned consumers that could have been served.
            #expect(Set(remaining).count == remaining.count)
            #expect(remaining.allSatisfy { Int($0).map { (0..<total).contains($0) } ?? false })
        }
    }

    /// A client that reads its whole response and closes at once was served: the message must
    /// not come back. (Releasing on any sign of the client leaving after the write would fail this.)
    @Test(arguments: BackendKind.available)
    func aConsumerThatReadsAndLeavesAtOnceIsServedOnce(kind: BackendKind) async throws {
        let app = try makeApplication(kind)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let probe = Probe(port: port)
            let queue = TestEnvironment.uniqueName("readleave")
            for index in 0..<100 { #expect(try await probe.post(queue, "\(index)").status == .created) }
            for index in 0..<100 {
                let (status, body) = try await RawHTTP.exchangeAndClose(
                    port: port,
                    request: "GET /api/\(queue)?timeout=2000 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                )
                #expect(status.hasPrefix("HTTP/1.1 200"))
                #expect(body == "\(index)")
            }
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await probe.get(queue, timeout: 500).status == .noContent)
        }
    }

    @Test(.enabled(if: TestEnvironment.hasRedis))
    func competingConsumersOnTwoInstancesGetEveryMessageExactlyOnce() async throws {
        let first = try makeApplication(.redis)
        let second = try makeApplication(.redis)
        try await first.test(.live) { client1 in
            try await second.test(.live) { client2 in
                let ports = [try #require(client1.port), try #require(client2.port)]
                let queue = TestEnvironment.uniqueName("compete")
                let total = 2000
                let received = LockedBox<[String]>([])
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for consumer in 0..<20 {
                        let probe = Probe(port: ports[consumer % 2])
                        group.addTask {
                            while received.value.withLock({ $0.count }) < total {
                                let response = try await probe.get(queue, timeout: 500)
                                if response.status == .ok { received.value.withLock { $0.append(response.text) } }
                            }
                        }
                    }
                    for producer in 0..<4 {
                        let probe = Probe(port: ports[producer % 2])
                        group.addTask {
                            for index in stride(from: producer, to: total, by: 4) {
                                let response = try await probe.post(queue, "\(index)")
                                #expect(response.status == .created)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let bodies = received.value.withLock { $0 }
                #expect(bodies.count == total)
                #expect(Set(bodies).count == total)
                #expect(Set(bodies) == Set((0..<total).map(String.init)))
            }
        }
    }

    @Test(.enabled(if: TestEnvironment.hasRedis))
    func redisOutageGives503ThenRecoversWithoutRestart() async throws {
        let redis = try RedisServerProcess()
        try redis.start(extraArguments: ["--appendonly", "yes", "--appendfsync", "always"])
        let app = try makeApplication(.redis, redisURL: redis.url)
        try await app.test(.live) { client in
            let probe = Probe(port: try #require(client.port))
            let queue = TestEnvironment.uniqueName("outage")
            #expect(try await probe.post(queue, #""before""#).status == .created)

            redis.kill()
            let started = ContinuousClock.now
            let post = try await probe.post(queue, #""during""#)
            let get = try await probe.get(queue, timeout: 5_000)
            #expect(post.status == .serviceUnavailable)
            #expect(post.text.hasPrefix(#"{"error":""#))
            #expect(get.status == .serviceUnavailable)
            // Fails promptly instead of hanging (generous bound; the contract is about a second).
            #expect(ContinuousClock.now - started < .seconds(4))
            var health = try await probe.request(.get, "/health")
            for _ in 0..<40 where health.status != .serviceUnavailable {
                try await Task.sleep(for: .milliseconds(100))
                health = try await probe.request(.get, "/health")
            }
            #expect(health.status == .serviceUnavailable)

            try redis.start(extraArguments: ["--appendonly", "yes", "--appendfsync", "always"])
            var recovered = false
            for _ in 0..<100 where !recovered {
                recovered = try await probe.request(.get, "/health").status == .ok
                if !recovered { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(recovered)
            // The message acknowledged before the outage survived it (AOF, fsync always).
            let survivor = try await probe.get(queue, timeout: 2_000)
            #expect(survivor.status == .ok)
            #expect(survivor.text == #""before""#)
            #expect(try await probe.post(queue, #""after""#).status == .created)
            #expect(try await probe.get(queue, timeout: 2_000).text == #""after""#)
        }
    }

    @Test(.enabled(if: TestEnvironment.hasRedis))
    func aWaiterIsWokenByAPostOnAnotherInstance() async throws {
        let first = try makeApplication(.redis)
        let second = try makeApplication(.redis)
        try await first.test(.live) { client1 in
            try await second.test(.live) { client2 in
                let (probe1, probe2) = (Probe(port: try #require(client1.port)), Probe(port: try #require(client2.port)))
                let queue = TestEnvironment.uniqueName("wake")
                async let waiting = probe2.get(queue, timeout: 20_000)
                try await Task.sleep(for: .milliseconds(300))
                #expect(try await probe1.post(queue, #""hello""#).status == .created)
                let response = try await waiting
                #expect(response.status == .ok)
                #expect(response.text == #""hello""#)
            }
        }
    }
}

/// A mutex that escaping closures can share.
final class LockedBox<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
}
