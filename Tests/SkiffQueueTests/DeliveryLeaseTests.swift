import Logging
import NIOCore
import SkiffQueue
import SkiffTestSupport
import Synchronization
import Testing

/// The one delivery lifecycle every transport runs (``QueueBackend/deliver(_:context:)`` and
/// ``DeliveryLease``), on every backend: a lease settles once, whichever way comes first; a dropped
/// lease gives its messages back; a fenced-off one hands nothing out; a batch stops at its byte
/// limit and leaves the rest untouched at the head.
@Suite("Delivery lease", .timeLimit(.minutes(2))) struct DeliveryLeaseTests {
    private let context = DeliveryContext(logger: Logger(label: "lease-test"))

    private func body(_ index: Int, bytes: Int = 1000) -> ByteBuffer {
        ByteBuffer(string: "\"\(index)" + String(repeating: "y", count: bytes - 3) + "\"")
    }

    @Test(arguments: BackendKind.available) func aLeaseSettlesOnceWhicheverWayComesFirst(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, queue) = (fixture.backend, uniqueQueue())
        _ = try await backend.send([body(0), body(1)], to: queue, options: SendOptions())
        let delivered = try #require(try await backend.deliver(DeliveryRequest(queue: queue), context: context))
        #expect(delivered.deliveries.map(\.message.receiveCount) == [1])
        #expect(try await delivered.isStillHeld())
        #expect(await delivered.delivered() == 1)
        await delivered.release()
        #expect(await delivered.delivered() == 0)
        let released = try #require(try await backend.deliver(DeliveryRequest(queue: queue), context: context))
        await released.release()
        #expect(await released.delivered() == 0)
        let stats = try await backend.stats(of: queue)
        #expect(stats.ready == 1 && stats.inFlight == 0)
        #expect(stats.totals.acknowledged == 1)
        // Released with its receive taken back: the next consumer is its first.
        let again = try #require(try await backend.deliver(DeliveryRequest(queue: queue), context: context))
        #expect(again.deliveries[0].message.receiveCount == 1)
        #expect(String(buffer: again.deliveries[0].message.body).hasPrefix("\"1"))
        #expect(await again.delivered() == 1)
        #expect(try await backend.deliver(DeliveryRequest(queue: queue), context: context) == nil)
    }

    @Test(arguments: BackendKind.available) func aDroppedLeaseGivesItsMessagesBackAtOnce(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, queue) = (fixture.backend, uniqueQueue())
        _ = try await backend.send([body(0), body(1), body(2)], to: queue, options: SendOptions())
        let settlements = SettlementTasks(logger: Logger(label: "lease-test"))
        let dropping = DeliveryContext(settlements: settlements, logger: Logger(label: "lease-test"))
        do {
            let lease = try await backend.deliver(DeliveryRequest(queue: queue, max: 3), context: dropping)
            #expect(lease?.deliveries.count == 3)
        }
        let stats = try await eventually(until: { $0.ready == 3 }) { try await backend.stats(of: queue) }
        #expect(stats.ready == 3 && stats.inFlight == 0)
        // The release task's bookkeeping ends a moment after its messages are back.
        #expect(try await eventually(until: { $0 == 0 }) { settlements.running } == 0)
    }

    @Test(arguments: BackendKind.available) func aClaimLostToAStallIsNeverHandedOut(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind, claimLease: .seconds(2))
        defer { fixture.close() }
        let (backend, queue) = (fixture.backend, uniqueQueue())
        _ = try await backend.send(body(0), to: queue)
        let lease = try #require(try await backend.deliver(DeliveryRequest(queue: queue), context: context))
        // The replica "stalls" past the lease; the claim is recovered and taken by another consumer.
        try await Task.sleep(for: .milliseconds(2_300))
        await fixture.recover()
        let other = try #require(try await backend.deliver(DeliveryRequest(queue: queue), context: context))
        #expect(try await lease.isStillHeld() == false)
        // Abandoned: settling it touches nothing, and the other consumer's claim stands.
        #expect(await lease.delivered() == 0)
        await lease.release()
        #expect(try await other.isStillHeld())
        #expect(await other.delivered() == 1)
        #expect(try await backend.stats(of: queue).totals.acknowledged == 1)
    }

    /// Redis counts the stored envelope (the body and about 60 bytes), memory the body: with
    /// 1000-byte bodies and a 2500-byte limit both take two.
    @Test(arguments: BackendKind.available) func aBatchStopsAtItsByteLimitAndLeavesTheRestUntouched(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, queue) = (fixture.backend, uniqueQueue())
        _ = try await backend.send((0..<6).map { body($0) }, to: queue, options: SendOptions())
        let two = try #require(try await backend.deliver(DeliveryRequest(queue: queue, max: 5, maxBytes: 2500), context: context))
        #expect(two.deliveries.count == 2)
        #expect(two.stoppedAtByteLimit)
        // The first message always fits.
        let one = try #require(try await backend.deliver(DeliveryRequest(queue: queue, max: 5, maxBytes: 1), context: context))
        #expect(one.deliveries.count == 1)
        #expect(one.stoppedAtByteLimit)
        // What stopped the claims was never received, and is next in line.
        let rest = try #require(try await backend.deliver(DeliveryRequest(queue: queue, max: 5, maxBytes: 1 << 20), context: context))
        #expect(!rest.stoppedAtByteLimit)
        #expect(rest.deliveries.map { String(String(buffer: $0.message.body).prefix(2)) } == ["\"3", "\"4", "\"5"])
        #expect(rest.deliveries.allSatisfy { $0.message.receiveCount == 1 })
        for lease in [two, one, rest] { await lease.delivered() }
        #expect(try await backend.stats(of: queue).ready == 0)
    }

    /// A batch whose first message had to be waited for lingers for the rest of a burst, within
    /// the byte limit.
    @Test(arguments: BackendKind.available) func aWaitingBatchTakesTheBurstThatWokeIt(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, queue) = (fixture.backend, uniqueQueue())
        let request = DeliveryRequest(queue: queue, max: 10, maxBytes: 2500, timeout: .seconds(10), linger: .milliseconds(200))
        async let waited = backend.deliver(request, context: context)
        try await eventually { await backend.health().details["waiters"] == "1" }
        _ = try await backend.send([body(0), body(1), body(2)], to: queue, options: SendOptions())
        let lease = try #require(try await waited)
        #expect(lease.deliveries.count == 2)
        #expect(lease.stoppedAtByteLimit)
        await lease.delivered()
        #expect(try await backend.stats(of: queue).ready == 1)
    }

    /// A batch cancelled while it lingers (its client left) gives back the message it waited for
    /// and the ones its lingering claim took, at once, not after their lease.
    @Test(arguments: BackendKind.available) func aBatchCancelledWhileItLingersGivesEverythingBack(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let (backend, queue) = (fixture.backend, uniqueQueue())
        let request = DeliveryRequest(queue: queue, max: 10, timeout: .seconds(10), linger: .seconds(30))
        let context = self.context
        let waiting = Task { try await backend.deliver(request, context: context) }
        try await eventually { await backend.health().details["waiters"] == "1" }
        _ = try await backend.send([body(0), body(1)], to: queue, options: SendOptions())
        // The waiter holds the first; the second is ready for the lingering claim.
        _ = try await eventually(until: { $0.inFlight == 1 }) { try await backend.stats(of: queue) }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        let stats = try await eventually(timeout: .seconds(5), until: { $0.ready == 2 && $0.inFlight == 0 }) { try await backend.stats(of: queue) }
        #expect(stats.ready == 2 && stats.inFlight == 0, "\(stats)")
    }

    @Test(arguments: BackendKind.available) func aWaitThatEndsEmptyCountsAsAWaitAndReturnsNothing(kind: BackendKind) async throws {
        let fixture = try await BackendFixture.make(kind)
        defer { fixture.close() }
        let observer = CountingObserver()
        let waiting = DeliveryContext(observer: observer, logger: Logger(label: "lease-test"))
        #expect(try await fixture.backend.deliver(DeliveryRequest(queue: uniqueQueue(), timeout: .milliseconds(50)), context: waiting) == nil)
        #expect(try await fixture.backend.deliver(DeliveryRequest(queue: uniqueQueue(), max: 3, timeout: .milliseconds(50)), context: waiting) == nil)
        #expect(try await fixture.backend.deliver(DeliveryRequest(queue: uniqueQueue()), context: waiting) == nil)
        #expect(observer.counts.withLock { $0 } == (started: 2, finished: 2))
    }
}

private final class CountingObserver: DeliveryObserver {
    let counts = Mutex((started: 0, finished: 0))
    func waitStarted() { counts.withLock { $0.started += 1 } }
    func waitFinished() { counts.withLock { $0.finished += 1 } }
}
