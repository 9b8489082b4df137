import Logging
import NIOCore
import SkiffQueue
import SkiffRedisQueue
import SkiffTestSupport
import Synchronization
import Testing

/// Partitioned queues (issue 18 item 3) on every backend: one logical queue over N partitions,
/// with the same guarantees as a queue of one.
@Suite("Partitioned queues", .timeLimit(.minutes(3)))
struct PartitionedQueueTests {
    private static let logger = Logger(label: "partitions")

    private func context() -> DeliveryContext { DeliveryContext(logger: Self.logger) }

    /// A partitioned queue of `partitions` on `kind`, with the settings `configure` gives.
    private func queue(
        _ kind: BackendKind, partitions: Int, _ configure: (inout QueueSettings) -> Void = { _ in }
    ) async throws -> (PartitionedQueues, QueueName, BackendFixture) {
        let fixture = try await BackendFixture.make(kind)
        let queues = PartitionedQueues(fixture.backend)
        let name = uniqueQueue("part")
        var settings = QueueSettings(partitions: partitions)
        configure(&settings)
        try await queues.updateSettings(settings, of: name)
        return (queues, name, fixture)
    }

    private func acknowledged(_ queues: PartitionedQueues, _ name: QueueName, max: Int = 1, timeout: Duration = .zero) async throws -> DeliveryLease? {
        try await queues.deliver(
            DeliveryRequest(queue: name, max: max, timeout: timeout, mode: .acknowledge(visibilityTimeout: .seconds(30))), context: context())
    }

    @Test(arguments: BackendKind.available)
    func sendsSpreadOverThePartitionsAndEachMessageIsDeliveredOnce(kind: BackendKind) async throws {
        let (queues, name, fixture) = try await queue(kind, partitions: 3)
        defer { fixture.close() }
        for index in 0..<30 { _ = try await queues.send(ByteBuffer(string: "m\(index)"), to: name) }
        // Ten each, in turn.
        for index in 0..<3 { #expect(try await fixture.backend.stats(of: name.partition(index)).ready == 10) }
        #expect(try await queues.stats(of: name).ready == 30)
        #expect(try await queues.stats(of: name).totals.enqueued == 30)

        // Four consumers at once, acking each message: every message once, none left.
        let received = LockedBox<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    while let lease = try await acknowledged(queues, name) {
                        await lease.delivered()
                        for delivery in lease.deliveries {
                            #expect(try await queues.acknowledge([delivery.receipt], in: name) == [true])
                            received.value.withLock { $0.append(String(buffer: delivery.message.body)) }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let bodies = received.value.withLock { $0 }
        #expect(bodies.count == 30)
        #expect(Set(bodies) == Set((0..<30).map { "m\($0)" }))
        let stats = try await queues.stats(of: name)
        #expect(stats.ready == 0 && stats.inFlight == 0)
        #expect(stats.totals.acknowledged == 30)
    }

    @Test(arguments: BackendKind.available)
    func fifoHoldsWithinAPartition(kind: BackendKind) async throws {
        let (queues, name, fixture) = try await queue(kind, partitions: 4)
        defer { fixture.close() }
        // Sends go to the partitions in turn, so message i is in partition i % 4.
        for index in 0..<12 {
            _ = try await queues.send([ByteBuffer(string: "\(index % 4)-\(index)")], to: name, options: SendOptions())
        }
        var seen: [String: [Int]] = [:]
        while let lease = try await queues.deliver(DeliveryRequest(queue: name), context: context()) {
            await lease.delivered()
            let parts = String(buffer: lease.deliveries[0].message.body).split(separator: "-")
            seen[String(parts[0]), default: []].append(Int(parts[1])!)
        }
        #expect(seen.values.map(\.count).reduce(0, +) == 12)
        for order in seen.values { #expect(order == order.sorted()) }
    }

    @Test(arguments: BackendKind.available)
    func aRetriedSendWithItsKeyFindsItsFirstAttempt(kind: BackendKind) async throws {
        let (queues, name, fixture) = try await queue(kind, partitions: 5)
        defer { fixture.close() }
        for key in ["a", "b", "c", "order-17", "order-18"] {
            let first = try await queues.send([ByteBuffer(string: key)], to: name, options: SendOptions(idempotencyKey: key))
            let again = try await queues.send([ByteBuffer(string: key)], to: name, options: SendOptions(idempotencyKey: key))
            #expect(first[0].queue == name && !first[0].isDuplicate)
            #expect(again[0].id == first[0].id && again[0].isDuplicate)
        }
        #expect(try await queues.stats(of: name).ready == 5)
    }

    @Test(arguments: BackendKind.available)
    func receiptsNameTheirPartitionAndSettleThere(kind: BackendKind) async throws {
        let (queues, name, fixture) = try await queue(kind, partitions: 3)
        defer { fixture.close() }
        for index in 0..<3 { _ = try await queues.send(ByteBuffer(string: "m\(index)"), to: name) }
        var receipts: [Receipt] = []
        for _ in 0..<3 {
            let lease = try #require(try await acknowledged(queues, name))
            await lease.delivered()
            receipts.append(lease.deliveries[0].receipt)
            #expect(lease.queue == name)
        }
        #expect(Set(receipts.map(\.partition)) == [0, 1, 2])
        for receipt in receipts {
            // The text form carries the partition, and parses back to the same receipt.
            #expect(Receipt(receipt.description) == receipt)
            #expect(receipt.description.contains("~") == (receipt.partition != 0))
        }
        // The same message id and token in another partition is not this claim.
        let moved = receipts.first { $0.partition == 1 }!
        let elsewhere = Receipt(messageID: moved.messageID, claimToken: moved.claimToken, partition: 2)
        #expect(try await queues.acknowledge([elsewhere], in: name) == [false])
        let beyond = Receipt(messageID: moved.messageID, claimToken: moved.claimToken, partition: 9)
        #expect(try await queues.reject(beyond, in: name, delay: .zero, reason: nil) == false)
        // Extend one, nack one (back at once), ack one.
        #expect(try await queues.changeVisibility(receipts[0], in: name, timeout: .seconds(60)))
        #expect(try await queues.reject(receipts[1], in: name, delay: .zero, reason: "later"))
        #expect(try await queues.acknowledge([receipts[2]], in: name) == [true])
        let again = try #require(try await acknowledged(queues, name))
        #expect(again.deliveries[0].message.receiveCount == 2)
        #expect(again.deliveries[0].receipt.partition == receipts[1].partition)
        let stats = try await queues.stats(of: name)
        #expect(stats.inFlight == 2 && stats.ready == 0 && stats.totals.acknowledged == 1 && stats.totals.retried == 1)
    }

    @Test(arguments: BackendKind.available)
    func deadLettersStayInTheirPartitionAndRedriveBack(kind: BackendKind) async throws {
        let (queues, name, fixture) = try await queue(kind, partitions: 3) { $0.maxReceiveCount = 1 }
        defer { fixture.close() }
        let deadLetters = QueueSettings().deadLetterQueue(of: name)
        // The dead-letter queue has as many partitions, so that it is read whole.
        #expect(try await queues.settings(of: deadLetters).partitions == 3)
        for index in 0..<6 { _ = try await queues.send(ByteBuffer(string: "m\(index)"), to: name) }
        while let lease = try await acknowledged(queues, name) {
            await lease.delivered()
            #expect(try await queues.reject(lease.deliveries[0].receipt, in: name, delay: .zero, reason: "bad"))
        }
        var stats = try await queues.stats(of: name)
        #expect(stats.deadLetterReady == 6 && stats.totals.deadLettered == 6 && stats.ready == 0)
        for index in 0..<3 { #expect(try await fixture.backend.stats(of: deadLetters.partition(index)).ready == 2) }
        // Read from the dead-letter queue through the API's view: its history names the queue.
        let peek = try #require(try await acknowledged(queues, deadLetters))
        await peek.delivered()
        #expect(peek.deliveries[0].message.deadLetter?.sourceQueue.logical == name)
        #expect(try await queues.reject(peek.deliveries[0].receipt, in: deadLetters, delay: .zero, reason: nil))

        #expect(try await queues.redrive(into: name, max: 100) == 6)
        stats = try await queues.stats(of: name)
        #expect(stats.ready == 6 && stats.deadLetterReady == 0)
    }

    @Test(arguments: BackendKind.available)
    func growingKeepsEveryMessageAndShrinkingIsRefused(kind: BackendKind) async throws {
        let (queues, name, fixture) = try await queue(kind, partitions: 1)
        defer { fixture.close() }
        for index in 0..<4 { _ = try await queues.send(ByteBuffer(string: "before-\(index)"), to: name) }
        try await queues.updateSettings(QueueSettings(partitions: 4), of: name)
        for index in 0..<8 { _ = try await queues.send(ByteBuffer(string: "after-\(index)"), to: name) }
        #expect(try await queues.stats(of: name).ready == 12)

        let error = await #expect(throws: QueueError.self) { try await queues.updateSettings(QueueSettings(partitions: 2), of: name) }
        #expect(error?.kind == .conflict)
        // The backend itself refuses it too, where the count is stored: a change that read the
        // count before a concurrent growth cannot lower it.
        let stale = await #expect(throws: QueueError.self) { try await fixture.backend.updateSettings(QueueSettings(partitions: 1), of: name) }
        #expect(stale?.kind == .conflict)
        #expect(stale?.message.contains("4 partitions") == true)
        #expect(try await queues.settings(of: name).partitions == 4)

        var bodies: [String] = []
        while let lease = try await queues.deliver(DeliveryRequest(queue: name, max: 5), context: context()) {
            await lease.delivered()
            bodies += lease.deliveries.map { String(buffer: $0.message.body) }
        }
        #expect(bodies.count == 12 && Set(bodies).count == 12)
        // The queue list shows the queue once, never its partitions.
        let listed = try await queues.queues().filter { $0.name.logical == name }
        #expect(listed.map(\.name) == [name])
    }

    @Test(arguments: BackendKind.available)
    func aLongPollWakesForAMessageInAnyPartition(kind: BackendKind) async throws {
        let (queues, name, fixture) = try await queue(kind, partitions: 3)
        defer { fixture.close() }
        // Two keys for each partition, so that a message arrives in every one of them.
        let keys = (0..<3).flatMap { partition in
            (0..<100).map { "k\($0)" }.filter { PartitionedQueues.partition(ofKey: $0, count: 3) == partition }.prefix(2)
        }
        #expect(keys.count == 6)
        for key in keys {
            // Every partition is known empty first, then each gets a message while one consumer waits.
            #expect(try await queues.deliver(DeliveryRequest(queue: name), context: context()) == nil)
            async let waited = queues.deliver(DeliveryRequest(queue: name, timeout: .seconds(20)), context: context())
            try await Task.sleep(for: .milliseconds(100))
            _ = try await queues.send([ByteBuffer(string: key)], to: name, options: SendOptions(idempotencyKey: key))
            let lease = try #require(try await waited)
            await lease.delivered()
            #expect(String(buffer: lease.deliveries[0].message.body) == key)
        }
        let stats = try await queues.stats(of: name)
        #expect(stats.ready == 0 && stats.inFlight == 0 && stats.totals.acknowledged == 6)
    }

    /// The sweeps find partitions too: a delayed message becomes ready, and one whose visibility
    /// timeout passed unacked comes back, each in its partition.
    @Test(arguments: BackendKind.available)
    func delayedAndUnackedMessagesOfAPartitionComeBack(kind: BackendKind) async throws {
        let (queues, name, fixture) = try await queue(kind, partitions: 3)
        defer { fixture.close() }
        for index in 0..<3 {
            _ = try await queues.send([ByteBuffer(string: "later-\(index)")], to: name, options: SendOptions(delay: .milliseconds(300)))
        }
        let stored = try await queues.stats(of: name)
        #expect(stored.delayed + stored.ready == 3)
        // Each becomes ready in its partition and is received (a slow run may see one twice).
        var firstPartitions: [String: Int] = [:]
        while firstPartitions.count < 3 {
            let lease = try #require(
                try await queues.deliver(
                    DeliveryRequest(queue: name, timeout: .seconds(20), mode: .acknowledge(visibilityTimeout: .milliseconds(300))),
                    context: context()))
            await lease.delivered()
            firstPartitions[String(buffer: lease.deliveries[0].message.body)] = lease.deliveries[0].receipt.partition
        }
        #expect(Set(firstPartitions.values) == [0, 1, 2])
        // Nobody acked: each comes back after its visibility timeout, in its partition.
        var acked: Set<String> = []
        while acked.count < 3 {
            let lease = try #require(try await acknowledged(queues, name, timeout: .seconds(20)))
            await lease.delivered()
            let delivery = lease.deliveries[0]
            let body = String(buffer: delivery.message.body)
            #expect(delivery.message.receiveCount >= 2)
            #expect(delivery.receipt.partition == firstPartitions[body])
            #expect(try await queues.acknowledge([delivery.receipt], in: name) == [true])
            acked.insert(body)
        }
        let stats = try await queues.stats(of: name)
        #expect(stats.ready == 0 && stats.inFlight == 0 && stats.delayed == 0 && stats.totals.acknowledged == 3)
    }

    @Test(arguments: BackendKind.available)
    func aFullPartitionPassesTheSendOnAndAllFullIsRefused(kind: BackendKind) async throws {
        let (queues, name, fixture) = try await queue(kind, partitions: 2) { $0.maxDepth = 2 }
        defer { fixture.close() }
        for index in 0..<4 { _ = try await queues.send(ByteBuffer(string: "m\(index)"), to: name) }
        let error = await #expect(throws: QueueError.self) { _ = try await queues.send(ByteBuffer(string: "over"), to: name) }
        #expect(error?.kind == .queueFull)
        #expect(error?.message.contains("each of its 2 partitions") == true)
        #expect(try await queues.stats(of: name).ready == 4)
        // Room in one partition is found whichever partition is next in turn.
        let taken = try #require(try await queues.deliver(DeliveryRequest(queue: name), context: context()))
        await taken.delivered()
        for _ in 0..<2 { _ = try? await queues.send(ByteBuffer(string: "again"), to: name) }
        #expect(try await queues.stats(of: name).ready == 4)
    }

    @Test(arguments: BackendKind.available)
    func purgeAndDeleteCoverEveryPartition(kind: BackendKind) async throws {
        let (queues, name, fixture) = try await queue(kind, partitions: 3)
        defer { fixture.close() }
        for index in 0..<9 { _ = try await queues.send(ByteBuffer(string: "m\(index)"), to: name) }
        #expect(try await queues.purge(name) == 9)
        for index in 0..<6 { _ = try await queues.send(ByteBuffer(string: "m\(index)"), to: name) }
        #expect(try await queues.delete(name))
        for index in 0..<3 { #expect(try await fixture.backend.stats(of: name.partition(index)).ready == 0) }
        #expect(try await queues.settings(of: name).partitions == 1)
    }
}

/// Names and receipts of partitions: no request can name a partition, and a receipt's partition
/// survives its text form.
@Suite("Partition names")
struct PartitionNameTests {
    @Test func partitionNamesAreOutsideWhatARequestCanName() throws {
        let queue = QueueName("orders")!
        #expect(queue.partition(0) == queue)
        #expect(queue.partition(7).rawValue == "orders~7")
        #expect(queue.partition(7).logical == queue && queue.partition(7).partitionIndex == 7)
        #expect(QueueName("orders~7") == nil)
        #expect(QueueName(stored: "orders~7") == queue.partition(7))
        for bad in ["orders~0", "orders~64", "orders~07", "orders~", "~3", "orders~1~2", "or{x}~1"] { #expect(QueueName(stored: bad) == nil, "\(bad)") }
        // A partition's default dead-letter queue is that partition of the queue's.
        #expect(QueueSettings().deadLetterQueue(of: queue.partition(3)) == QueueName("orders-dlq")!.partition(3))
        #expect(QueueSettings(deadLetterQueue: QueueName("orders-failed")!).deadLetterQueue(of: queue.partition(3)).rawValue == "orders-failed~3")
    }

    @Test func receiptsCarryTheirPartition() {
        #expect(Receipt("01ABC.5") == Receipt(messageID: "01ABC", claimToken: 5))
        #expect(Receipt("01ABC~3.5") == Receipt(messageID: "01ABC", claimToken: 5, partition: 3))
        #expect(Receipt(messageID: "01ABC", claimToken: 5, partition: 3).description == "01ABC~3.5")
        for bad in ["01ABC~0.5", "01ABC~64.5", "01ABC~03.5", "01ABC~.5", "01ABC~x.5", "~3.5"] { #expect(Receipt(bad) == nil, "\(bad)") }
    }

    @Test func anIdempotencyKeyAlwaysGoesToOnePartition() {
        // Pinned (below, and by the value of "a"): replicas and versions must agree, or a retry
        // could land in another partition.
        #expect((0..<64).map { PartitionedQueues.partition(ofKey: "key-\($0)", count: 4) }.reduce(into: Set<Int>()) { $0.insert($1) } == [0, 1, 2, 3])
        // FNV-1a of "a" is 0xaf63dc4c8601ec8c = 12 638 187 200 555 641 996.
        #expect(PartitionedQueues.partition(ofKey: "a", count: 1000) == 996)
    }
}
