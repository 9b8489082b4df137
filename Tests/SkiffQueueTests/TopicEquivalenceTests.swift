import NIOCore
import PropertyBased
import SkiffQueue
import SkiffTestSupport
import Testing

/// Topics behave alike on every backend: the memory backend, a single Redis (one script per
/// publish) and a Redis Cluster (the topic's log and its forwarders, docs/topics.md). Random
/// sequences of subscription changes, publishes (filtered, keyed, batched, into a queue that
/// fills up), receives and topic deletions run on all of them side by side; after every step the
/// answers, the topic's counters and the topic list must be the same. Ids differ between
/// backends, so a message is known by its body, which the driver makes unique.
@Suite("Topics agree on every backend", .enabled(if: TestEnvironment.hasRedis), .timeLimit(.minutes(5)))
struct TopicEquivalenceTests {
    @Test func randomTopicSequences() async throws {
        var fixtures: [BackendFixture] = []
        for kind in BackendKind.available { fixtures.append(try await BackendFixture.make(kind)) }
        defer { for fixture in fixtures { fixture.close() } }
        let steps = zip(Gen.int(in: 0...99), Gen.int(in: 0...999_999)).array(of: 1...40)
        await propertyCheck(count: 30, input: Gen.int(in: 0...3), steps) { setup, steps in
            var drivers: [TopicDriver] = []
            do {
                for fixture in fixtures { drivers.append(try await TopicDriver(fixture.backend, fullQueueDepth: setup)) }
            } catch {
                Issue.record("setting up the queues failed: \(error)")
                return
            }
            var trace: [String] = []
            for (index, (kind, argument)) in steps.enumerated() {
                let step = TopicStep(kind: kind, argument: argument, sequence: index)
                var answers: [String] = []
                for driver in drivers { answers.append(await driver.apply(step) + " | " + (await driver.figures())) }
                trace.append("\(index): \(step) -> \(answers[0])")
                guard Set(answers).count == 1 else {
                    Issue.record(
                        """
                        the backends disagree at step \(index): \(step)
                        \(zip(BackendKind.available, answers).map { "\($0): \($1)" }.joined(separator: "\n"))
                        steps so far (the first backend's answers):
                        \(trace.joined(separator: "\n"))
                        """
                    )
                    break
                }
            }
            for driver in drivers { await driver.cleanUp() }
        }
    }
}

/// One step of a sequence: what it does is chosen by `kind` (a share of 0...99), its details by
/// `argument`.
struct TopicStep: CustomStringConvertible {
    enum Action {
        case subscribe(subscription: Int, queue: Int, filter: Int)
        case unsubscribe(subscription: Int)
        case publish(count: Int, key: Int?, values: [Int])
        case receive(queue: Int, max: Int)
        case deleteTopic
    }

    let action: Action
    /// Unique per step: the bodies published by a step carry it.
    let sequence: Int

    init(kind: Int, argument: Int, sequence: Int) {
        self.sequence = sequence
        let a = argument
        switch kind {
        case 0..<25: action = .subscribe(subscription: a % 3, queue: (a / 3) % 3, filter: (a / 9) % TopicDriver.filters.count)
        case 25..<32: action = .unsubscribe(subscription: a % 3)
        case 32..<70:
            let count = 1 + a % 3
            action = .publish(count: count, key: (a / 3) % 4 == 0 ? (a / 12) % 2 : nil, values: (0..<count).map { (a / (24 << $0)) % 5 })
        case 70..<97: action = .receive(queue: a % 3, max: 1 + (a / 3) % 3)
        default: action = .deleteTopic
        }
    }

    var description: String { "\(action)" }
}

/// Runs steps on one backend, on a topic and three queues of its own; queue 2 holds at most
/// `fullQueueDepth` messages when that is 1 or more.
final class TopicDriver: Sendable {
    /// The filter policies a subscription may take (`nil`: everything).
    static let filters: [String?] = [
        nil, #"{"n":[{"numeric":[">",1]}]}"#, #"{"t":["a"]}"#, #"{"t":[{"prefix":"b"}],"n":[0,1,2]}"#, #"{"t":[{"anything-but":["a"]}]}"#,
    ]

    let backend: any ClaimingBackend
    let topics: Topics
    let topic: TopicName
    let queues: [QueueName]

    init(_ backend: any ClaimingBackend, fullQueueDepth: Int) async throws {
        self.backend = backend
        topics = Topics(store: try #require(backend as? any TopicStore))
        topic = TopicName(TestEnvironment.uniqueName("same-topic"))!
        queues = (0..<3).map { _ in uniqueQueue("same-sub") }
        if fullQueueDepth > 0 {
            var settings = try await backend.settings(of: queues[2])
            settings.maxDepth = fullQueueDepth
            try await backend.updateSettings(settings, of: queues[2])
        }
    }

    func apply(_ step: TopicStep) async -> String {
        do {
            switch step.action {
            case .subscribe(let subscription, let queue, let filter):
                let created = try await topics.subscribe(
                    TopicSubscription(
                        name: SubscriptionName("s\(subscription)")!,
                        queue: queues[queue],
                        filterPolicy: Self.filters[filter],
                        updatedAtMilliseconds: 0
                    ),
                    to: topic
                )
                return "created \(created)"
            case .unsubscribe(let subscription):
                return "deleted \(try await topics.store.deleteSubscription(SubscriptionName("s\(subscription)")!, of: topic))"
            case .publish(let count, let key, let values):
                let bodies = (0..<count).map { index in
                    ByteBuffer(string: #"{"n":\#(values[index]),"t":"\#(["a", "b", "bc", "c", "a"][values[index]])","step":\#(step.sequence),"i":\#(index)}"#)
                }
                let published = try await topics.publish(bodies, to: topic, options: SendOptions(idempotencyKey: key.map { "k\($0)" }))
                return published.map { "\($0.deliveredTo)\($0.isDuplicate ? " duplicate" : "")" }.joined(separator: ", ")
            case .receive(let queue, let max):
                let deliveries = try await backend.receive(from: queues[queue], max: max, timeout: .zero, mode: .autoAcknowledge)
                return deliveries.map { String(buffer: $0.message.body) }.joined(separator: ", ")
            case .deleteTopic:
                return "deleted \(try await topics.store.deleteTopic(topic))"
            }
        } catch let error as QueueError {
            return "error \(error.kind)"
        } catch {
            return "error \(error)"
        }
    }

    /// The topic's counters, whether it is listed, and the depth of each queue.
    func figures() async -> String {
        do {
            let stats = try await topics.store.topicStats(of: topic)
            // A subscription with nothing counted yet may be absent (Redis) or all zeros (memory):
            // the API shows zeros either way.
            let counters = stats.subscriptions.filter { $0.value != SubscriptionCounters() }.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
            var depths: [Int] = []
            for queue in queues { depths.append(try await backend.stats(of: queue).ready) }
            let listed = try await topics.store.topics().contains(topic)
            return "published \(stats.published), \(counters.joined(separator: "; ")), listed \(listed), ready \(depths)"
        } catch {
            return "figures failed: \(error)"
        }
    }

    func cleanUp() async {
        _ = try? await topics.store.deleteTopic(topic)
        for queue in queues { _ = try? await backend.delete(queue) }
    }
}
