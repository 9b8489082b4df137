import Logging
import NIOCore
import NIOPosix
import SkiffQueue
import SkiffRedis
import SkiffRedisQueue
import SkiffTestSupport
import Testing

/// The number of queues is bounded (MAX_QUEUES), and listing them is paged.
@Suite("Queue limit", .timeLimit(.minutes(2)))
struct QueueLimitTests {
    /// A backend with its own key prefix (so the count is this test's alone) and a small limit.
    private func backend(_ kind: BackendKind, maximumQueues: Int) throws -> (any ClaimingBackend, close: () -> Void) {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        switch kind {
        case .memory:
            return (MemoryQueueBackend(eventLoop: loop, maximumQueues: maximumQueues), {})
        case .redis, .redisCluster:
            var configuration = try RedisConfiguration(url: try #require(kind.redisURL))
            configuration.commandTimeout = .seconds(5)
            let client = RedisClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
            let backend = RedisQueueBackend(
                client: client,
                configuration: RedisQueueConfiguration(keyPrefix: TestEnvironment.uniqueName("limit"), maximumQueues: maximumQueues),
                eventLoop: loop,
                logger: Logger(label: "test")
            )
            return (backend, { client.close() })
        }
    }

    @Test(arguments: BackendKind.available)
    func creatingAQueuePastTheLimitIsRefusedAndStoresNothing(kind: BackendKind) async throws {
        let (backend, close) = try backend(kind, maximumQueues: 3)
        defer { close() }
        let names = (0..<4).map { QueueName("q\($0)")! }
        for name in names.prefix(2) { _ = try await backend.send(ByteBuffer(string: "1"), to: name) }
        try await backend.updateSettings(QueueSettings(maxReceiveCount: 1), of: names[2])

        for attempt in [0, 1] {
            let error = await #expect(throws: QueueError.self) {
                if attempt == 0 {
                    _ = try await backend.send(ByteBuffer(string: "1"), to: names[3])
                } else {
                    try await backend.updateSettings(QueueSettings(), of: names[3])
                }
            }
            #expect(error?.kind == .tooManyQueues)
            #expect(error?.message.contains("MAX_QUEUES") == true)
        }
        // A redrive with nothing to move creates nothing.
        #expect(try await backend.redrive(into: names[3], max: 10) == 0)
        #expect(try await backend.queues().map(\.name) == Array(names.prefix(3)))
        // Existing queues go on as before.
        _ = try await backend.send(ByteBuffer(string: "2"), to: names[0])
        #expect(try await backend.stats(of: names[0]).ready == 2)

        // A dead letter is never dropped for want of a place: its queue is created past the limit.
        _ = try await backend.send(ByteBuffer(string: "poison"), to: names[2])
        let delivery = try #require(
            try await backend.receive(from: names[2], max: 1, timeout: .zero, mode: .acknowledge(visibilityTimeout: .seconds(30))).first)
        #expect(try await backend.reject(delivery.receipt, in: names[2], delay: .zero, reason: "no"))
        #expect(try await backend.stats(of: names[2]).deadLetterReady == 1)

        // The dead-letter queue counts (four queues now): deleting one is not room enough, two are.
        // (On a cluster it is counted from the next maintenance round.)
        if kind == .redisCluster { await (backend as? RedisQueueBackend)?.maintain() }
        try await backend.delete(names[1])
        await #expect(throws: QueueError.self) { _ = try await backend.send(ByteBuffer(string: "1"), to: names[3]) }
        try await backend.delete(names[0])
        _ = try await backend.send(ByteBuffer(string: "1"), to: names[3])
    }

    @Test(arguments: BackendKind.available)
    func everyQueueIsListedAcrossPages(kind: BackendKind) async throws {
        let (backend, close) = try backend(kind, maximumQueues: 1000)
        defer { close() }
        let names = (0..<250).map { QueueName("page-\($0)")! }
        for name in names { try await backend.updateSettings(QueueSettings(), of: name) }
        _ = try await backend.send(ByteBuffer(string: "1"), to: names[17])
        let listed = try await backend.queues()
        #expect(listed.map(\.name) == names.sorted())
        #expect(listed.first { $0.name == names[17] }?.ready == 1)
    }

    /// Each partition counts as a queue: a partition count past the limit is refused naming the
    /// queue (never a partition), and the partitions the refused change had created are gone.
    @Test(arguments: BackendKind.available)
    func partitionsPastTheLimitAreRefusedNamingTheQueueAndLeaveNothingBehind(kind: BackendKind) async throws {
        let (backend, close) = try backend(kind, maximumQueues: 4)
        defer { close() }
        let queues = PartitionedQueues(backend)
        let (hot, other, fresh) = (QueueName("hot")!, QueueName("other")!, QueueName("fresh")!)
        _ = try await queues.send(ByteBuffer(string: "1"), to: other)
        _ = try await queues.send(ByteBuffer(string: "m"), to: hot)

        let error = await #expect(throws: QueueError.self) { try await queues.updateSettings(QueueSettings(partitions: 5), of: hot) }
        #expect(error?.kind == .tooManyQueues)
        #expect(error?.message.hasPrefix("queue hot cannot have 5 partitions") == true)
        #expect(error?.message.contains("~") == false)
        #expect(try await queues.settings(of: hot).partitions == 1)
        #expect(try await backend.queues().map(\.name) == [hot, other])
        #expect(try await queues.stats(of: hot).ready == 1)

        // What fits is allowed: hot, hot~1, hot~2 and other are the four.
        try await queues.updateSettings(QueueSettings(partitions: 3), of: hot)
        #expect(try await backend.queues().map(\.name) == [hot, hot.partition(1), hot.partition(2), other])

        // A new queue whose partitions do not all fit: its first partition was made before the
        // queue itself met the limit, and is gone again.
        try await queues.delete(other)
        if kind == .redisCluster { await (backend as? RedisQueueBackend)?.maintain() }
        let refused = await #expect(throws: QueueError.self) { try await queues.updateSettings(QueueSettings(partitions: 2), of: fresh) }
        #expect(refused?.message.hasPrefix("queue fresh cannot have 2 partitions") == true)
        #expect(try await backend.queues().map(\.name) == [hot, hot.partition(1), hot.partition(2)])
        #expect(try await queues.stats(of: hot).ready == 1)
    }
}
