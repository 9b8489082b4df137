import Foundation
import Logging
import NIOCore
import SkiffQueue
import SkiffRedis
import SkiffTestSupport
import Testing

@testable import SkiffRedisQueue

/// A consumer that is going to wait on a queue this replica knows to be empty (a claim under the
/// current wake token found it so, and no wake-up came since) registers its wait without running a
/// claim in Redis: single and batch receives alike, and each partition of a partitioned queue. Seen
/// from Redis itself (`MONITOR` on a server of the test's own), so that an extra claim fails it.
@Suite("Idle waits", .enabled(if: TestEnvironment.hasRedis), .timeLimit(.minutes(1)))
struct IdleWaitTests {
    /// `redis-cli monitor` into a file, and the claim script's calls between two markers.
    final class ClaimMonitor {
        let process = Process()
        let file: URL
        let claimHash: String

        init(port: Int, claimHash: String) throws {
            file = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.uniqueName("monitor"))
            FileManager.default.createFile(atPath: file.path, contents: nil)
            self.claimHash = claimHash
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["redis-cli", "-p", "\(port)", "monitor"]
            process.standardOutput = try FileHandle(forWritingTo: file)
            try process.run()
        }

        /// Claims run between the `ECHO` of `from` and that of `to` (`nil` until both are seen).
        func claims(between from: String, and to: String) async throws -> Int? {
            let text = try await eventually(until: { $0.contains(#""\#(to)""#) }) { (try? String(contentsOf: self.file, encoding: .utf8)) ?? "" }
            let lines = text.split(separator: "\n")
            guard let start = lines.firstIndex(where: { $0.contains(#""\#(from)""#) }),
                let end = lines.firstIndex(where: { $0.contains(#""\#(to)""#) })
            else { return nil }
            return lines[start..<end].filter { $0.lowercased().contains(#""evalsha" "\#(claimHash)""#) }.count
        }

        /// Runs `receive` between two markers and counts the claims it ran.
        func claims(during receive: () async throws -> Void, client: RedisClient) async throws -> Int? {
            let marker = TestEnvironment.uniqueName("marker")
            _ = try await client.send("ECHO", .string(marker + "-starts"))
            try await receive()
            _ = try await client.send("ECHO", .string(marker + "-ended"))
            return try await claims(between: marker + "-starts", and: marker + "-ended")
        }

        deinit {
            process.terminate()
            try? FileManager.default.removeItem(at: file)
        }
    }

    /// A Redis backend on a server of the test's own, watched by a claim monitor.
    static func ownRedis() async throws -> (BackendFixture, ClaimMonitor, RedisServerProcess) {
        let server = try RedisServerProcess()
        try server.start()
        // No maintenance round during a test: its safety-net claim for every queue with waiters
        // would be counted as the wait's own.
        let fixture = try await BackendFixture.make(.redis, claimLease: .seconds(3_600), redisURL: server.url, sweepInterval: .seconds(900))
        let hash = try await client(of: fixture).send("SCRIPT", "LOAD", .string(RedisQueueScripts.claim.source)).string
        return (fixture, try ClaimMonitor(port: server.port, claimHash: try #require(hash)), server)
    }

    static func client(of fixture: BackendFixture) throws -> RedisClient {
        try #require(fixture.backend as? RedisQueueBackend).client
    }

    private func request(_ queue: QueueName, max: Int, timeout: Duration) -> DeliveryRequest {
        DeliveryRequest(queue: queue, max: max, timeout: timeout, mode: .acknowledge(visibilityTimeout: .seconds(30)))
    }

    @Test(arguments: [1, 10])
    func aSecondConsumerOfAnEmptyQueueWaitsWithoutAClaim(max: Int) async throws {
        let (fixture, monitor, server) = try await Self.ownRedis()
        defer { fixture.close() }
        _ = server
        let backend = fixture.backend
        let context = DeliveryContext(logger: Logger(label: "test"))
        let queue = uniqueQueue("idle")

        // The first consumer finds the queue empty (a claim) and waits; the second need not claim.
        // A wait's claim pass runs once its subscription is confirmed, which on a loaded machine
        // may be after the wait ended: then another wait, until a claim has found the queue empty.
        try await eventually { () async throws -> Bool in
            #expect(try await backend.deliver(request(queue, max: max, timeout: .milliseconds(200)), context: context) == nil)
            return backend.isKnownEmpty(queue)
        }
        let claims = try await monitor.claims(
            during: {
                let lease = try await backend.deliver(request(queue, max: max, timeout: .milliseconds(200)), context: context)
                #expect(lease == nil)
            },
            client: Self.client(of: fixture))
        #expect(claims == 0)

        // The wake-up of a send still reaches a consumer that waited without a claim.
        let waiting = Task { try await backend.deliver(request(queue, max: max, timeout: .seconds(10)), context: context) }
        try await Task.sleep(for: .milliseconds(100))
        _ = try await backend.send(ByteBuffer(string: "woken"), to: queue)
        let lease = try #require(try await waiting.value)
        #expect(lease.deliveries.map { String(buffer: $0.message.body) } == ["woken"])
        await lease.delivered()
        #expect(try await backend.acknowledge(lease.deliveries.map(\.receipt), in: queue) == [true])
    }

    @Test func aBatchWaitOnAPartitionedQueueClaimsNoPartitionItKnowsEmpty() async throws {
        let (fixture, monitor, server) = try await Self.ownRedis()
        defer { fixture.close() }
        _ = server
        let queues = PartitionedQueues(fixture.backend)
        let context = DeliveryContext(logger: Logger(label: "test"))
        let queue = uniqueQueue("idle-part")
        try await queues.updateSettings(QueueSettings(partitions: 3), of: queue)

        try await eventually { () async throws -> Bool in
            #expect(try await queues.deliver(request(queue, max: 10, timeout: .milliseconds(200)), context: context) == nil)
            return (0..<3).allSatisfy { fixture.backend.isKnownEmpty(queue.partition($0)) }
        }
        let claims = try await monitor.claims(
            during: {
                let lease = try await queues.deliver(request(queue, max: 10, timeout: .milliseconds(200)), context: context)
                #expect(lease == nil)
            },
            client: Self.client(of: fixture))
        #expect(claims == 0)

        // Sends to each partition in turn still wake a batch consumer.
        for index in 0..<3 {
            let waiting = Task { try await queues.deliver(request(queue, max: 10, timeout: .seconds(10)), context: context) }
            try await Task.sleep(for: .milliseconds(100))
            _ = try await queues.send(ByteBuffer(string: "m\(index)"), to: queue)
            let lease = try #require(try await waiting.value)
            #expect(lease.deliveries.map { String(buffer: $0.message.body) } == ["m\(index)"])
            await lease.delivered()
            #expect(try await queues.acknowledge(lease.deliveries.map(\.receipt), in: queue) == [true])
        }
    }
}
