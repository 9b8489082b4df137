import NIOCore
import SkiffClient
import SkiffTestSupport
import Synchronization
import Testing

/// The Swift client's Worker through the local cluster's HAProxy (issue 21).
extension ClusterTests {
    /// A Worker drains a queue through the proxy while a replica is killed and started again:
    /// every message is handled and acked, none is lost; a message can be handled twice only if
    /// its first ack was lost with the killed replica (at least once), and the queue ends empty.
    @Test func aWorkerThroughTheProxyHandlesEveryMessageWhileAReplicaDies() async throws {
        let queue = TestEnvironment.uniqueName("cluster-worker")
        let client = SkiffClient(
            configuration: SkiffClientConfiguration(
                url: "http://127.0.0.1:\(Cluster.proxy.port)", retry: RetryPolicy(maxAttempts: 8, baseDelay: .milliseconds(50), maxDelay: .seconds(1))))
        let bodies = (0..<600).map { ByteBuffer(string: "\($0)") }
        for start in stride(from: 0, to: bodies.count, by: 200) {
            _ = try await client.sendBatch(Array(bodies[start..<start + 200]), to: queue)
        }
        let handled = Mutex<[String: Int]>([:])
        let worker = Worker(
            client: client,
            configuration: WorkerConfiguration(queue: queue, concurrency: 8, batchSize: 8, visibilityTimeout: .seconds(3), receiveWait: .seconds(1))
        ) { job in
            handled.withLock { $0[job.message.text, default: 0] += 1 }
            try await Task.sleep(for: .milliseconds(2))
        }
        let running = Task { try await worker.run() }
        _ = try await eventually { handled.withLock { $0.count } >= 200 }
        try Cluster.control("kill", "2")
        try await Task.sleep(for: .milliseconds(500))
        try Cluster.control("start", "2")
        let stats = try await eventually(timeout: .seconds(60), until: { $0.ready == 0 && $0.inFlight == 0 && $0.delayed == 0 }) {
            try await client.stats(of: queue)
        }
        worker.stop()
        try await running.value
        try await client.shutdown()
        let seen = handled.withLock { $0 }
        #expect(stats.ready == 0 && stats.inFlight == 0)
        #expect(Set(seen.keys) == Set(bodies.map { String(buffer: $0) }), "every message handled: \(600 - seen.count) missing")
        let twice = seen.filter { $0.value > 1 }
        print("worker through the proxy with a replica killed: 600 messages, \(twice.count) handled twice (at least once)")
        #expect(twice.count <= 16, "only messages whose ack died with the replica come back: \(twice.count)")
    }
}
