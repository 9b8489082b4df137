import NIOCore
import SkiffTestSupport
import Testing

@testable import SkiffQueue

/// Topic publishes over the threshold (issue 23): one object per message, shared by its copies
/// and deleted with the last of them (``SharedPayloadObjects``).
extension OffloadingQueuesTests {
    /// `{"kind":"<kind>","data":"..."}` of about `size` bytes.
    private static func document(_ size: Int, kind: String, seed: UInt8 = 0) -> ByteBuffer {
        var buffer = ByteBuffer(string: #"{"kind":"\#(kind)","data":"#)
        var data = body(size - buffer.readableBytes - 1, seed: seed)
        buffer.writeBuffer(&data)
        buffer.writeString("}")
        return buffer
    }

    private static func subscription(_ name: String, _ queue: QueueName, filter: String? = nil) -> TopicSubscription {
        TopicSubscription(name: SubscriptionName(name)!, queue: queue, filterPolicy: filter, updatedAtMilliseconds: MessageID.currentMilliseconds())
    }

    /// The count of copies sharing `id`'s object, read without changing it (`nil`: none kept).
    private static func references(_ id: String, _ queues: OffloadingQueues) async throws -> Int? {
        let raised = try #require(try await queues.adjustPayloadReferences(of: id, by: 1, keepFor: .seconds(60)))
        _ = try await queues.adjustPayloadReferences(of: id, by: -1, keepFor: .seconds(60))
        // Raised from nothing, it was not kept (a kept count is never 0).
        return raised == 1 ? nil : raised - 1
    }

    @Test(arguments: BackendKind.available)
    func aTopicPublishSharesOneObjectUntilItsLastCopyIsAcked(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let topics = try #require(Topics.over(queues))
            let topic = TopicName(TestEnvironment.uniqueName("big"))!
            let (first, second, other) = (uniqueQueue("first"), uniqueQueue("second"), uniqueQueue("other"))
            try await topics.subscribe(Self.subscription("first", first), to: topic)
            try await topics.subscribe(Self.subscription("second", second, filter: #"{"kind":["big"]}"#), to: topic)
            try await topics.subscribe(Self.subscription("other", other, filter: #"{"kind":["small"]}"#), to: topic)
            let body = Self.document(700_000, kind: "big")
            let published = try #require(try await topics.publish([body], to: topic, options: SendOptions()).first)
            #expect(published.deliveredTo == 2)
            #expect(MessageID.isOffloaded(published.id) && MessageID.isShared(published.id))
            // One object, whatever the number of copies; the filter read the body, not its pointer.
            #expect(try await store.objects() == ["m/\(published.id)"])
            #expect(try await Self.references(published.id, queues) == 2)
            var leases: [DeliveryLease] = []
            for queue in [first, second] {
                let lease = try #require(try await acknowledged(queues, queue))
                #expect(lease.deliveries[0].message.id == published.id)
                #expect(lease.deliveries[0].message.body == body)
                leases.append(lease)
            }
            #expect(try await acknowledged(queues, other) == nil)
            #expect(try await queues.acknowledge([leases[0].deliveries[0].receipt], in: first) == [true])
            try await eventually { try await Self.references(published.id, queues) == 1 }
            #expect(try await store.objects() == ["m/\(published.id)"])
            // The last copy's ack deletes it, and its count.
            #expect(try await queues.acknowledge([leases[1].deliveries[0].receipt], in: second) == [true])
            try await eventually { try await store.objects().isEmpty }
            #expect(try await Self.references(published.id, queues) == nil)
        }
    }

    @Test(arguments: BackendKind.available)
    func aDroppedCopyIsNotCountedAndAPublishNobodyTakesLeavesNoObject(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let topics = try #require(Topics.over(queues))
            let topic = TopicName(TestEnvironment.uniqueName("drop"))!
            let (open, full) = (uniqueQueue("open"), uniqueQueue("full"))
            try await queues.updateSettings(QueueSettings(maxDepth: 1), of: full)
            _ = try await queues.send(ByteBuffer(string: "1"), to: full)
            try await topics.subscribe(Self.subscription("open", open, filter: #"{"kind":["big"]}"#), to: topic)
            try await topics.subscribe(Self.subscription("full", full), to: topic)
            let published = try await topics.publish(
                [Self.document(400_000, kind: "big", seed: 1), Self.document(400_000, kind: "none", seed: 2)], to: topic, options: SendOptions())
            // The first reached `open` only (`full` dropped it); the second matched `full` alone, which dropped it.
            #expect(published.map(\.deliveredTo) == [1, 0])
            #expect(try await store.objects() == ["m/\(published[0].id)"])
            #expect(try await Self.references(published[0].id, queues) == 1)
            let lease = try #require(try await acknowledged(queues, open))
            #expect(try await queues.acknowledge([lease.deliveries[0].receipt], in: open) == [true])
            try await eventually { try await store.objects().isEmpty }
            // No subscription at all.
            let lonely = try await topics.publish(
                [Self.document(400_000, kind: "big")], to: TopicName(TestEnvironment.uniqueName("none"))!, options: SendOptions())
            #expect(lonely.map(\.deliveredTo) == [0])
            #expect(try await store.objects().isEmpty)
        }
    }

    @Test(arguments: BackendKind.available)
    func purgingOneSubscriberAndAckingTheOtherDeletesTheObjectOnce(kind: BackendKind) async throws {
        try await withQueues(kind) { queues, store, _ in
            let topics = try #require(Topics.over(queues))
            let topic = TopicName(TestEnvironment.uniqueName("purge"))!
            let (kept, purged) = (uniqueQueue("kept"), uniqueQueue("purged"))
            try await topics.subscribe(Self.subscription("kept", kept), to: topic)
            try await topics.subscribe(Self.subscription("purged", purged), to: topic)
            let body = Self.document(300_000, kind: "big")
            let published = try #require(try await topics.publish([body], to: topic, options: SendOptions()).first)
            #expect(try await queues.purge(purged) == 1)
            #expect(try await queues.deleteBuriedPayloads() >= 1)
            #expect(try await store.objects() == ["m/\(published.id)"])
            let lease = try #require(try await acknowledged(queues, kept))
            #expect(lease.deliveries[0].message.body == body)
            #expect(try await queues.acknowledge([lease.deliveries[0].receipt], in: kept) == [true])
            try await eventually { try await store.objects().isEmpty }
        }
    }

    /// A topic with one subscriber queue, over the backend of `kind` (``withQueues(_:maximumHeldBytes:_:)``).
    private func withSubscribedTopic(
        _ kind: BackendKind, _ name: String, _ body: (OffloadingQueues, FaultyStore, Topics, TopicName, QueueName) async throws -> Void
    ) async throws {
        try await withQueues(kind) { queues, store, _ in
            let topics = try #require(Topics.over(queues))
            let (topic, queue) = (TopicName(TestEnvironment.uniqueName(name))!, uniqueQueue(name))
            try await topics.subscribe(Self.subscription("only", queue), to: topic)
            try await body(queues, store, topics, topic, queue)
        }
    }

    @Test(arguments: BackendKind.available)
    func aRepeatedIdempotentPublishLeavesTheFirstObjectAlone(kind: BackendKind) async throws {
        try await withSubscribedTopic(kind, "again") { queues, store, topics, topic, queue in
            let options = SendOptions(idempotencyKey: "once")
            let body = Self.document(300_000, kind: "big")
            let first = try #require(try await topics.publish([body], to: topic, options: options).first)
            let again = try #require(try await topics.publish([body], to: topic, options: options).first)
            #expect(again.isDuplicate && again.id == first.id)
            // A repeat holding more messages than the first publish is answered the first's.
            let longer = try await topics.publish([ByteBuffer(string: "1"), body], to: topic, options: options)
            #expect(longer.first?.id == first.id && longer.allSatisfy(\.isDuplicate))
            #expect(try await store.objects() == ["m/\(first.id)"])
            #expect(try await Self.references(first.id, queues) == 1)
            #expect(try await queues.stats(of: queue).ready == 1)
        }
    }

    @Test(arguments: BackendKind.available)
    func aStoreThatFailsMidUploadPublishesNothing(kind: BackendKind) async throws {
        try await withSubscribedTopic(kind, "fail") { queues, store, topics, topic, queue in
            store.failPuts(after: 0)
            await #expect {
                _ = try await topics.publish([Self.document(300_000, kind: "a"), Self.document(3_000_000, kind: "b")], to: topic, options: SendOptions())
            } throws: { ($0 as? QueueError)?.kind == .unavailable }
            #expect(try await store.objects().isEmpty)
            #expect(try await queues.stats(of: queue).ready == 0)
            // A body at the threshold stays in the queue.
            store.failPuts(after: nil)
            let small = try #require(try await topics.publish([Self.document(Self.threshold, kind: "a")], to: topic, options: SendOptions()).first)
            #expect(!MessageID.isOffloaded(small.id))
            #expect(try await store.objects().isEmpty)
        }
    }

    @Test(arguments: BackendKind.available)
    func referenceCountsRiseFallAndAreForgottenAtZero(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let backend = fixture.backend
        let id = MessageID.make(offloaded: true, shared: true)
        #expect(try await backend.adjustPayloadReferences(of: id, by: -1, keepFor: .seconds(60)) == nil)
        #expect(try await backend.adjustPayloadReferences(of: id, by: 3, keepFor: .seconds(60)) == 3)
        #expect(try await backend.adjustPayloadReferences(of: id, by: -1, keepFor: .seconds(60)) == 2)
        #expect(try await backend.adjustPayloadReferences(of: id, by: -2, keepFor: .seconds(60)) == 0)
        // Forgotten: a further lowering finds nothing, and never a negative count.
        #expect(try await backend.adjustPayloadReferences(of: id, by: -1, keepFor: .seconds(60)) == nil)
        #expect(try await backend.adjustPayloadReferences(of: id, by: 1, keepFor: .seconds(60)) == 1)
    }
}
