import NIOCore
import SkiffQueue
import SkiffTestSupport
import Testing

/// The console's two reads: a message looked up by id wherever it is, and a queue's history of
/// samples, shared by every replica (the first sample of an interval wins).
@Suite("Message lookup and queue history", .timeLimit(.minutes(2)))
struct QueueHistoryAndLookupTests {
    /// A lookup finds a message ready, delayed (sent with a delay, or back from a nack with one)
    /// and in flight, with its receive count and last nack reason, changes nothing, and finds
    /// nothing once it is acked or for an id that never was.
    @Test(arguments: BackendKind.available)
    func aLookupFindsAMessageInEveryStateAndChangesNothing(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, queue) = (fixture.backend, uniqueQueue("lookup"))
        func state(_ id: String) async throws -> String {
            switch try await backend.lookUp(id, in: queue) {
            case .found(let message, let state):
                #expect(message.id == id)
                return "\(state.rawValue) \(String(buffer: message.body)) \(message.receiveCount)" + (message.lastError.map { " " + $0 } ?? "")
            case .notFound(let searchedAll):
                return searchedAll ? "none" : "none yet"
            }
        }
        #expect(try await state("01JD3Z5X1V0000000000000000") == "none")
        let first = try await backend.send(#"{"n":1}"#, to: queue)
        let second = try await backend.send(#"{"n":2}"#, to: queue, options: SendOptions(priority: 7))
        let later = try await backend.send(#"{"n":3}"#, to: queue, options: SendOptions(delay: .seconds(3600)))
        #expect(try await state(first.id) == #"ready {"n":1} 0"#)
        #expect(try await state(second.id) == #"ready {"n":2} 0"#)
        #expect(try await state(later.id) == #"delayed {"n":3} 0"#)
        // The id's neighbours are not it: a prefix or a longer id is another message.
        #expect(try await state(String(first.id.dropLast())) == "none")
        #expect(try await state(first.id + "0") == "none")
        #expect(try await state("a|b") == "none")

        let claimed = try #require(try await backend.receiveAcknowledged(from: queue).first)
        #expect(claimed.message.id == second.id)
        #expect(try await state(second.id) == #"inFlight {"n":2} 1"#)
        #expect(try await backend.reject(claimed.receipt, in: queue, delay: .seconds(3600), reason: "not yet"))
        #expect(try await state(second.id) == #"delayed {"n":2} 1 not yet"#)

        // Nothing changed: the next receive is the first message's first.
        let next = try #require(try await backend.receiveAcknowledged(from: queue).first)
        #expect(next.message.id == first.id && next.message.receiveCount == 1)
        #expect(try await backend.acknowledge([next.receipt], in: queue) == [true])
        #expect(try await state(first.id) == "none")
        let stats = try await backend.stats(of: queue)
        #expect((stats.ready, stats.inFlight, stats.delayed) == (0, 0, 2))
        try await backend.delete(queue)
    }

    /// A lookup reads at most `maximumScanned` ready and delayed messages (a Redis script has no
    /// index by id; the memory backend holds its lock no longer), and says so when the message
    /// may be further back; in flight, a message is found wherever it was.
    @Test(arguments: BackendKind.available)
    func aLookupPastItsBoundSaysTheSearchStopped(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, queue) = (fixture.backend, uniqueQueue("lookup-bound"))
        let head = try await backend.send("0", to: queue)
        for _ in 0..<(MessageLookup.maximumScanned / 1000) {
            _ = try await backend.send(Array(repeating: ByteBuffer(string: "1"), count: 1000), to: queue, options: SendOptions())
        }
        let tail = try await backend.send("2", to: queue)
        for id in [tail.id, "01JD3Z5X1V0000000000000000"] {
            guard case .notFound(let searchedAll) = try await backend.lookUp(id, in: queue) else {
                Issue.record("found \(id) past the bound")
                continue
            }
            #expect(!searchedAll)
        }
        guard case .found(_, .ready) = try await backend.lookUp(head.id, in: queue) else {
            Issue.record("the head was not found ready")
            return
        }
        let claimed = try #require(try await backend.receiveAcknowledged(from: queue).first)
        #expect(claimed.message.id == head.id)
        guard case .found(_, .inFlight) = try await backend.lookUp(head.id, in: queue) else {
            Issue.record("an in-flight message was not found by its id")
            return
        }
        try await backend.delete(queue)
    }

    /// Every replica records a sample per interval; the first one of an interval is kept, the
    /// others are dropped, and a later interval adds one after it. A deleted queue has no history.
    /// (Keys of its own: the replicas of other tests sample every queue they see.)
    @Test(arguments: BackendKind.available)
    func theFirstSampleOfAnIntervalIsKeptAndDeleteForgetsThem(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind, replicas: 2, keyPrefix: TestEnvironment.uniqueName("history"))
        defer { fixture.close() }
        let queue = uniqueQueue("history")
        let (one, other) = (fixture.replicas[0], fixture.replicas[fixture.replicas.count - 1])
        #expect(try await one.history(of: queue).isEmpty)
        _ = try await one.send("1", to: queue)
        let first = QueueHistorySample(try await one.stats(of: queue))
        // An hour-long interval: the second replica's sample falls in the same one.
        try await one.recordHistory(first, of: queue, interval: .seconds(3600))
        try await other.recordHistory(QueueHistorySample(ready: 99), of: queue, interval: .seconds(3600))
        let kept = try await other.history(of: queue)
        #expect(kept.count == 1)
        #expect(kept.first?.ready == 1 && kept.first?.enqueued == 1)
        #expect(kept.first.map { $0.atMilliseconds % 3_600_000 } == 0)
        // Recorded at a moment in its interval, by the backend's clock.
        #expect(kept.first.map { $0.measuredAtMilliseconds >= $0.atMilliseconds && $0.measuredAtMilliseconds < $0.atMilliseconds + 3_600_000 } == true)

        // A short interval starts later than the hour's, so it comes after it.
        try await other.recordHistory(QueueHistorySample(ready: 2, enqueued: 5), of: queue, interval: .milliseconds(100))
        let both = try await one.history(of: queue)
        #expect(both.map(\.ready) == [1, 2])
        #expect(both.map(\.enqueued) == [1, 5])
        #expect(both[0].atMilliseconds < both[1].atMilliseconds)

        try await one.delete(queue)
        #expect(try await other.history(of: queue).isEmpty)
        // A sample that raced the deletion does not bring the history back.
        try await other.recordHistory(QueueHistorySample(ready: 3), of: queue, interval: .milliseconds(100))
        #expect(try await one.history(of: queue).isEmpty)
    }

    /// On the memory backend, whose clock a test can move: samples older than the window are
    /// forgotten, and a history holds at most `capacity` of them, the newest.
    @Test func aHistoryKeepsTheLastHourAndAtMostItsCapacity() async throws {
        let fixture = try await BackendFixture.make(.memory)
        defer { fixture.close() }
        let (backend, clock, queue) = (fixture.backend, try #require(fixture.wallClock), uniqueQueue("history"))
        // Only the steps below move it: real time crossing a second would make one step two.
        clock.freeze()
        // A queue that does not exist gets no history (one deleted since its figures were read).
        try await backend.recordHistory(QueueHistorySample(ready: 1), of: queue, interval: .seconds(1))
        #expect(try await backend.history(of: queue).isEmpty)
        _ = try await backend.send("1", to: queue)
        let step: Int64 = 1000
        for index in 0..<(QueueHistorySample.capacity + 10) {
            try await backend.recordHistory(QueueHistorySample(ready: index), of: queue, interval: .milliseconds(step))
            clock.advance(by: step)
        }
        let samples = try await backend.history(of: queue)
        #expect(samples.count == QueueHistorySample.capacity)
        #expect(samples.first?.ready == 10)
        #expect(samples.last?.ready == QueueHistorySample.capacity + 9)
        #expect(zip(samples, samples.dropFirst()).allSatisfy { $1.atMilliseconds - $0.atMilliseconds == step })

        // Past the window, only what is younger than an hour remains.
        clock.advance(by: QueueHistorySample.windowMilliseconds - 5 * step)
        #expect(try await backend.history(of: queue).count == 4)
        clock.advance(by: 5 * step)
        #expect(try await backend.history(of: queue).isEmpty)
    }
}
