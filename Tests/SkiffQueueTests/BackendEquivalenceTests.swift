import Foundation
import Logging
import NIOCore
import NIOPosix
import PropertyBased
import SkiffQueue
import SkiffRedis
import SkiffRedisQueue
import SkiffTestSupport
import Testing

/// The memory and the Redis backend must behave alike, message by message (issue 16): random
/// operation sequences run on both side by side, and after every step the two answers and the
/// figures of every queue involved must be the same. Ids differ between the backends, so a
/// message is known by its body, which the driver makes unique.
///
/// What is compared: each operation's answer (stored or duplicate and of which message, the
/// messages received with their receive count, priority, last error, dead-letter history, mode
/// and lease, acks, nacks, visibility changes, redrives, purges, deletions, errors), then
/// `stats` of the four queues (all but `lastMinute`, whose 10-second buckets depend on when a step
/// ran, and the oldest message's age, of which only its presence is compared), and at `list`
/// steps the queues listed and their settings.
///
/// Time never decides an observation (see ``BackendOperation``): each run is deterministic but
/// for its random sequence. On a failure the property checker prints the seed to replay
/// (`@Test(.fixedSeed(...))`) and the failing case's steps with both answers.
@Suite("Memory and Redis backends agree", .enabled(if: TestEnvironment.hasRedis), .timeLimit(.minutes(5)))
struct BackendEquivalenceTests {
    /// `SKIFF_PROPERTY_SCALE=10 swift test --filter BackendEquivalenceTests` runs ten times the
    /// cases, for a longer search than CI's.
    static let scale = max(1, Int(ProcessInfo.processInfo.environment["SKIFF_PROPERTY_SCALE"] ?? "") ?? 1)

    /// 40 cases of up to 50 steps of every untimed operation; about 10 s alone.
    @Test func randomSequencesWithoutWaits() async throws {
        let pair = try BackendPair()
        defer { pair.close() }
        let steps = zip(Gen.int(in: BackendOperation.timelessKinds), Gen.int(in: 0...999_999)).array(of: 1...50)
        await propertyCheck(count: 40 * Self.scale, input: Gen.int(in: 0...63), steps) { setup, steps in
            await pair.run(BackendOperation.CaseSetup(setup), steps.map { BackendOperation(kind: $0.0, argument: $0.1) })
        }
    }

    /// 10 cases of up to 20 steps that also let short delays, visibility timeouts and dedup windows
    /// pass (each timed step sleeps 350 ms); about 10 s. No shrinking: a case takes seconds.
    @Test(.shrinking(false)) func randomSequencesWithDelaysVisibilityTimeoutsAndExpiringKeys() async throws {
        let pair = try BackendPair()
        defer { pair.close() }
        let steps = zip(Gen.int(in: BackendOperation.allKinds), Gen.int(in: 0...999_999)).array(of: 1...20)
        await propertyCheck(count: 10 * Self.scale, input: Gen.int(in: 0...63), steps) { setup, steps in
            await pair.run(BackendOperation.CaseSetup(setup), steps.map { BackendOperation(kind: $0.0, argument: $0.1) })
        }
    }
}

extension BackendEquivalenceTests {
    /// Found by the random sequences (issue 16): after `dedupWindowMs` changes, a stored key is
    /// judged by the window in force when the repeat comes ("stored less than dedupWindowMs ago",
    /// docs/message-lifecycle.md). The Redis backend judged it by the window of the send that
    /// stored it. A shrunk window: a duplicate for Redis only; a grown one: for memory only.
    /// The memory backend runs no maintenance here, so nothing but the rule decides.
    @Test func aKeyIsJudgedAlikeAfterItsQueuesDedupWindowChanged() async throws {
        let pair = try BackendPair()
        defer { pair.close() }
        let memory = MemoryQueueBackend(eventLoop: MultiThreadedEventLoopGroup.singleton.next())
        var duplicates: [[Bool]] = []
        var queues: [(shrunk: QueueName, grown: QueueName)] = []
        for backend in [memory as any ClaimingBackend, pair.redis] {
            let (shrunk, grown) = (uniqueQueue("shrunk"), uniqueQueue("grown"))
            _ = try await backend.send([ByteBuffer(string: "1")], to: shrunk, options: SendOptions(idempotencyKey: "k"))
            try await backend.updateSettings(QueueSettings(dedupWindowMilliseconds: 200), of: shrunk)
            try await backend.updateSettings(QueueSettings(dedupWindowMilliseconds: 200), of: grown)
            _ = try await backend.send([ByteBuffer(string: "1")], to: grown, options: SendOptions(idempotencyKey: "k"))
            try await backend.updateSettings(QueueSettings(dedupWindowMilliseconds: 300_000), of: grown)
            queues.append((shrunk, grown))
        }
        // Past the 200 ms window, well inside the 5 minutes.
        try await Task.sleep(for: .milliseconds(500))
        for (backend, (shrunk, grown)) in zip([memory as any ClaimingBackend, pair.redis], queues) {
            var answers: [Bool] = []
            for queue in [shrunk, grown] {
                answers += try await backend.send([ByteBuffer(string: "2")], to: queue, options: SendOptions(idempotencyKey: "k")).map(\.isDuplicate)
            }
            duplicates.append(answers)
        }
        #expect(duplicates[0] == [false, true], "memory: the window in force when the repeat comes")
        #expect(duplicates[0] == duplicates[1], "memory \(duplicates[0]), redis \(duplicates[1]) (shrunk window, grown window)")
    }

    /// Found by the random sequences (issue 16): with `maxReceiveCount` lowered below the receive
    /// count of a message waiting at the head, the memory backend dead-lettered it at the next
    /// send (any event that served waiters ran the claim's head check, with or without a waiter),
    /// the Redis backend only at the next claim, as docs/message-lifecycle.md says.
    @Test func aLoweredMaxReceiveCountDeadLettersAtTheSameMomentOnBoth() async throws {
        let pair = try BackendPair()
        defer { pair.close() }
        var figures: [String] = []
        var received: [String] = []
        for backend in [pair.memory as any ClaimingBackend, pair.redis] {
            let queue = uniqueQueue("lowered")
            _ = try await backend.send([ByteBuffer(string: "first")], to: queue, options: SendOptions())
            let delivery = try #require(
                try await backend.receive(from: queue, max: 1, timeout: .zero, mode: .acknowledge(visibilityTimeout: nil)).first
            )
            #expect(try await backend.reject(delivery.receipt, in: queue, delay: .zero, reason: nil))
            try await backend.updateSettings(QueueSettings(maxReceiveCount: 1), of: queue)
            _ = try await backend.send([ByteBuffer(string: "second")], to: queue, options: SendOptions())
            let stats = try await backend.stats(of: queue)
            figures.append("ready \(stats.ready), dead letters \(stats.deadLetterReady), dead-lettered \(stats.totals.deadLettered)")
            received += try await backend.receive(from: queue, max: 5, timeout: .zero, mode: .autoAcknowledge).map { String(buffer: $0.message.body) }
            // No claim left to expire in Redis's sweep index (see `run`).
            for name in [queue, QueueSettings().deadLetterQueue(of: queue)] { try await backend.delete(name) }
        }
        #expect(figures[0] == figures[1], "memory: \(figures[0]); redis: \(figures[1])")
        #expect(received == ["second", "second"])
    }
}

/// A memory and a Redis backend, each with its maintenance running as in a replica, and a driver
/// that runs one operation sequence on both. Their loggers are quiet: the sequences settle stale
/// claims on purpose, which the backends log as errors.
private final class BackendPair: Sendable {
    let memory: MemoryQueueBackend
    let redis: RedisQueueBackend
    private let client: RedisClient
    private let tasks: [Task<Void, Never>]

    init() throws {
        var logger = Logger(label: "equivalence")
        logger.logLevel = .critical
        let group = MultiThreadedEventLoopGroup.singleton
        memory = MemoryQueueBackend(eventLoop: group.next(), logger: logger)
        var configuration = try RedisConfiguration(url: try #require(TestEnvironment.redisURL))
        configuration.commandTimeout = .seconds(5)
        configuration.connectTimeout = .seconds(5)
        client = RedisClient(configuration: configuration, eventLoopGroup: group, logger: logger)
        redis = RedisQueueBackend(client: client, configuration: RedisQueueConfiguration(), eventLoop: group.next(), logger: logger)
        let (memory, redis) = (memory, redis)
        tasks = [Task { _ = try? await memory.run() }, Task { try? await redis.run() }]
    }

    func close() {
        for task in tasks { task.cancel() }
        client.close()
    }

    /// Runs `operations` on fresh queues of both backends and records an issue at the first step
    /// whose answers or figures differ, with the steps before it.
    func run(_ setup: BackendOperation.CaseSetup, _ operations: [BackendOperation]) async {
        let base = TestEnvironment.uniqueName("same")
        let names = Dictionary(
            uniqueKeysWithValues: BackendOperation.Role.allCases.map { role in
                let suffix = ["", "-dlq", "-alt", "-short"][role.rawValue]
                return (role, QueueName(base + suffix)!)
            }
        )
        let drivers = [Driver(memory, names: names, setup: setup), Driver(redis, names: names, setup: setup)]
        var trace = ["setup: \(setup)"]
        do {
            for driver in drivers { try await driver.setUp() }
            steps: for (index, operation) in operations.enumerated() {
                var answers: [String] = []
                for driver in drivers { answers.append(await driver.apply(operation)) }
                if operation.isTimed {
                    try await Task.sleep(for: .milliseconds(350))
                    for driver in drivers { await driver.maintain() }
                }
                var figures: [String] = []
                for driver in drivers { figures.append(await driver.figures(listing: operation.isList)) }
                trace.append("\(index): \(operation) -> \(answers[0])")
                guard answers[0] == answers[1], figures[0] == figures[1] else {
                    trace.removeLast()
                    Issue.record(
                        """
                        the backends disagree at step \(index): \(operation)
                        memory: \(answers[0])
                        redis:  \(answers[1])
                        memory figures: \(figures[0])
                        redis figures:  \(figures[1])
                        steps so far (memory's answers):
                        \(trace.joined(separator: "\n"))
                        """
                    )
                    break steps
                }
            }
        } catch {
            Issue.record("\(error) after \(trace.count) steps:\n\(trace.joined(separator: "\n"))")
        }
        // Nothing of the case may stay due in Redis's sweep indexes: a sweep round takes 100
        // queues, and other tests running beside this one count on theirs being among them.
        for driver in drivers { await driver.deleteQueues() }
    }
}

extension BackendOperation {
    fileprivate var isList: Bool {
        if case .list = self { return true }
        return false
    }
}

/// One backend's side of a run: what it answered so far, in terms both backends share.
private final class Driver {
    let backend: any ClaimingBackend
    let names: [BackendOperation.Role: QueueName]
    /// Bodies are `m1`, `m2`... in send order, the same on both sides.
    var bodyCounter = 0
    /// The body each message id was sent with (ids differ between backends, bodies do not).
    var bodies: [String: String] = [:]
    /// Every delivery received so far, settled or not, in order: steps pick them by index.
    var handles: [Delivery] = []

    let setup: BackendOperation.CaseSetup

    init(_ backend: any ClaimingBackend, names: [BackendOperation.Role: QueueName], setup: BackendOperation.CaseSetup) {
        self.backend = backend
        self.names = names
        self.setup = setup
    }

    /// Settings no step depends on the timing of: retries without their own delay come back at
    /// once (the default backoff of about a second could pass mid-case, or not).
    func setUp() async throws {
        for role in BackendOperation.Role.allCases {
            var settings = QueueSettings(
                maxReceiveCount: setup.maxReceiveCounts[role],
                retryBackoffBaseMilliseconds: 0,
                retryBackoffCapMilliseconds: 0
            )
            if role == .shortWindow { settings.dedupWindowMilliseconds = BackendOperation.shortMilliseconds }
            try await backend.updateSettings(settings, of: names[role]!)
        }
    }

    /// Deletes the case's queues: messages, settings, keys and their entries in the sweep indexes.
    func deleteQueues() async {
        for queue in names.values { _ = try? await backend.delete(queue) }
    }

    /// One maintenance round: due delayed messages become ready, expired claims come back, keys
    /// past their window are forgotten (for Redis, until its sweeps find nothing more due).
    func maintain() async {
        if let memory = backend as? MemoryQueueBackend {
            memory.maintain()
        } else if let redis = backend as? RedisQueueBackend {
            for _ in 0..<50 {
                let moved = await redis.promoteDueMessages() + redis.recoverExpiredClaims()
                if moved == 0 { break }
            }
        }
    }

    /// The operation's answer, as text both backends must produce alike.
    func apply(_ operation: BackendOperation) async -> String {
        do {
            return try await perform(operation)
        } catch let error as QueueError {
            return "error \(error.kind)"
        } catch {
            return "error \(error)"
        }
    }

    private func perform(_ operation: BackendOperation) async throws -> String {
        switch operation {
        case .send(let role, let count, let priority, let delay, let key):
            let delayDuration: Duration? = delay.map { $0 == .long ? .milliseconds(BackendOperation.longMilliseconds) : .zero }
            return try await send(count, to: role, options: SendOptions(delay: delayDuration, priority: priority, idempotencyKey: key))
        case .sendShortDelay(let role, let count, let priority):
            return try await send(count, to: role, options: SendOptions(delay: .milliseconds(BackendOperation.shortMilliseconds), priority: priority))
        case .sendKeyedShortWindow(let keys):
            var answers: [String] = []
            for key in keys { answers.append(try await send(1, to: .shortWindow, options: SendOptions(idempotencyKey: key))) }
            return answers.joined(separator: "; ")
        case .receive(let role, let max, let receiving):
            let mode: ReceiveMode
            switch receiving {
            case .take, .hold, .release: mode = .autoAcknowledge
            case .acknowledge: mode = .acknowledge(visibilityTimeout: nil)
            case .acknowledgeLong: mode = .acknowledge(visibilityTimeout: .milliseconds(BackendOperation.longMilliseconds))
            }
            let deliveries = try await backend.receive(from: names[role]!, max: max, timeout: .zero, mode: mode)
            var settled: [String] = []
            for delivery in deliveries {
                switch receiving {
                case .take: settled.append("completed \(try await backend.complete(delivery))")
                case .release: try await backend.release(delivery)
                default: break
                }
            }
            handles += deliveries
            return describe(deliveries) + (settled.isEmpty ? "" : " \(settled)")
        case .receiveShortVisibility(let role, let max):
            let deliveries = try await backend.receive(
                from: names[role]!,
                max: max,
                timeout: .zero,
                mode: .acknowledge(visibilityTimeout: .milliseconds(BackendOperation.shortMilliseconds))
            )
            handles += deliveries
            return describe(deliveries)
        case .acknowledge(let picks, let withUnknown):
            guard let first = handle(picks[0]) else { return "no handle" }
            var receipts = picks.compactMap { handle($0)?.receipt }
            if withUnknown { receipts.append(Receipt(messageID: MessageID.make(), claimToken: 1)) }
            return "acked \(try await backend.acknowledge(receipts, in: first.queue))"
        case .reject(let pick, let delay, let reason):
            guard let delivery = handle(pick) else { return "no handle" }
            let duration: Duration? = delay.flatMap { $0 == .backoff ? nil : $0 == .long ? .milliseconds(BackendOperation.longMilliseconds) : .zero }
            return "nacked \(try await backend.reject(delivery.receipt, in: delivery.queue, delay: duration, reason: reason))"
        case .rejectShortDelay(let pick):
            guard let delivery = handle(pick) else { return "no handle" }
            let nacked = try await backend.reject(
                delivery.receipt,
                in: delivery.queue,
                delay: .milliseconds(BackendOperation.shortMilliseconds),
                reason: nil
            )
            return "nacked \(nacked)"
        case .changeVisibility(let pick, let timer):
            guard let delivery = handle(pick) else { return "no handle" }
            let timeout: Duration = timer == .long ? .milliseconds(BackendOperation.longMilliseconds) : .zero
            return "changed \(try await backend.changeVisibility(delivery.receipt, in: delivery.queue, timeout: timeout))"
        case .changeVisibilityShort(let pick):
            guard let delivery = handle(pick) else { return "no handle" }
            let changed = try await backend.changeVisibility(
                delivery.receipt,
                in: delivery.queue,
                timeout: .milliseconds(BackendOperation.shortMilliseconds)
            )
            return "changed \(changed)"
        case .complete(let pick):
            guard let delivery = handle(pick) else { return "no handle" }
            return "completed \(try await backend.complete(delivery))"
        case .release(let pick):
            guard let delivery = handle(pick) else { return "no handle" }
            try await backend.release(delivery)
            return "released"
        case .configure(let role, let chosen):
            let queue = names[role]!
            let settings = QueueSettings(
                visibilityTimeoutMilliseconds: chosen.visibilityTimeoutMilliseconds,
                maxReceiveCount: setup.maxReceiveCounts[role],
                deadLetterQueue: chosen.usesAlternateDeadLetterQueue ? names[.alternate] : nil,
                retryBackoffBaseMilliseconds: chosen.retryBackoffMilliseconds,
                retryBackoffCapMilliseconds: chosen.retryBackoffMilliseconds,
                retentionMilliseconds: chosen.retentionMilliseconds,
                delayMilliseconds: chosen.delayMilliseconds,
                maxDepth: chosen.maxDepth,
                dedupWindowMilliseconds: role == .shortWindow ? BackendOperation.shortMilliseconds : chosen.dedupWindowMilliseconds
            )
            try settings.validate(for: queue)
            try await backend.updateSettings(settings, of: queue)
            return "configured"
        case .redrive(let max):
            return "moved \(try await backend.redrive(into: names[.main]!, max: max))"
        case .purge(let role):
            return "purged \(try await backend.purge(names[role]!))"
        case .delete(let role):
            return "deleted \(try await backend.delete(names[role]!))"
        case .list:
            return "listed"
        }
    }

    private func send(_ count: Int, to role: BackendOperation.Role, options: SendOptions) async throws -> String {
        let sentBodies = (0..<count).map { _ in
            bodyCounter += 1
            return "m\(bodyCounter)"
        }
        let sent = try await backend.send(sentBodies.map { ByteBuffer(string: $0) }, to: names[role]!, options: options)
        if sent.allSatisfy({ !$0.isDuplicate }) {
            for (message, body) in zip(sent, sentBodies) { bodies[message.id] = body }
        }
        return "sent " + sent.map { "\(bodies[$0.id] ?? "an unknown id")\($0.isDuplicate ? " (duplicate)" : "")" }.joined(separator: ", ")
    }

    private func handle(_ pick: Int) -> Delivery? {
        handles.isEmpty ? nil : handles[pick % handles.count]
    }

    private func role(of queue: QueueName) -> String {
        names.first { $0.value == queue }.map { "\($0.key)" } ?? "another queue"
    }

    private func describe(_ deliveries: [Delivery]) -> String {
        "received ["
            + deliveries.map { delivery in
                let message = delivery.message
                var text = "\(String(buffer: message.body)) count \(message.receiveCount) priority \(message.priority)"
                if let lastError = message.lastError { text += " error \(lastError)" }
                if let history = message.deadLetter {
                    text += " dead letter from \(role(of: history.sourceQueue)) after \(history.receiveCount) error \(history.lastError ?? "none")"
                }
                text += delivery.isAcknowledgedMode ? " acknowledged" : " auto"
                return text + " lease \(delivery.lease)"
            }.joined(separator: ", ") + "]"
    }

    /// The figures of every queue of the case; with `listing`, also the queue list and settings.
    func figures(listing: Bool) async -> String {
        do {
            var lines: [String] = []
            for role in BackendOperation.Role.allCases {
                let stats = try await backend.stats(of: names[role]!)
                let totals = stats.totals
                lines.append(
                    "\(role): ready \(stats.ready) in flight \(stats.inFlight) delayed \(stats.delayed) "
                        + "dead letters \(stats.deadLetterReady) "
                        + "oldest \(stats.oldestReadyAgeMilliseconds == nil ? "none" : "some") "
                        + "totals \(totals.enqueued)/\(totals.delivered)/\(totals.acknowledged)/"
                        + "\(totals.retried)/\(totals.deadLettered)/\(totals.expired)"
                )
                // A peek changes nothing (the next step's answers would differ) and sees what the
                // next receive would take, in its order. The byte bound lets 3 of these bodies in.
                let peeked = try await backend.peek(names[role]!, limit: 5, maximumBytes: 7)
                lines.append(
                    "\(role) peek: "
                        + peeked.map { message in
                            var text = "\(String(buffer: message.body)) count \(message.receiveCount) priority \(message.priority)"
                            if let lastError = message.lastError { text += " error \(lastError)" }
                            if let history = message.deadLetter {
                                text += " dead letter from \(self.role(of: history.sourceQueue)) after \(history.receiveCount)"
                            }
                            return text
                        }.joined(separator: ", "))
            }
            if listing {
                let ours = Set(names.values)
                let listed = try await backend.queues().filter { ours.contains($0.name) }
                lines.append("listed " + listed.map { "\(role(of: $0.name)) \($0.ready)/\($0.inFlight)/\($0.delayed)" }.joined(separator: ", "))
                for role in BackendOperation.Role.allCases {
                    let settings = try await backend.settings(of: names[role]!)
                    lines.append("\(role) settings: \(settings.deadLetterQueue.map { self.role(of: $0) } ?? "default dead letters") \(settings)")
                }
            }
            return lines.joined(separator: "; ")
        } catch {
            return "error \(error)"
        }
    }
}
