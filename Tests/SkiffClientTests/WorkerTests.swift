import Logging
import Metrics
import MetricsTestKit
import NIOCore
import SkiffClient
import SkiffTestSupport
import Synchronization
import Testing

/// The Worker against a real replica (memory and Redis): every message handled once and acked, a
/// failed handler's message retried, a slow handler kept by its heartbeat, a lost lease told to
/// the handler and its ack refused, a graceful stop and a crash that lose nothing.
@Suite("Worker", .timeLimit(.minutes(2)))
struct WorkerTests {
    static var kinds: [BackendKind] { BackendKind.available.filter { $0 != .redisCluster } }

    /// What handlers saw, by body.
    final class Seen: Sendable {
        private let bodies = Mutex<[String: Int]>([:])
        func add(_ body: String) { bodies.withLock { $0[body, default: 0] += 1 } }
        var counts: [String: Int] { bodies.withLock { $0 } }
    }

    static func run(_ worker: Worker) -> Task<Void, any Error> { Task { try await worker.run() } }

    @Test(arguments: kinds) func everyMessageIsHandledOnceAndAcked(kind: BackendKind) async throws {
        try await withServer(kind) { client in
            let queue = TestEnvironment.uniqueName("work")
            let bodies = (0..<60).map { ByteBuffer(string: "\($0)") }
            _ = try await client.sendBatch(bodies, to: queue)
            let seen = Seen()
            let metrics = TestMetrics()
            let worker = Worker(
                client: client, configuration: WorkerConfiguration(queue: queue, concurrency: 8, batchSize: 5, receiveWait: .milliseconds(200)),
                metricsFactory: metrics
            ) { job in
                seen.add(job.message.text)
                try await Task.sleep(for: .milliseconds(5))
            }
            let running = Self.run(worker)
            let stats = try await eventually(until: { $0.ready == 0 && $0.inFlight == 0 && seen.counts.count == 60 }) { try await client.stats(of: queue) }
            worker.stop()
            try await running.value
            #expect(stats.ready == 0 && stats.inFlight == 0)
            #expect(seen.counts.count == 60 && seen.counts.values.allSatisfy { $0 == 1 })
            #expect(try metrics.expectCounter(WorkerMetrics.processedTotal, [("queue", queue)]).totalValue == 60)
        }
    }

    @Test(arguments: kinds) func aHandlerThatThrowsGetsItsMessageAgain(kind: BackendKind) async throws {
        try await withServer(kind) { client in
            let queue = TestEnvironment.uniqueName("retry")
            try await client.send(json: #""flaky""#, to: queue)
            let attempts = Seen()
            let worker = Worker(
                client: client,
                configuration: WorkerConfiguration(queue: queue, concurrency: 1, receiveWait: .milliseconds(200), retryDelay: .milliseconds(10))
            ) { job in
                attempts.add("\(job.message.receiveCount)")
                if job.message.receiveCount < 3 { throw CancellationError() }
            }
            let running = Self.run(worker)
            let stats = try await eventually(until: { $0.totals["acked"] == 1 }) { try await client.stats(of: queue) }
            worker.stop()
            try await running.value
            #expect(stats.totals["acked"] == 1)
            #expect(attempts.counts == ["1": 1, "2": 1, "3": 1])
        }
    }

    /// A handler slower than the visibility timeout keeps its message: the heartbeat renews it,
    /// so a second worker on the queue never gets it.
    @Test(arguments: kinds) func theHeartbeatKeepsASlowHandlersMessage(kind: BackendKind) async throws {
        try await withServer(kind) { client in
            let queue = TestEnvironment.uniqueName("slow")
            try await client.send(json: #""slow""#, to: queue)
            let seen = Seen()
            let (started, startedSignal) = AsyncStream.makeStream(of: Void.self)
            // A renewal every four seconds for a lease of eight: four seconds of slack for a loaded
            // machine (with one, then two, a renewal held up under a parallel test run on two
            // cores lost the lease).
            let configuration = WorkerConfiguration(queue: queue, concurrency: 1, visibilityTimeout: .seconds(8), receiveWait: .milliseconds(200))
            let slow = Worker(client: client, configuration: configuration) { job in
                seen.add("slow:\(job.message.receiveCount)")
                startedSignal.yield()
                try await Task.sleep(for: .seconds(17))
                #expect(!job.isLeaseLost)
            }
            let other = Worker(client: client, configuration: configuration) { job in seen.add("other:\(job.message.receiveCount)") }
            let first = Self.run(slow)
            var iterator = started.makeAsyncIterator()
            await iterator.next()
            // Two visibility timeouts pass while the slow handler runs; the other worker polls all along.
            let second = Self.run(other)
            // The slow handler takes 17 s of it.
            let stats = try await eventually(timeout: .seconds(60), until: { $0.totals["acked"] == 1 }) { try await client.stats(of: queue) }
            slow.stop()
            other.stop()
            try await first.value
            try await second.value
            #expect(stats.totals["acked"] == 1)
            #expect(seen.counts == ["slow:1": 1])
        }
    }

    /// The lease is lost (here: the message is made visible and taken by another consumer, as
    /// after a long stall): the next renewal is refused, the handler is cancelled and told, and
    /// the ack of a handler that finishes anyway is refused by the server.
    @Test(arguments: kinds) func aLostLeaseIsToldToTheHandlerAndItsAckIsRefused(kind: BackendKind) async throws {
        try await withServer(kind) { client in
            let queue = TestEnvironment.uniqueName("lost")
            try await client.send(json: #""job""#, to: queue)
            let (started, startedSignal) = AsyncStream.makeStream(of: String.self)
            let outcome = Mutex<(cancelled: Bool, toldLost: Bool)?>(nil)
            let metrics = TestMetrics()
            let worker = Worker(
                client: client,
                configuration: WorkerConfiguration(queue: queue, concurrency: 1, visibilityTimeout: .milliseconds(600), receiveWait: .milliseconds(200)),
                metricsFactory: metrics
            ) { job in
                startedSignal.yield(job.message.receipt ?? "")
                // Ignores cancellation, as work that cannot stop halfway would, then finishes.
                var cancelled = false
                while !job.isLeaseLost {
                    try? await Task.sleep(for: .milliseconds(20))
                    cancelled = cancelled || Task.isCancelled
                }
                outcome.withLock { $0 = (Task.isCancelled || cancelled, job.isLeaseLost) }
            }
            let running = Self.run(worker)
            var iterator = started.makeAsyncIterator()
            let receipt = try #require(await iterator.next())
            // Another consumer takes the message: the worker's receipt is stale from now on.
            #expect(try await client.extendVisibility(receipt, in: queue, by: .zero))
            let stolen = try #require(try await client.receive(from: queue, wait: .seconds(2), visibility: .seconds(30)))
            let told = try await eventually(until: { $0 != nil }) { outcome.withLock { $0 } }
            #expect(told?.cancelled == true && told?.toldLost == true)
            _ = try await eventually(until: { $0 == 1 }) {
                (try? metrics.expectCounter(WorkerMetrics.failedTotal, [("queue", queue)]).totalValue) ?? 0
            }
            worker.stop()
            try await running.value
            // The other consumer's claim stands: its ack works, and nothing else was deleted.
            #expect(try await client.ack(try #require(stolen.receipt), in: queue))
            #expect((try? metrics.expectCounter(WorkerMetrics.processedTotal, [("queue", queue)]).totalValue) ?? 0 == 0)
        }
    }

    /// A queue the server refuses to hand out (here a name it rejects) stops the worker with the
    /// server's error, instead of retrying for ever.
    @Test func aRefusedReceiveStopsTheWorkerWithTheServersError() async throws {
        try await withServer(.memory) { client in
            let worker = Worker(client: client, configuration: WorkerConfiguration(queue: "not a queue!", receiveWait: .milliseconds(100))) { _ in }
            let error = try await #require(throws: SkiffClientError.self) { try await worker.run() }
            #expect(error.status == 400)
        }
    }

    /// A graceful stop lets running handlers finish, past none of them; a handler that outlives
    /// the shutdown deadline is cancelled and its message given back at once.
    @Test(arguments: kinds) func aGracefulStopFinishesOrGivesBackEveryMessage(kind: BackendKind) async throws {
        try await withServer(kind) { client in
            let queue = TestEnvironment.uniqueName("stop")
            _ = try await client.sendBatch([ByteBuffer(string: #""quick""#), ByteBuffer(string: #""stuck""#)], to: queue)
            let (started, startedSignal) = AsyncStream.makeStream(of: String.self)
            let worker = Worker(
                client: client,
                configuration: WorkerConfiguration(
                    queue: queue, concurrency: 2, batchSize: 2, visibilityTimeout: .seconds(60), receiveWait: .milliseconds(200),
                    shutdownDeadline: .milliseconds(500))
            ) { job in
                startedSignal.yield(job.message.text)
                if job.message.text == #""quick""# {
                    try await Task.sleep(for: .milliseconds(100))
                } else {
                    try await Task.sleep(for: .seconds(600))
                }
            }
            let running = Self.run(worker)
            var iterator = started.makeAsyncIterator()
            _ = await iterator.next()
            _ = await iterator.next()
            worker.stop()
            try await running.value
            // The quick one was acked; the stuck one is back, visible at once despite its 60 s lease.
            let stats = try await client.stats(of: queue)
            #expect(stats.totals["acked"] == 1 && stats.inFlight == 0 && stats.ready == 1)
            #expect(try await client.receive(from: queue)?.text == #""stuck""#)
        }
    }

    /// The task running a worker is cancelled mid-handler (the process is going down): the
    /// handler is cancelled and its message comes back at once.
    @Test(arguments: kinds) func aCancelledWorkerGivesItsMessageBack(kind: BackendKind) async throws {
        try await withServer(kind) { client in
            let queue = TestEnvironment.uniqueName("crash")
            try await client.send(json: #""mid-task""#, to: queue)
            let (started, startedSignal) = AsyncStream.makeStream(of: Void.self)
            let worker = Worker(
                client: client,
                configuration: WorkerConfiguration(queue: queue, concurrency: 1, visibilityTimeout: .seconds(60), receiveWait: .milliseconds(200))
            ) { _ in
                startedSignal.yield()
                try await Task.sleep(for: .seconds(600))
            }
            let running = Self.run(worker)
            var iterator = started.makeAsyncIterator()
            await iterator.next()
            running.cancel()
            try await running.value
            let back = try #require(try await client.receive(from: queue, wait: .seconds(2)))
            #expect(back.text == #""mid-task""# && back.receiveCount == 2)
        }
    }
}
