import NIOCore
import NIOPosix
import SkiffQueue
import SkiffRedis
import SkiffSupport
import SkiffTestSupport
import Testing

/// Concurrent requests on one event loop share one script run (sends, claims, acks); these check
/// that every request still gets exactly its own outcome.
@Suite("Redis merged calls", .enabled(if: TestEnvironment.hasRedis), .timeLimit(.minutes(2)))
struct RedisCoalescingTests {
    /// Runs `count` operations as tasks on one event loop, all scheduled before the first runs.
    private func concurrently<T: Sendable>(_ count: Int, _ operation: @escaping @Sendable (Int) async throws -> T) async throws -> [Result<T, any Error>] {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let executor = EventLoopTaskExecutor.shared(for: loop)
        let tasks = try await loop.submit {
            (0..<count).map { index in
                Task(executorPreference: executor) { () async -> Result<T, any Error> in
                    do { return .success(try await operation(index)) } catch { return .failure(error) }
                }
            }
        }.get()
        var results: [Result<T, any Error>] = []
        for task in tasks { results.append(await task.value) }
        return results
    }

    @Test func mergedSendsKeepEachIdWithItsBodyInArrivalOrder() async throws {
        let fixture = try await BackendFixture.make(.redis)
        defer { fixture.close() }
        let backend = fixture.backend
        let queue = uniqueQueue("merged-send")
        let sent = try await concurrently(100) { index in try await backend.send("\(index)", to: queue) }.map { try $0.get() }
        #expect(Set(sent.map(\.id)).count == 100)
        for index in 0..<100 {
            let delivery = try #require(try await backend.receive(from: queue, timeout: .zero))
            try await backend.complete(delivery)
            // FIFO in the order the requests arrived, and each id names its own body.
            #expect(String(buffer: delivery.message.body) == "\(index)")
            #expect(delivery.message.id == sent[index].id)
        }
        #expect(try await backend.receive(from: queue, timeout: .zero) == nil)
    }

    @Test func aFullQueueRefusesExactlyTheSendsThatDoNotFit() async throws {
        let fixture = try await BackendFixture.make(.redis)
        defer { fixture.close() }
        let backend = fixture.backend
        let queue = uniqueQueue("merged-full")
        var settings = QueueSettings()
        settings.maxDepth = 5
        try await backend.updateSettings(settings, of: queue)
        let results = try await concurrently(8) { index in try await backend.send("\(index)", to: queue) }
        let stored = results.enumerated().compactMap { index, result in (try? result.get()).map { _ in index } }
        #expect(stored == [0, 1, 2, 3, 4])
        for result in results.dropFirst(5) {
            #expect { try result.get() } throws: { ($0 as? QueueError)?.kind == .queueFull }
        }
        #expect(try await backend.stats(of: queue).ready == 5)
    }

    @Test func mergedClaimsHandTheOldestMessagesToTheEarliestCallers() async throws {
        let fixture = try await BackendFixture.make(.redis)
        defer { fixture.close() }
        let backend = fixture.backend
        let queue = uniqueQueue("merged-claim")
        for index in 0..<30 { _ = try await backend.send("\(index)", to: queue) }
        // 40 receivers for 30 messages: the first 30 get one each, in order; 10 get none.
        let received = try await concurrently(40) { _ in try await backend.receive(from: queue, max: 1, timeout: .zero, mode: .autoAcknowledge) }
            .map { try $0.get() }
        #expect(received.prefix(30).map { $0.map { String(buffer: $0.message.body) } } == (0..<30).map { ["\($0)"] })
        #expect(received.suffix(10).allSatisfy { $0.isEmpty })
        // Merged acks: each delivery completes exactly once.
        let deliveries = received.flatMap { $0 }
        let completed = try await concurrently(deliveries.count) { index in try await backend.complete(deliveries[index]) }
        #expect(try completed.map { try $0.get() } == Array(repeating: true, count: 30))
        let stats = try await backend.stats(of: queue)
        #expect(stats.ready == 0 && stats.inFlight == 0)
        // A second ack of the same receipts finds nothing: acks are not double-counted when merged.
        let again = try await concurrently(deliveries.count) { index in try await backend.acknowledge([deliveries[index].receipt], in: queue) }
        #expect(try again.map { try $0.get() } == Array(repeating: [false], count: 30))
    }
}
