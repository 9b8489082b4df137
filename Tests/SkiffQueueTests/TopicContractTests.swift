import Logging
import NIOCore
import NIOPosix
import SkiffQueue
import SkiffRedis
import SkiffTestSupport
import Testing

@testable import SkiffRedisQueue

/// Topics on every backend (docs/topics.md): a publish reaches every matching subscriber queue
/// once (atomically on one Redis; through the topic's log on a Redis Cluster), filters choose the
/// subscriptions, a full queue drops only its own copy, and a subscription change applies to the
/// next publish on every replica.
@Suite("Topic contract", .timeLimit(.minutes(2))) struct TopicContractTests {
    static var kinds: [BackendKind] { BackendKind.available }

    @Test(arguments: kinds) func aPublishReachesEverySubscribedQueueOnceWithOneID(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, topics, topic) = try Self.topics(fixture)
        let queues = (0..<3).map { _ in uniqueQueue("sub") }
        for (index, queue) in queues.enumerated() { try await topics.subscribe(Self.subscription("s\(index)", queue), to: topic) }

        let published = try #require(try await topics.publish([ByteBuffer(string: #"{"n":1}"#)], to: topic, options: SendOptions()).first)
        #expect(published.deliveredTo == 3 && !published.isDuplicate)
        for queue in queues {
            let delivery = try #require(try await backend.receive(from: queue, timeout: .zero))
            #expect(delivery.message.id == published.id)
            #expect(String(buffer: delivery.message.body) == #"{"n":1}"#)
            try await backend.complete(delivery)
            #expect(try await backend.receive(from: queue, timeout: .zero) == nil)
        }
        let stats = try await topics.store.topicStats(of: topic)
        #expect(stats.published == 1)
        #expect(stats.subscriptions[SubscriptionName("s0")!] == SubscriptionCounters(matched: 1, delivered: 1))
        #expect(try await topics.store.topics().contains(topic))
    }

    @Test(arguments: kinds) func filtersChooseTheSubscriptionsOfEachMessageAndAreCounted(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, topics, topic) = try Self.topics(fixture)
        let (orders, everything) = (uniqueQueue("orders"), uniqueQueue("all"))
        try await topics.subscribe(Self.subscription("orders", orders, filter: #"{"type":["order"],"total":[{"numeric":[">=",100]}]}"#), to: topic)
        try await topics.subscribe(Self.subscription("all", everything), to: topic)
        let bodies = [#"{"type":"order","total":150}"#, #"{"type":"order","total":5}"#, #""a string""#, #"{"type":"refund","total":500}"#]
        let published = try await topics.publish(bodies.map { ByteBuffer(string: $0) }, to: topic, options: SendOptions())
        #expect(published.map(\.deliveredTo) == [2, 1, 1, 1])
        #expect(try await backend.take(from: orders) == bodies[0])
        #expect(try await backend.take(from: orders) == nil)
        for body in bodies { #expect(try await backend.take(from: everything) == body) }
        let stats = try await topics.store.topicStats(of: topic)
        #expect(stats.published == 4)
        #expect(stats.subscriptions[SubscriptionName("orders")!] == SubscriptionCounters(matched: 1, filteredOut: 3, delivered: 1))
        #expect(stats.subscriptions[SubscriptionName("all")!] == SubscriptionCounters(matched: 4, delivered: 4))
    }

    @Test(arguments: kinds) func aFullQueueDropsItsOwnCopyAndTheOthersStillGetTheirs(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, topics, topic) = try Self.topics(fixture)
        let (full, open) = (uniqueQueue("full"), uniqueQueue("open"))
        var settings = try await backend.settings(of: full)
        settings.maxDepth = 2
        try await backend.updateSettings(settings, of: full)
        _ = try await backend.send("already", to: full)
        try await topics.subscribe(Self.subscription("full", full), to: topic)
        try await topics.subscribe(Self.subscription("open", open), to: topic)
        // Two messages, room for one in `full`: the first is stored there, the second dropped.
        let published = try await topics.publish(["1", "2"].map { ByteBuffer(string: $0) }, to: topic, options: SendOptions())
        #expect(published.map(\.deliveredTo) == [2, 1])
        #expect(try await backend.take(from: full) == "already")
        #expect(try await backend.take(from: full) == "1")
        #expect(try await backend.take(from: full) == nil)
        #expect(try await backend.take(from: open) == "1")
        #expect(try await backend.take(from: open) == "2")
        let stats = try await topics.store.topicStats(of: topic)
        #expect(stats.subscriptions[SubscriptionName("full")!] == SubscriptionCounters(matched: 2, delivered: 1, dropped: 1))
    }

    @Test(arguments: kinds) func aSubscriptionChangeAppliesToTheNextPublishOnEveryReplica(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind, replicas: 2)
        defer { fixture.close() }
        let stores = try fixture.replicas.map { try #require($0 as? any TopicStore) }
        let (changing, publishing) = (Topics(store: stores[0]), Topics(store: stores[stores.count - 1]))
        let topic = Self.uniqueTopic()
        let queue = uniqueQueue("sub")
        // The publishing replica remembers the topic with no subscription...
        #expect(try await publishing.publish([ByteBuffer(string: "0")], to: topic, options: SendOptions()).first?.deliveredTo == 0)
        // ...another replica subscribes a queue: the very next publish reaches it.
        try await changing.subscribe(Self.subscription("s", queue), to: topic)
        #expect(try await publishing.publish([ByteBuffer(string: "1")], to: topic, options: SendOptions()).first?.deliveredTo == 1)
        // A filter put in its place applies at once too.
        try await changing.subscribe(Self.subscription("s", queue, filter: #"{"keep":[true]}"#), to: topic)
        #expect(try await publishing.publish([ByteBuffer(string: #"{"keep":false}"#)], to: topic, options: SendOptions()).first?.deliveredTo == 0)
        #expect(try await publishing.publish([ByteBuffer(string: #"{"keep":true}"#)], to: topic, options: SendOptions()).first?.deliveredTo == 1)
        #expect(try await changing.unsubscribe(SubscriptionName("s")!, from: topic))
        #expect(try await publishing.publish([ByteBuffer(string: "2")], to: topic, options: SendOptions()).first?.deliveredTo == 0)
        #expect(try await fixture.backend.take(from: queue) == "1")
        #expect(try await fixture.backend.take(from: queue) == #"{"keep":true}"#)
        #expect(try await fixture.backend.take(from: queue) == nil)
    }

    /// Concurrent publishes share fan-outs (one script run for many): each still gets its own
    /// messages' ids, in its own order, and every copy is stored once.
    @Test(arguments: kinds) func concurrentPublishesEachGetTheirOwnMessages(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, topics, topic) = try Self.topics(fixture)
        let queue = uniqueQueue("merged")
        try await topics.subscribe(Self.subscription("s", queue), to: topic)
        let answers = await withTaskGroup(of: (Int, [TopicPublished]?).self) { group in
            for index in 0..<40 {
                let bodies = (0..<(1 + index % 3)).map { ByteBuffer(string: "\(index)-\($0)") }
                group.addTask { (index, try? await topics.publish(bodies, to: topic, options: SendOptions())) }
            }
            var answers: [Int: [TopicPublished]] = [:]
            for await (index, published) in group { answers[index] = published }
            return answers
        }
        var stored: [String: String] = [:]
        while let delivery = try await backend.receive(from: queue, timeout: .zero) {
            stored[delivery.message.id] = String(buffer: delivery.message.body)
            try await backend.complete(delivery)
        }
        for index in 0..<40 {
            let published = try #require(answers[index] ?? nil)
            #expect(published.count == 1 + index % 3 && published.allSatisfy { $0.deliveredTo == 1 })
            #expect(published.map { stored[$0.id] } == (0..<published.count).map { "\(index)-\($0)" })
        }
        #expect(stored.count == (0..<40).reduce(0) { $0 + 1 + $1 % 3 })
    }

    /// A publish's copies are bounded in bytes (413, nothing stored); a merged run over the bound
    /// falls back to its publishes one by one, so only one too large by itself fails.
    @Test(arguments: kinds) func aFanOutLargerThanItsBoundIsRefusedWhole(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let store = try #require(fixture.backend as? any TopicStore)
        let topics = Topics(store: store, maximumFanOutBytes: 1_000)
        let topic = Self.uniqueTopic()
        let queues = (0..<4).map { _ in uniqueQueue("big") }
        for (index, queue) in queues.enumerated() { try await topics.subscribe(Self.subscription("s\(index)", queue), to: topic) }
        let large = ByteBuffer(string: "\"" + String(repeating: "x", count: 298) + "\"")
        let error = await #expect(throws: QueueError.self) { try await topics.publish([large], to: topic, options: SendOptions()) }
        #expect(error?.kind == .tooLarge)
        for queue in queues { #expect(try await fixture.backend.take(from: queue) == nil) }
        // Four small publishes at once (merged: 4 x 4 x 100 bytes together) all succeed.
        let small = ByteBuffer(string: "\"" + String(repeating: "y", count: 98) + "\"")
        let results = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<4 { group.addTask { (try? await topics.publish([small], to: topic, options: SendOptions())) != nil } }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results == [true, true, true, true])
        #expect(try await fixture.backend.stats(of: queues[0]).ready == 4)
    }

    @Test(arguments: kinds) func aBodyTheFiltersCannotReadIsRefusedNotFilteredOut(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, topics, topic) = try Self.topics(fixture)
        let queue = uniqueQueue("filtered")
        try await topics.subscribe(Self.subscription("s", queue, filter: #"{"type":["order"]}"#), to: topic)
        let error = await #expect(throws: QueueError.self) {
            try await topics.publish([ByteBuffer(string: #"{"type":"order","n":1e400}"#)], to: topic, options: SendOptions())
        }
        #expect(error?.kind == .invalidArgument)
        #expect(try await backend.take(from: queue) == nil)
        #expect(try await topics.store.topicStats(of: topic).published == 0)
        // The queue name `topics` is reserved for requests, and still readable from storage.
        #expect(QueueName("topics") == nil && QueueName(stored: "topics")?.rawValue == "topics")
    }

    @Test(arguments: kinds) func aFanOutDecidedFromOldSubscriptionsStoresNothing(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, topics, topic) = try Self.topics(fixture)
        let queue = uniqueQueue("sub")
        try await topics.subscribe(Self.subscription("s", queue), to: topic)
        let read = try await topics.store.subscriptions(of: topic)
        try await topics.subscribe(Self.subscription("t", uniqueQueue("other")), to: topic)
        let fanOut = TopicFanOut(
            topic: topic,
            version: read.version,
            targets: [TopicFanOut.Target(subscription: SubscriptionName("s")!, queue: queue, filteredOut: 0)],
            messages: [TopicFanOut.Message(id: MessageID.make(), body: ByteBuffer(string: "x"), targets: [0])],
            options: SendOptions(),
            dedupWindowMilliseconds: 60_000
        )
        #expect(try await topics.store.fanOut(fanOut) == .stale)
        #expect(try await backend.take(from: queue) == nil)
        #expect(try await topics.store.topicStats(of: topic).published == 0)
    }

    @Test(arguments: kinds) func aRepeatedIdempotencyKeyStoresNothingAndAnswersTheFirstPublish(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, topics, topic) = try Self.topics(fixture)
        let queue = uniqueQueue("sub")
        try await topics.subscribe(Self.subscription("s", queue), to: topic)
        let options = SendOptions(priority: 7, idempotencyKey: "k-1")
        let first = try await topics.publish(["a", "b"].map { ByteBuffer(string: $0) }, to: topic, options: options)
        let again = try await topics.publish(["a", "b"].map { ByteBuffer(string: $0) }, to: topic, options: options)
        #expect(again.map(\.id) == first.map(\.id))
        #expect(again.map(\.deliveredTo) == [1, 1])
        #expect(again.allSatisfy(\.isDuplicate) && !first.contains(where: \.isDuplicate))
        let delivery = try #require(try await backend.receive(from: queue, timeout: .zero))
        #expect(delivery.message.priority == 7 && delivery.message.id == first[0].id)
        try await backend.complete(delivery)
        #expect(try await backend.take(from: queue) == "b")
        #expect(try await backend.take(from: queue) == nil)
        #expect(try await topics.store.topicStats(of: topic).published == 2)
    }

    @Test(arguments: kinds) func aQueueIsSubscribedOncePerTopicAndSubscriptionsAreBounded(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (_, topics, topic) = try Self.topics(fixture)
        let queue = uniqueQueue("sub")
        #expect(try await topics.subscribe(Self.subscription("s", queue), to: topic))
        #expect(try await topics.subscribe(Self.subscription("s", queue, filter: #"{"a":["b"]}"#), to: topic) == false)
        await #expect(throws: QueueError.self) { try await topics.subscribe(Self.subscription("twice", queue), to: topic) }
        for index in 1..<TopicSubscriptions.maximumPerTopic {
            try await topics.subscribe(Self.subscription("s\(index)", uniqueQueue("many")), to: topic)
        }
        let error = await #expect(throws: QueueError.self) { try await topics.subscribe(Self.subscription("more", uniqueQueue("more")), to: topic) }
        #expect(error?.kind == .conflict)
        #expect(try await topics.store.subscriptions(of: topic).subscriptions.count == TopicSubscriptions.maximumPerTopic)
        // A bad filter names where it is wrong, and stores nothing.
        let bad = await #expect(throws: QueueError.self) {
            try await topics.subscribe(Self.subscription("s", queue, filter: #"{"a":[{"numeric":[">"]}]}"#), to: topic)
        }
        #expect(bad?.kind == .invalidArgument && bad?.message.contains("$.a") == true)
        #expect(try await topics.delete(topic))
        #expect(try await topics.store.subscriptions(of: topic).subscriptions.isEmpty)
        #expect(try await topics.delete(topic) == false)
    }

    @Test(arguments: kinds) func aPartitionedSubscriberQueueTakesEachCopyInOnePartition(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let partitioned = PartitionedQueues(fixture.backend)
        let topics = try #require(Topics.over(partitioned))
        let (topic, queue) = (Self.uniqueTopic(), uniqueQueue("hot"))
        var settings = try await partitioned.settings(of: queue)
        settings.partitions = 3
        try await partitioned.updateSettings(settings, of: queue)
        try await topics.subscribe(Self.subscription("s", queue), to: topic)
        for index in 0..<6 { _ = try await topics.publish([ByteBuffer(string: "\(index)")], to: topic, options: SendOptions()) }
        #expect(try await partitioned.stats(of: queue).ready == 6)
        var seen: [String] = []
        let request = DeliveryRequest(queue: queue, max: 1, timeout: .zero, mode: .autoAcknowledge)
        while let lease = try await partitioned.deliver(request, context: DeliveryContext(logger: Logger(label: "test"))) {
            seen += lease.deliveries.map { String(buffer: $0.message.body) }
            await lease.delivered()
        }
        #expect(seen.sorted() == (0..<6).map { "\($0)" })
        // Every partition took some: the copies went round them.
        for index in 0..<3 { #expect(try await fixture.backend.stats(of: queue.partition(index)).totals.enqueued == 2) }
    }

    /// Publishes while Redis keeps cutting the connections: whatever each publish's outcome, every
    /// message is in all of its subscribers' queues or in none.
    /// On a Redis of its own: the cuts would reach other tests' connections on the shared one.
    @Test(.enabled(if: TestEnvironment.hasRedis)) func aFailureMidPublishNeverLeavesAPartialFanOut() async throws {
        let server = try RedisServerProcess()
        try server.start()
        defer { server.kill() }
        let fixture = try await BackendFixture.make(.redis, redisURL: server.url)
        defer { fixture.close() }
        let (_, topics, topic) = try Self.topics(fixture)
        let queues = (0..<8).map { _ in uniqueQueue("atomic") }
        for (index, queue) in queues.enumerated() { try await topics.subscribe(Self.subscription("s\(index)", queue), to: topic) }
        let admin = RedisClient(
            configuration: try RedisConfiguration(url: server.url),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test")
        )
        defer { admin.close() }
        let killer = Task {
            while !Task.isCancelled {
                _ = try? await admin.send("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        // Waves of publishes until some met a cut and some got through (or 30 s passed).
        var (succeeded, failed, index) = (Set<String>(), 0, 0)
        let deadline = ContinuousClock.now + .seconds(30)
        while (succeeded.count < 20 || failed < 5) && ContinuousClock.now < deadline {
            await withTaskGroup(of: TopicPublished?.self) { group in
                for _ in 0..<10 {
                    index += 1
                    let body = ByteBuffer(string: "\(index)")
                    group.addTask { try? await topics.publish([body], to: topic, options: SendOptions()).first }
                }
                for await published in group {
                    if let published { succeeded.insert(published.id) } else { failed += 1 }
                }
            }
        }
        killer.cancel()
        await killer.value
        // Read back over connections of their own: the pool's may have been cut by the last kill.
        let reader = try await BackendFixture.make(.redis, redisURL: server.url)
        defer { reader.close() }
        var copies: [String: Int] = [:]
        for queue in queues {
            while let delivery = try await reader.backend.receive(from: queue, timeout: .zero) {
                copies[delivery.message.id, default: 0] += 1
                try await reader.backend.complete(delivery)
            }
        }
        #expect(copies.values.allSatisfy { $0 == queues.count }, "a message reached some subscriber queues and not others")
        // Every publish answered 201 is everywhere (and the run did cut some connections).
        #expect(succeeded.allSatisfy { copies[$0] == queues.count })
        #expect(succeeded.count >= 20 && failed >= 5, "the cuts must both interrupt and spare publishes for the test to prove anything")
    }

    /// A failover that loses the last subscription change (the topic's keys and the version
    /// counter go back) must not let the next change reissue the version a replica remembers
    /// with the lost subscriptions: the nonce tells them apart.
    @Test(.enabled(if: TestEnvironment.hasRedis)) func aVersionLostInAFailoverIsNeverIssuedAgain() async throws {
        let fixture = try await BackendFixture.make(.redis)
        defer { fixture.close() }
        let store = try #require(fixture.backend as? any TopicStore)
        let client = try #require(fixture.backend as? RedisQueueBackend).client
        let (changing, publishing) = (Topics(store: store), Topics(store: store))
        let topic = Self.uniqueTopic()
        let (first, lost, last) = (uniqueQueue("v1"), uniqueQueue("v2"), uniqueQueue("v3"))
        let (subs, version, counter) = ("skiff:topic:{\(topic)}:subs", "skiff:topic:{\(topic)}:version", "skiff:topic-version")
        try await changing.subscribe(Self.subscription("s", first), to: topic)
        // What a replica promoted in a failover would hold: the state before the next change.
        let savedSubs = try #require(try await client.send("DUMP", .string(subs)).bytes)
        let savedVersion = try #require(try await client.send("GET", .string(version)).string)
        let savedCounter = try #require(try await client.send("GET", .string(counter)).string)
        try await changing.subscribe(Self.subscription("s", lost), to: topic)
        // The publishing replica learns the change that is about to be lost.
        #expect(try await publishing.publish([ByteBuffer(string: "before")], to: topic, options: SendOptions()).first?.deliveredTo == 1)
        _ = try await client.send("RESTORE", .string(subs), .integer(0), .bytes(savedSubs), .string("REPLACE"))
        _ = try await client.send("SET", .string(version), .string(savedVersion))
        _ = try await client.send("SET", .string(counter), .string(savedCounter))
        // The next change gets the lost change's counter value, never its version.
        try await changing.subscribe(Self.subscription("s", last), to: topic)
        #expect(try await publishing.publish([ByteBuffer(string: "after")], to: topic, options: SendOptions()).first?.deliveredTo == 1)
        #expect(try await fixture.backend.take(from: last) == "after")
        #expect(try await fixture.backend.take(from: lost) == "before")
        #expect(try await fixture.backend.take(from: lost) == nil)
    }

    // MARK: Helpers

    static func topics(_ fixture: BackendFixture) throws -> (any ClaimingBackend, Topics, TopicName) {
        let store = try #require(fixture.backend as? any TopicStore)
        return (fixture.backend, Topics(store: store), uniqueTopic())
    }

    /// A command on `key` (routed to its slot on a cluster), then `arguments`.
    static func command(_ backend: RedisQueueBackend, _ name: String, _ key: String, _ arguments: RedisArgument...) async throws -> RedisValue {
        try await backend.client.send(RedisCommand(name, [.string(key)] + arguments), slotKey: key)
    }

    static func uniqueTopic() -> TopicName { TopicName(TestEnvironment.uniqueName("topic"))! }

    static func subscription(_ name: String, _ queue: QueueName, filter: String? = nil) -> TopicSubscription {
        TopicSubscription(name: SubscriptionName(name)!, queue: queue, filterPolicy: filter, updatedAtMilliseconds: MessageID.currentMilliseconds())
    }
}

extension TopicContractTests {
    /// The topic log of a Redis Cluster, driven by hand. A sweep takes every entry in the log,
    /// other tests' too, so these tests run one at a time: a sweep of one test must not forward
    /// an entry another test is about to change under it.
    @Suite("Topic log on a Redis Cluster", .serialized) struct ClusterLog {
        /// A replica that died after appending a publish to the topic's log and before forwarding
        /// it (or after copying to some queues and before recording it): the sweeps of two replicas,
        /// run again and again and at the same time, put each copy in its queue exactly once, count
        /// it once, and then remove the entry.
        @Test(arguments: BackendKind.available.filter { $0 == .redisCluster }) func anEntryLeftInTheTopicLogIsForwardedOnceBySweeps(
            kind: BackendKind
        ) async throws {
            let fixture = try await BackendFixture.make(kind, replicas: 2)
            defer { fixture.close() }
            let (first, second) = (try #require(fixture.replicas[0] as? RedisQueueBackend), try #require(fixture.replicas[1] as? RedisQueueBackend))
            let (backend, topics, topic) = try TopicContractTests.topics(fixture)
            let queues = (0..<3).map { _ in uniqueQueue("log") }
            for (index, queue) in queues.enumerated() { try await topics.subscribe(TopicContractTests.subscription("s\(index)", queue), to: topic) }
            // The last queue holds one message at most: its second copy is dropped, once.
            var settings = try await backend.settings(of: queues[2])
            settings.maxDepth = 1
            try await backend.updateSettings(settings, of: queues[2])
            let version = try await first.subscriptions(of: topic).version
            let targets = queues.enumerated().map { TopicFanOut.Target(subscription: SubscriptionName("s\($0.offset)")!, queue: $0.element, filteredOut: 0) }
            let ids = [MessageID.make(), MessageID.make()]
            let fanOut = TopicFanOut(
                topic: topic,
                version: version,
                targets: targets,
                messages: ids.enumerated().map { TopicFanOut.Message(id: $0.element, body: ByteBuffer(string: "m\($0.offset)"), targets: [0, 1, 2]) },
                options: SendOptions(),
                dedupWindowMilliseconds: 60_000
            )
            let (result, appended) = try await first.appendToLog(fanOut)
            let entry = try #require(appended)
            #expect(
                result == .published(ids.map { TopicPublished(id: $0, topic: topic, publishedAtMilliseconds: entry.publishedAtMilliseconds, deliveredTo: 3) }))
            // Nothing is in the queues until a forwarder runs: the replica "died" here.
            for queue in queues { #expect(try await backend.stats(of: queue).totals.enqueued == 0) }
            // It got as far as one queue's copies, and no further.
            _ = await first.forward(entry, targets: [0], readAt: .now)
            #expect(try await backend.stats(of: queues[0]).totals.enqueued == 2)

            for _ in 0..<3 {
                async let one = first.forwardTopicLog(olderThan: .zero)
                async let other = second.forwardTopicLog(olderThan: .zero)
                _ = await (one, other)
            }
            for (index, queue) in queues.enumerated() {
                var bodies: [String] = []
                while let delivery = try await backend.receive(from: queue, timeout: .zero) {
                    bodies.append(String(buffer: delivery.message.body))
                    try await backend.complete(delivery)
                }
                #expect(bodies == (index == 2 ? ["m0"] : ["m0", "m1"]), "queue \(index)")
            }
            let stats = try await first.topicStats(of: topic)
            #expect(stats.subscriptions[SubscriptionName("s0")!] == SubscriptionCounters(matched: 2, delivered: 2))
            #expect(stats.subscriptions[SubscriptionName("s2")!] == SubscriptionCounters(matched: 2, delivered: 1, dropped: 1))
            // Settled everywhere: the entry is gone, and running a forwarder again stores nothing.
            let pending = try await TopicContractTests.command(first, "ZRANGE", first.topicIndexKey("topic-log"), .integer(0), .integer(-1))
            #expect(!(pending.array ?? []).contains { $0.string == "\(topic)|\(entry.id)" })
            let again = await first.forward(entry, targets: [0, 1, 2], readAt: .now)
            #expect(again.map(\.stored) == [2, 2, 1])
            for queue in queues { #expect(try await backend.receive(from: queue, timeout: .zero) == nil) }
            // The replicas that settled have the queues forget the entry (after a minute normally):
            // every queue remembered it until now, and none does after.
            func remembered(_ queue: QueueName) async throws -> Bool {
                let reply = try await TopicContractTests.command(first, "HEXISTS", first.keys(queue).base + "topic-applied", .string("\(topic)|\(entry.id)"))
                return reply.integer == 1
            }
            for queue in queues { #expect(try await remembered(queue)) }
            await first.forgetSettledCopies(olderThan: .seconds(3600))
            await second.forgetSettledCopies(olderThan: .seconds(3600))
            for queue in queues { #expect(try await remembered(queue)) }
            await first.forgetSettledCopies(olderThan: .zero)
            await second.forgetSettledCopies(olderThan: .zero)
            for queue in queues { #expect(try await !remembered(queue), "\(queue)") }
        }

        /// A deleted topic's entries not yet forwarded are dropped with it, and a forwarder that
        /// held one stores nothing for the deleted topic's subscriptions' counters.
        @Test(arguments: BackendKind.available.filter { $0 == .redisCluster }) func aDeletedTopicTakesItsUnforwardedEntriesWithIt(
            kind: BackendKind
        ) async throws {
            let fixture = try await BackendFixture.make(kind)
            defer { fixture.close() }
            let redis = try #require(fixture.backend as? RedisQueueBackend)
            let (_, topics, topic) = try TopicContractTests.topics(fixture)
            let queue = uniqueQueue("gone")
            try await topics.subscribe(TopicContractTests.subscription("s", queue), to: topic)
            let fanOut = TopicFanOut(
                topic: topic,
                version: try await redis.subscriptions(of: topic).version,
                targets: [TopicFanOut.Target(subscription: SubscriptionName("s")!, queue: queue, filteredOut: 0)],
                messages: [TopicFanOut.Message(id: MessageID.make(), body: ByteBuffer(string: "x"), targets: [0])],
                options: SendOptions(),
                dedupWindowMilliseconds: 60_000
            )
            #expect(try await redis.appendToLog(fanOut).1 != nil)
            #expect(try await redis.deleteTopic(topic))
            // (Other tests' entries may be forwarded by this sweep too: it is not counted.)
            await redis.forwardTopicLog(olderThan: .zero)
            #expect(try await redis.stats(of: queue).totals.enqueued == 0)
            let pending = try await TopicContractTests.command(redis, "ZRANGE", redis.topicIndexKey("topic-log"), .integer(0), .integer(-1))
            #expect(!(pending.array ?? []).contains { $0.string?.hasPrefix("\(topic)|") == true })
        }

        /// An entry still in the log when one of its subscriptions is deleted and another moves to
        /// another queue: neither the deleted subscription's queue nor the one left behind (which
        /// might be a push subscription's next) gets its copy, and the moved one counts it dropped;
        /// the subscription that stayed gets it. When none is left, the entry goes at once.
        @Test(arguments: BackendKind.available.filter { $0 == .redisCluster }) func subscriptionsThatLeaveTakeTheirPendingCopiesWithThem(
            kind: BackendKind
        ) async throws {
            let fixture = try await BackendFixture.make(kind)
            defer { fixture.close() }
            let redis = try #require(fixture.backend as? RedisQueueBackend)
            let (backend, topics, topic) = try TopicContractTests.topics(fixture)
            let queues = (0..<4).map { _ in uniqueQueue("leave") }
            for index in 0..<3 { try await topics.subscribe(TopicContractTests.subscription("s\(index)", queues[index]), to: topic) }
            func append() async throws -> RedisQueueBackend.TopicLogEntry {
                let fanOut = TopicFanOut(
                    topic: topic,
                    version: try await redis.subscriptions(of: topic).version,
                    targets: (0..<3).map { TopicFanOut.Target(subscription: SubscriptionName("s\($0)")!, queue: queues[$0], filteredOut: 0) },
                    messages: [TopicFanOut.Message(id: MessageID.make(), body: ByteBuffer(string: "x"), targets: [0, 1, 2])],
                    options: SendOptions(),
                    dedupWindowMilliseconds: 60_000
                )
                return try #require(try await redis.appendToLog(fanOut).1)
            }
            func pending(_ entry: RedisQueueBackend.TopicLogEntry) async throws -> Bool {
                let reply = try await TopicContractTests.command(redis, "ZSCORE", redis.topicIndexKey("topic-log"), .string("\(topic)|\(entry.id)"))
                return reply.string != nil
            }
            let entry = try await append()
            #expect(try await topics.unsubscribe(SubscriptionName("s0")!, from: topic))
            #expect(try await !topics.subscribe(TopicContractTests.subscription("s1", queues[3]), to: topic))
            #expect(try await pending(entry))
            await redis.forwardTopicLog(olderThan: .zero)
            #expect(try await !pending(entry))
            var enqueued: [Int64] = []
            for queue in queues { enqueued.append(try await backend.stats(of: queue).totals.enqueued) }
            #expect(enqueued == [0, 0, 1, 0])
            let counters = try await redis.topicStats(of: topic).subscriptions
            #expect(counters[SubscriptionName("s2")!] == SubscriptionCounters(matched: 1, delivered: 1))
            #expect(counters[SubscriptionName("s1")!] == SubscriptionCounters(matched: 1, dropped: 1))

            // The last subscription goes too: the next entry has nowhere left to go, and goes.
            try await topics.subscribe(TopicContractTests.subscription("s0", queues[0]), to: topic)
            try await topics.subscribe(TopicContractTests.subscription("s1", queues[1]), to: topic)
            let next = try await append()
            for index in 0..<3 { #expect(try await topics.unsubscribe(SubscriptionName("s\(index)")!, from: topic)) }
            #expect(try await !pending(next))
        }
    }
}
