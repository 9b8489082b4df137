import NIOCore
import SkiffQueue
import SkiffTestSupport
import Testing

/// What every topic store keeps for push subscriptions (docs/topics.md): the endpoint with the
/// subscription, the service-wide list the replicas' push delivery reads, a version that moves
/// with every change to it, and the push counters.
@Suite("Push subscription contract", .timeLimit(.minutes(2))) struct PushSubscriptionContractTests {
    static var kinds: [BackendKind] { TopicContractTests.kinds }

    static func endpoint(_ path: String = "/hook") -> PushEndpoint {
        PushEndpoint(
            url: "https://push.example.com\(path)",
            secret: "s3cr3t-s3cr3t-s3cr3t|{\"json\"}",
            timeoutMilliseconds: 2_500,
            maxAttempts: 7,
            backoffBaseMilliseconds: 250,
            backoffCapMilliseconds: 9_000,
            concurrency: 3,
            deadLetterQueue: QueueName("push-dead")
        )
    }

    @Test(arguments: kinds) func anEndpointIsStoredWholeAndListedWhileItExists(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, topics, topic) = try TopicContractTests.topics(fixture)
        let store = topics.store
        let (pushQueue, plainQueue) = (uniqueQueue("push"), uniqueQueue("plain"))
        var push = TopicContractTests.subscription("hook", pushQueue)
        push.push = Self.endpoint()

        let before = try await store.pushSubscriptionsVersion()
        try await topics.subscribe(push, to: topic)
        try await topics.subscribe(TopicContractTests.subscription("plain", plainQueue), to: topic)
        let afterPut = try await store.pushSubscriptionsVersion()
        #expect(afterPut != before)
        // Read back whole, the secret's bars, quotes and braces included.
        #expect(try await store.subscriptions(of: topic).subscriptions.first { $0.name == push.name } == push)
        let listed = try await store.pushSubscriptions().entries.filter { $0.topic == topic }
        #expect(listed == [PushSubscriptions.Entry(topic: topic, subscription: push)])

        // The copies of a push subscription go to its queue, as any subscription's.
        let published = try await topics.publish([ByteBuffer(string: #"{"n":1}"#)], to: topic, options: SendOptions())
        #expect(published.first?.deliveredTo == 2)
        #expect(try await backend.take(from: pushQueue) == #"{"n":1}"#)

        // Replaced by a queue subscription: no longer pushed.
        try await topics.subscribe(TopicContractTests.subscription("hook", pushQueue), to: topic)
        #expect(try await store.pushSubscriptionsVersion() != afterPut)
        #expect(try await store.pushSubscriptions().entries.filter { $0.topic == topic }.isEmpty)

        // Deleted, and with its topic.
        try await topics.subscribe(push, to: topic)
        #expect(try await store.pushSubscriptions().entries.contains { $0.topic == topic })
        let beforeDelete = try await store.pushSubscriptionsVersion()
        #expect(try await topics.unsubscribe(push.name, from: topic))
        #expect(try await store.pushSubscriptionsVersion() != beforeDelete)
        #expect(try await store.pushSubscriptions().entries.filter { $0.topic == topic }.isEmpty)
        try await topics.subscribe(push, to: topic)
        let beforeTopicDelete = try await store.pushSubscriptionsVersion()
        #expect(try await topics.delete(topic))
        #expect(try await store.pushSubscriptionsVersion() != beforeTopicDelete)
        #expect(try await store.pushSubscriptions().entries.filter { $0.topic == topic }.isEmpty)
    }

    @Test(arguments: kinds) func pushCountsAddUpAndSkipDeletedSubscriptions(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (_, topics, topic) = try TopicContractTests.topics(fixture)
        var push = TopicContractTests.subscription("hook", uniqueQueue("push"))
        push.push = Self.endpoint()
        try await topics.subscribe(push, to: topic)
        let name = push.name
        try await topics.store.countPushes([PushCount(topic: topic, subscription: name, pushed: 3, failed: 1)])
        try await topics.store.countPushes([
            PushCount(topic: topic, subscription: name, pushed: 2, failed: 0),
            PushCount(topic: topic, subscription: SubscriptionName("gone")!, pushed: 5, failed: 5),
        ])
        let counters = try await topics.store.topicStats(of: topic).subscriptions
        #expect(counters[name]?.pushed == 5 && counters[name]?.pushFailed == 1)
        #expect(counters[SubscriptionName("gone")!] == nil)
        // Deleting the subscription deletes its counters: a new one starts at zero.
        #expect(try await topics.unsubscribe(name, from: topic))
        try await topics.subscribe(push, to: topic)
        #expect(try await topics.store.topicStats(of: topic).subscriptions[name]?.pushed ?? 0 == 0)
    }
}

extension PushSubscriptionContractTests {
    /// A push subscription's queue is its own, over all topics: its consumer pushes whatever the
    /// queue holds to its endpoint, signed with its secret (from the review: two topics pushing
    /// from one queue sent each message to either endpoint).
    @Test(arguments: kinds) func aPushSubscriptionsQueueIsItsOwnOverAllTopics(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (_, topics, first) = try TopicContractTests.topics(fixture)
        let (second, third) = (TopicContractTests.uniqueTopic(), TopicContractTests.uniqueTopic())
        let (pushQueue, sharedQueue) = (uniqueQueue("push"), uniqueQueue("shared"))
        var push = TopicContractTests.subscription("hook", pushQueue)
        push.push = Self.endpoint()
        try await topics.subscribe(push, to: first)

        func refusal(_ subscription: TopicSubscription, on topic: TopicName) async -> QueueError? {
            do {
                try await topics.subscribe(subscription, to: topic)
                return nil
            } catch {
                return error as? QueueError
            }
        }
        // Another topic's push subscription, or queue subscription, onto the push queue.
        var otherPush = TopicContractTests.subscription("hook", pushQueue)
        otherPush.push = Self.endpoint("/other")
        #expect(await refusal(otherPush, on: second)?.kind == .conflict)
        #expect(await refusal(TopicContractTests.subscription("copy", pushQueue), on: second)?.kind == .conflict)
        // A push subscription onto a queue another topic delivers to.
        try await topics.subscribe(TopicContractTests.subscription("plain", sharedQueue), to: second)
        var sharing = TopicContractTests.subscription("hook", sharedQueue)
        sharing.push = Self.endpoint()
        #expect(await refusal(sharing, on: third)?.kind == .conflict)
        // Replacing the owner itself is fine, and once it is gone the queue is free.
        try await topics.subscribe(push, to: first)
        #expect(try await topics.unsubscribe(push.name, from: first))
        try await topics.subscribe(otherPush, to: second)
        // Deleting a topic frees its queues too; a queue subscription moved elsewhere frees its old one.
        #expect(try await topics.delete(second))
        try await topics.subscribe(push, to: first)
        try await topics.subscribe(TopicContractTests.subscription("plain", uniqueQueue("elsewhere")), to: second)
        try await topics.subscribe(sharing, to: third)
    }
}
