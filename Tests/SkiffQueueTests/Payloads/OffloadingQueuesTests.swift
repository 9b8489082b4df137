import Foundation
import Logging
import NIOCore
import SkiffTestSupport
import Synchronization
import Testing

@testable import SkiffQueue

/// Large bodies in the payload store (issue 23) over every backend: byte-exact round trips, and
/// the rules on what happens to objects and messages when something fails.
@Suite("Offloaded message bodies", .timeLimit(.minutes(5)))
struct OffloadingQueuesTests {
    static let logger = Logger(label: "offload")
    static let threshold = 256 * 1024

    /// The backend of `kind` under ``OffloadingQueues`` with a filesystem store in a fresh
    /// directory, which `body` can break at will.
    func withQueues<T>(
        _ kind: BackendKind,
        maximumHeldBytes: Int = PayloadOffload.defaultMaximumHeldBytes,
        _ body: (OffloadingQueues, FaultyStore, BackendFixture) async throws -> T
    ) async throws -> T {
        let directory = NSTemporaryDirectory() + TestEnvironment.uniqueName("skiff-offload")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = FaultyStore(try FileSystemPayloadStore(root: directory))
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let queues = OffloadingQueues(
            PartitionedQueues(fixture.backend),
            offload: PayloadOffload(store: store, thresholdBytes: Self.threshold, maximumBodyBytes: 32 << 20, maximumHeldBytes: maximumHeldBytes),
            logger: Self.logger
        )
        return try await body(queues, store, fixture)
    }

    func acknowledged(_ queues: OffloadingQueues, _ queue: QueueName, max: Int = 1, maxBytes: Int? = nil) async throws -> DeliveryLease? {
        try await queues.deliver(
            DeliveryRequest(queue: queue, max: max, maxBytes: maxBytes, mode: .acknowledge(visibilityTimeout: .seconds(30))),
            context: DeliveryContext(logger: Self.logger)
        )
    }

    /// A JSON string of exactly `size` bytes, different for each `seed`: a 64 KiB block of
    /// letters, repeated with a rotation per repeat (cheap to make, even at 32 MiB in a debug build).
    static func body(_ size: Int, seed: UInt8 = 0) -> ByteBuffer {
        let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var state = UInt64(seed) &+ 0x9E37_79B9_7F4A_7C15
        let block: [UInt8] = (0..<65_536).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return letters[Int(state >> 59) % letters.count]
        }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(size)
        buffer.writeInteger(UInt8(ascii: "\""))
        var left = size - 2
        var turn = 0
        while left > 0 {
            let rotation = (turn * 7_919) % block.count
            let take = min(left, block.count - rotation)
            buffer.writeBytes(block[rotation..<(rotation + take)])
            left -= take
            turn += 1
        }
        buffer.writeInteger(UInt8(ascii: "\""))
        return buffer
    }

    @Test(arguments: BackendKind.available, [256 * 1024 + 1, 1 << 20, 10 << 20, 32 << 20])
    func aLargeBodyComesBackByteExactAndItsObjectGoesWithItsAck(kind: BackendKind, size: Int) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("large")
            let body = Self.body(size, seed: UInt8(size & 0xFF))
            let sent = try await queues.send(body, to: queue)
            #expect(MessageID.isOffloaded(sent.id))
            #expect(try await store.objects() == ["m/\(sent.id)"])
            let lease = try #require(try await acknowledged(queues, queue))
            #expect(lease.deliveries[0].message.id == sent.id)
            #expect(lease.deliveries[0].message.body == body)
            await lease.delivered()
            // Acknowledged mode: written is not deleted; the object stays until the ack.
            #expect(try await store.objects() == ["m/\(sent.id)"])
            #expect(try await queues.acknowledge([lease.deliveries[0].receipt], in: queue) == [true])
            // Deleted in the background, after the message.
            try await eventually { try await store.objects().isEmpty }
            #expect(try await queues.stats(of: queue).ready == 0)
        }
    }

    @Test(arguments: BackendKind.available)
    func aPlainGetDeletesTheObjectAfterTheMessage(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("auto")
            let body = Self.body(300_000)
            let sent = try await queues.send(body, to: queue)
            let lease = try #require(try await queues.deliver(DeliveryRequest(queue: queue), context: DeliveryContext(logger: Self.logger)))
            #expect(lease.deliveries[0].message.body == body)
            #expect(try await store.objects() == ["m/\(sent.id)"])
            #expect(await lease.delivered() == 1)
            // Deleted in the background, after the message.
            try await eventually { try await store.objects().isEmpty }
        }
    }

    @Test(arguments: BackendKind.available)
    func aBodyAtTheThresholdStaysInTheQueue(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("small")
            let sent = try await queues.send([Self.body(Self.threshold), Self.body(10)], to: queue, options: SendOptions())
            #expect(sent.allSatisfy { !MessageID.isOffloaded($0.id) })
            #expect(try await store.objects().isEmpty)
            let lease = try #require(try await acknowledged(queues, queue, max: 2))
            #expect(lease.deliveries.map(\.message.body) == [Self.body(Self.threshold), Self.body(10)])
        }
    }

    @Test(arguments: BackendKind.available)
    func aBatchMixesBothKindsInOrder(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("mixed")
            let bodies = [Self.body(10), Self.body(400_000, seed: 1), Self.body(20), Self.body(300_000, seed: 2)]
            let sent = try await queues.send(bodies, to: queue, options: SendOptions())
            #expect(sent.map { MessageID.isOffloaded($0.id) } == [false, true, false, true])
            #expect(try await store.objects().count == 2)
            let lease = try #require(try await acknowledged(queues, queue, max: 10))
            #expect(lease.deliveries.map(\.message.body) == bodies)
            #expect(lease.deliveries.map(\.message.id) == sent.map(\.id))
            let acked = try await queues.acknowledge(lease.deliveries.map(\.receipt), in: queue)
            #expect(acked == [true, true, true, true])
            // Deleted in the background, after the message.
            try await eventually { try await store.objects().isEmpty }
        }
    }

    @Test(arguments: BackendKind.available)
    func aBatchStopsAtItsByteLimitCountingTheBodiesReadBack(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, _, _ in
            let queue = uniqueQueue("limit")
            let bodies = (0..<3).map { Self.body(300_000, seed: UInt8($0)) }
            for body in bodies { _ = try await queues.send(body, to: queue) }
            // The pointers are small: the claim takes all three; the bodies are not.
            let first = try #require(try await acknowledged(queues, queue, max: 10, maxBytes: 700_000))
            #expect(first.deliveries.map(\.message.body) == Array(bodies[0..<2]))
            #expect(first.stoppedAtByteLimit)
            // The third went back at once, its receive taken back.
            let second = try #require(try await acknowledged(queues, queue, max: 10, maxBytes: 700_000))
            #expect(second.deliveries.map(\.message.body) == [bodies[2]])
            #expect(second.deliveries[0].message.receiveCount == 1)
        }
    }

    @Test(arguments: BackendKind.available)
    func aCorruptedObjectIsUnreadableAndTheMessageIsNackedNotLost(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("corrupt")
            try await queues.updateSettings(QueueSettings(maxReceiveCount: 2, retryBackoffBaseMilliseconds: 0, retryBackoffCapMilliseconds: 0), of: queue)
            let body = Self.body(300_000)
            let sent = try await queues.send(body, to: queue)
            // Same size, other bytes: only the hash can tell.
            try await store.overwrite(try PayloadOffload.key(of: sent.id), with: Self.body(300_000, seed: 9))
            for attempt in 1...2 {
                await #expect {
                    _ = try await acknowledged(queues, queue)
                } throws: { ($0 as? QueueError)?.kind == .payloadUnreadable }
                // Nacked with the reason, counted: it comes back after the retry backoff (none
                // here) and, past maxReceiveCount, goes to the dead-letter queue.
                let stats = try await queues.stats(of: queue)
                #expect(stats.ready + stats.delayed + stats.deadLetterReady == 1, "attempt \(attempt)")
            }
            let stats = try await queues.stats(of: queue)
            #expect(stats.deadLetterReady == 1)
            // Dead-lettering keeps the object, for whoever restores it; a peek shows the message,
            // and the others beside it, and says what is wrong with its body.
            #expect(try await store.objects() == ["m/\(sent.id)"])
            let deadLetterQueue = QueueSettings().deadLetterQueue(of: queue)
            _ = try await queues.send(ByteBuffer(string: #""beside""#), to: deadLetterQueue)
            let peeked = try await queues.peek(deadLetterQueue, limit: 5, maximumBytes: 1 << 20)
            #expect(peeked.map(\.id).first == sent.id && peeked.count == 2)
            #expect(peeked.first?.body.readableBytes == 0)
            #expect(peeked.first?.unreadableBody?.contains("not what was stored") == true)
            #expect(peeked.last.map { String(buffer: $0.body) } == #""beside""# && peeked.last?.unreadableBody == nil)
            // Restored, it is whole again: in a peek (whose store must answer: 503 when it
            // does not, rather than a message shown without its body) and in a receive.
            try await store.overwrite(try PayloadOffload.key(of: sent.id), with: body)
            #expect(try await queues.redrive(into: queue, max: 1) == 1)
            store.failGets(true)
            await #expect {
                _ = try await queues.peek(queue, limit: 1, maximumBytes: 1 << 20)
            } throws: { ($0 as? QueueError)?.kind == .unavailable }
            store.failGets(false)
            #expect(try await queues.peek(queue, limit: 1, maximumBytes: 1 << 20).first?.body == body)
            #expect(try await acknowledged(queues, queue)?.deliveries[0].message.body == body)
        }
    }

    @Test(arguments: BackendKind.available)
    func aMissingObjectIsUnreadable(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("missing")
            let sent = try await queues.send(Self.body(300_000), to: queue)
            try await store.inner.delete(key: try PayloadOffload.key(of: sent.id))
            await #expect {
                _ = try await acknowledged(queues, queue)
            } throws: { ($0 as? QueueError)?.kind == .payloadUnreadable }
            // Nacked: back after the retry backoff, receive counted.
            let stats = try await queues.stats(of: queue)
            #expect(stats.ready + stats.delayed == 1)
        }
    }

    @Test(arguments: BackendKind.available)
    func aStoreThatFailsMidUploadStoresNothing(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("upload")
            // The second body's upload fails after its first chunk: the first body's object goes too.
            store.failPuts(after: 1)
            await #expect {
                _ = try await queues.send([Self.body(300_000), Self.body(3 << 20, seed: 1)], to: queue, options: SendOptions())
            } throws: { ($0 as? QueueError)?.kind == .unavailable }
            let ready = try await queues.stats(of: queue).ready
            #expect(ready == 0)
            #expect(try await store.objects().isEmpty)
        }
    }

    /// What a write's failure becomes: an unreachable store is a 503 to retry, too large a 413, a
    /// body shorter or longer than announced a 400, anything else the server's fault (500), never
    /// an unreadable payload (502), which is about a body read back.
    @Test func aFailedWriteIsNeverAnUnreadablePayload() {
        func kind(_ error: PayloadStoreError) -> QueueError.Kind? { (OffloadingQueues.writeError(error) as? QueueError)?.kind }
        #expect(kind(.unavailable("down")) == .unavailable)
        #expect(kind(.tooLarge("big")) == .tooLarge)
        #expect(kind(.sizeMismatch("short")) == .invalidArgument)
        #expect(kind(.notFound("no bucket")) == .internalError)
        #expect(kind(.corrupted("odd")) == .internalError)
        #expect(kind(.invalidKey("bad")) == .internalError)
        struct Other: Error {}
        #expect(OffloadingQueues.writeError(Other()) is Other)
    }

    @Test(arguments: BackendKind.available)
    func anUnreachableStoreOnReceiveGivesTheMessageBackAtOnce(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("outage")
            let body = Self.body(300_000)
            _ = try await queues.send(body, to: queue)
            store.failGets(true)
            await #expect {
                _ = try await acknowledged(queues, queue)
            } throws: { ($0 as? QueueError)?.kind == .unavailable }
            store.failGets(false)
            // Back at the head, receive taken back: not after its visibility timeout.
            let lease = try #require(try await acknowledged(queues, queue))
            #expect(lease.deliveries[0].message.body == body)
            #expect(lease.deliveries[0].message.receiveCount == 1)
        }
    }

    @Test(arguments: BackendKind.available)
    func aSendTheQueueRefusesLeavesNoObject(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("full")
            try await queues.updateSettings(QueueSettings(maxDepth: 1), of: queue)
            let kept = try await queues.send(Self.body(300_000), to: queue)
            await #expect {
                _ = try await queues.send(Self.body(300_000, seed: 1), to: queue)
            } throws: { ($0 as? QueueError)?.kind == .queueFull }
            #expect(try await store.objects() == ["m/\(kept.id)"])
        }
    }

    @Test(arguments: BackendKind.available)
    func aRepeatedIdempotentSendLeavesOneObject(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("repeat")
            let options = SendOptions(idempotencyKey: "once")
            let first = try await queues.send(Self.body(300_000), to: queue, options: options)
            let again = try await queues.send(Self.body(300_000), to: queue, options: options)
            #expect(again.isDuplicate && again.id == first.id)
            #expect(try await store.objects() == ["m/\(first.id)"])
        }
    }

    @Test(arguments: BackendKind.available)
    func nacksDeadLettersAndRedrivesKeepTheObject(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("dlq")
            try await queues.updateSettings(QueueSettings(maxReceiveCount: 1), of: queue)
            let body = Self.body(500_000)
            let sent = try await queues.send(body, to: queue)
            let lease = try #require(try await acknowledged(queues, queue))
            #expect(try await queues.reject(lease.deliveries[0].receipt, in: queue, delay: .zero, reason: "boom"))
            #expect(try await queues.stats(of: queue).deadLetterReady == 1)
            #expect(try await store.objects() == ["m/\(sent.id)"])
            let deadLetterQueue = QueueSettings().deadLetterQueue(of: queue)
            #expect(try await queues.peek(deadLetterQueue, limit: 5, maximumBytes: 1 << 20).map(\.body) == [body])
            #expect(try await queues.redrive(into: queue, max: 10) == 1)
            let again = try #require(try await acknowledged(queues, queue))
            #expect(again.deliveries[0].message.id == sent.id)
            #expect(again.deliveries[0].message.body == body)
            #expect(try await queues.acknowledge([again.deliveries[0].receipt], in: queue) == [true])
            // Deleted in the background, after the message.
            try await eventually { try await store.objects().isEmpty }
        }
    }

    @Test(arguments: BackendKind.available)
    func aReplicaWithoutAStoreNeverHandsOutAPointer(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, _, _ in
            let queue = uniqueQueue("nostore")
            _ = try await queues.send(Self.body(300_000), to: queue)
            let bare = OffloadingQueues(queues.inner, offload: nil, logger: Self.logger)
            await #expect {
                _ = try await bare.deliver(DeliveryRequest(queue: queue), context: DeliveryContext(logger: Self.logger))
            } throws: { ($0 as? QueueError)?.kind == .payloadUnreadable }
        }
    }

    @Test(arguments: BackendKind.available)
    func aBodyLargerThanTheReaderTakesIsDeadLetteredNotLeftAtTheHead(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("smaller")
            try await queues.updateSettings(QueueSettings(maxReceiveCount: 1), of: queue)
            _ = try await queues.send(Self.body(300_000), to: queue)
            _ = try await queues.send(ByteBuffer(string: "behind"), to: queue)
            // A replica configured for smaller bodies (a lowered PAYLOADS_MAX_MESSAGE_BYTES).
            let smaller = OffloadingQueues(
                queues.inner, offload: PayloadOffload(store: store, thresholdBytes: Self.threshold, maximumBodyBytes: 100_000), logger: Self.logger)
            await #expect {
                _ = try await acknowledged(smaller, queue)
            } throws: { ($0 as? QueueError)?.kind == .payloadUnreadable }
            // Dead-lettered (maxReceiveCount 1): the message behind it is next.
            let next = try #require(try await acknowledged(smaller, queue))
            #expect(next.deliveries[0].message.body == ByteBuffer(string: "behind"))
            #expect(try await queues.stats(of: queue).deadLetterReady == 1)
        }
    }

    private func linked(_ queues: OffloadingQueues, _ queue: QueueName, mode: ReceiveMode, max: Int = 1) async throws -> DeliveryLease? {
        try await queues.deliver(
            DeliveryRequest(queue: queue, max: max, mode: mode, signedPayloadURLs: true), context: DeliveryContext(logger: Self.logger))
    }

    /// `payload=url`: an acknowledged delivery of an offloaded message carries a link valid for its
    /// visibility timeout and nothing is read; other messages, and auto-acknowledged deliveries
    /// (whose object goes with the message), come with their bytes.
    @Test(arguments: BackendKind.available)
    func linksReplaceOffloadedBodiesWithoutReadingThem(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("links")
            let large = Self.body(300_000)
            _ = try await queues.send([ByteBuffer(string: "1"), large], to: queue, options: SendOptions())
            let before = MessageID.currentMilliseconds()
            let lease = try #require(try await linked(queues, queue, mode: .acknowledge(visibilityTimeout: .seconds(40)), max: 2))
            #expect(lease.deliveries.count == 2 && store.readCount == 0)
            #expect(lease.deliveries[0].message.body == ByteBuffer(string: "1") && lease.deliveries[0].message.payloadLink == nil)
            let link = try #require(lease.deliveries[1].message.payloadLink)
            #expect(lease.deliveries[1].message.body.readableBytes == 0)
            var digest = PayloadDigest()
            digest.update(large)
            #expect(link.size == large.readableBytes && link.sha256 == digest.hexDigest())
            #expect(link.url.hasPrefix("test:m/\(lease.deliveries[1].message.id)?expires="))
            #expect((before + 39_000...MessageID.currentMilliseconds() + 40_000).contains(link.expiresAtMilliseconds))
            #expect(try await queues.acknowledge(lease.deliveries.map(\.receipt), in: queue) == [true, true])
            // Auto-acknowledged: the bytes, read back.
            _ = try await queues.send(large, to: queue)
            let plain = try #require(try await linked(queues, queue, mode: .autoAcknowledge))
            #expect(plain.deliveries[0].message.body == large && plain.deliveries[0].message.payloadLink == nil && store.readCount == 1)
            await plain.delivered()
        }
    }

    @Test(arguments: BackendKind.available)
    func aSigningFailureGivesTheMessagesBackAtOnce(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("link-outage")
            for seed in 0..<2 { _ = try await queues.send(Self.body(300_000, seed: UInt8(seed)), to: queue) }
            store.failSigns(true)
            await #expect {
                _ = try await linked(queues, queue, mode: .acknowledge(visibilityTimeout: .seconds(30)), max: 10)
            } throws: { ($0 as? QueueError)?.kind == .unavailable }
            store.failSigns(false)
            // Both back at the head at once, their receives taken back.
            let lease = try #require(try await linked(queues, queue, mode: .acknowledge(visibilityTimeout: .seconds(30)), max: 10))
            #expect(lease.deliveries.count == 2 && lease.deliveries.allSatisfy { $0.message.receiveCount == 1 && $0.message.payloadLink != nil })
        }
    }

    @Test(arguments: BackendKind.available)
    func aStoreOutageIsPaidOncePerBatch(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("outage-batch")
            for seed in 0..<3 { _ = try await queues.send(Self.body(300_000, seed: UInt8(seed)), to: queue) }
            store.failGets(true)
            await #expect {
                _ = try await acknowledged(queues, queue, max: 10)
            } throws: { ($0 as? QueueError)?.kind == .unavailable }
            // The first read failed; the other two went back unread.
            #expect(store.readCount == 1)
            store.failGets(false)
            let lease = try #require(try await acknowledged(queues, queue, max: 10))
            #expect(lease.deliveries.count == 3 && lease.deliveries.allSatisfy { $0.message.receiveCount == 1 })
        }
    }

    @Test(arguments: BackendKind.available)
    func bodiesHeldAtOnceAreBoundedAndFreedWhenSettled(kind: BackendKind) async throws {
        try await withQueues(kind, maximumHeldBytes: 500_000) { queues, _, _ in
            let queue = uniqueQueue("budget")
            for seed in 0..<2 { _ = try await queues.send(Self.body(300_000, seed: UInt8(seed)), to: queue) }
            let first = try #require(try await acknowledged(queues, queue))
            // 300 000 held: another 300 000 would pass the 500 000 budget. The message goes back.
            await #expect {
                _ = try await acknowledged(queues, queue)
            } throws: { ($0 as? QueueError)?.kind == .unavailable }
            // Settled (written, then acked): its bytes are free again.
            await first.delivered()
            let second = try #require(try await acknowledged(queues, queue))
            #expect(second.deliveries[0].message.receiveCount == 1)
            #expect(try await queues.acknowledge([first.deliveries[0].receipt, second.deliveries[0].receipt], in: queue) == [true, true])
        }
    }

    @Test(arguments: BackendKind.available)
    func aPartitionedQueueOffloadsInEachPartition(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let queue = uniqueQueue("parts")
            try await queues.updateSettings(QueueSettings(partitions: 3), of: queue)
            let bodies = (0..<3).map { Self.body(300_000, seed: UInt8($0)) }
            for body in bodies { _ = try await queues.send(body, to: queue) }
            var received: [ByteBuffer] = []
            for _ in 0..<3 {
                let lease = try #require(try await acknowledged(queues, queue))
                received.append(lease.deliveries[0].message.body)
                #expect(try await queues.acknowledge([lease.deliveries[0].receipt], in: queue) == [true])
            }
            #expect(Set(received.map { Array($0.readableBytesView) }) == Set(bodies.map { Array($0.readableBytesView) }))
            try await eventually { try await store.objects().isEmpty }
        }
    }

    @Test func offloadedIdsAreTaggedAndOrdinaryOnesAreNot() {
        for _ in 0..<1000 {
            let ordinary = MessageID.make()
            let offloaded = MessageID.make(offloaded: true)
            #expect(!MessageID.isOffloaded(ordinary))
            #expect(MessageID.isOffloaded(offloaded))
            #expect(offloaded.count == 26)
            // The tag leaves the time and the random bits as they were.
            #expect(offloaded.dropFirst().allSatisfy { "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains($0) })
            #expect(Receipt("\(offloaded).7")?.messageID == offloaded)
        }
    }
}

/// A payload store that fails on demand: uploads after a number of chunks, downloads at once.
final class FaultyStore: PayloadStore {
    let inner: FileSystemPayloadStore
    private let faults = Mutex<(putChunks: Int?, gets: Bool, signs: Bool)>((nil, false, false))
    private let reads = Mutex(0)
    /// Downloads asked for so far, failed ones included.
    var readCount: Int { reads.withLock { $0 } }

    init(_ inner: FileSystemPayloadStore) { self.inner = inner }

    /// Every upload fails once `chunks` of its chunks went through.
    func failPuts(after chunks: Int?) { faults.withLock { $0.putChunks = chunks } }
    func failGets(_ fail: Bool) { faults.withLock { $0.gets = fail } }
    func failSigns(_ fail: Bool) { faults.withLock { $0.signs = fail } }

    var signsURLs: Bool { true }

    /// `test:<key>?expires=<ms>`, or unavailable while signing fails.
    func signedURL(for pointer: PayloadPointer, expiresAtMilliseconds: Int64) async throws -> String {
        if faults.withLock({ $0.signs }) { throw PayloadStoreError.unavailable("the test cut the signer off") }
        return "test:\(try key(of: pointer))?expires=\(expiresAtMilliseconds)"
    }

    /// Every object's key, sorted.
    func objects() async throws -> [String] {
        try await inner.list(prefix: "", pageToken: nil, pageSize: 1000).objects.map(\.key.rawValue).sorted()
    }

    func overwrite(_ key: PayloadKey, with bytes: ByteBuffer) async throws {
        #expect(FileManager.default.createFile(atPath: inner.path(of: key), contents: Data(bytes.readableBytesView)))
    }

    func put<Body: AsyncSequence & Sendable>(key: PayloadKey, body: Body, size: Int) async throws -> PayloadPointer
    where Body.Element == ByteBuffer {
        guard let chunks = faults.withLock({ $0.putChunks }) else { return try await inner.put(key: key, body: body, size: size) }
        return try await inner.put(key: key, body: FailingChunks(base: body, failAfter: chunks), size: size)
    }

    func get(_ pointer: PayloadPointer) async throws -> PayloadBody {
        reads.withLock { $0 += 1 }
        if faults.withLock({ $0.gets }) { throw PayloadStoreError.unavailable("the test cut the store off") }
        return try await inner.get(pointer)
    }

    func delete(key: PayloadKey) async throws { try await inner.delete(key: key) }

    func list(prefix: String, pageToken: String?, pageSize: Int) async throws -> PayloadPage {
        try await inner.list(prefix: prefix, pageToken: pageToken, pageSize: pageSize)
    }

    func key(of pointer: PayloadPointer) throws -> PayloadKey { try inner.key(of: pointer) }
}

/// `base`, failing with ``PayloadStoreError/unavailable(_:)`` after `failAfter` chunks (an upload
/// whose connection to the store broke). A body of `failAfter` chunks or fewer passes.
private struct FailingChunks<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let failAfter: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        var left: Int
        mutating func next() async throws -> ByteBuffer? {
            guard let chunk = try await base.next() else { return nil }
            guard left > 0 else { throw PayloadStoreError.unavailable("the test broke the upload") }
            left -= 1
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), left: failAfter) }
}
