import NIOCore
import NIOPosix
import SkiffQueue
import Testing

@Suite("Waiter registry", .timeLimit(.minutes(1)))
struct WaiterRegistryTests {
    let registry = WaiterRegistry(eventLoop: MultiThreadedEventLoopGroup.singleton.next())
    let queue = uniqueQueue("waiters")

    private func delivery(_ text: String) -> Delivery {
        Delivery(
            queue: queue,
            message: QueueMessage(id: text, body: ByteBuffer(string: text), enqueuedAtMilliseconds: 0, receiveCount: 1),
            claimToken: 1,
            claimedAt: .now,
            lease: .seconds(30)
        )
    }

    private func waitForRegistration(_ count: Int) async throws {
        for _ in 0..<500 where registry.count(on: queue) < count { try await Task.sleep(for: .milliseconds(2)) }
        #expect(registry.count(on: queue) == count)
    }

    @Test func aReservedWaiterDoesNotTimeOutBeforeItsClaimReturns() async throws {
        let registry = self.registry, queue = self.queue
        // Long enough to be reserved on a loaded machine before it ends, short enough to pass.
        let waiting = Task { await registry.wait(on: queue, timeout: .milliseconds(400)) {} }
        try await waitForRegistration(1)
        let reservations = registry.reserveOldest(queue, max: 10)
        try #require(reservations.count == 1)
        #expect(registry.count(on: queue) == 0)
        try await Task.sleep(for: .milliseconds(800))  // past its deadline, claim still "in flight"
        #expect(registry.fulfil(reservations[0], with: delivery("m")))
        guard case .delivered(let got) = await waiting.value else {
            Issue.record("the message claimed for the waiter must reach it")
            return
        }
        #expect(got.message.id == "m")
    }

    @Test func unreservedWaitersGoBackToTheFrontOrTimeOut() async throws {
        let registry = self.registry, queue = self.queue
        let first = Task { await registry.wait(on: queue, timeout: .seconds(20)) {} }
        try await waitForRegistration(1)
        // Long enough to outlive the registrations on a loaded machine; it expires while reserved.
        let expiring = Task { await registry.wait(on: queue, timeout: .seconds(1)) {} }
        try await waitForRegistration(2)
        let last = Task { await registry.wait(on: queue, timeout: .seconds(20)) {} }
        try await waitForRegistration(3)
        let reservations = registry.reserveOldest(queue, max: 2)
        try await Task.sleep(for: .milliseconds(1_300))
        registry.unreserve(reservations)
        guard case .timedOut = await expiring.value else {
            Issue.record("a waiter whose deadline passed while reserved times out when unreserved")
            return
        }
        // The first waiter is at the front again, ahead of the one that never was reserved.
        registry.takeOldest(queue)?.resume(.delivered(delivery("a")))
        registry.takeOldest(queue)?.resume(.delivered(delivery("b")))
        guard case .delivered(let toFirst) = await first.value, case .delivered(let toLast) = await last.value else {
            Issue.record("both waiters get a message")
            return
        }
        #expect(toFirst.message.id == "a")
        #expect(toLast.message.id == "b")
    }

    /// A claim that came back empty leaves the waiter as it was: it still ends at its own deadline.
    @Test func aWaiterUnreservedBeforeItsDeadlineStillTimesOutOnTime() async throws {
        let registry = self.registry, queue = self.queue
        let start = ContinuousClock.now
        let waiting = Task { await registry.wait(on: queue, timeout: .milliseconds(600)) {} }
        try await waitForRegistration(1)
        for _ in 0..<3 {
            let reservations = registry.reserveOldest(queue, max: 10)
            try #require(reservations.count == 1)
            registry.unreserve(reservations)
        }
        guard case .timedOut = await waiting.value else {
            Issue.record("the waiter times out")
            return
        }
        // Not before its deadline (the timer measures from the registration, a little after `start`).
        #expect(ContinuousClock.now - start >= .milliseconds(600))
        #expect(registry.count(on: queue) == 0)
    }

    @Test func aWaiterCancelledWhileReservedEndsWithTheReservation() async throws {
        let registry = self.registry, queue = self.queue
        let waiting = Task { await registry.wait(on: queue, timeout: .seconds(20)) {} }
        try await waitForRegistration(1)
        let reservations = registry.reserveOldest(queue, max: 1)
        waiting.cancel()
        try await Task.sleep(for: .milliseconds(20))
        registry.unreserve(reservations)
        guard case .cancelled = await waiting.value else {
            Issue.record("cancelled while reserved")
            return
        }
        #expect(registry.totalCount == 0)
    }

    @Test func shutdownWhileReservedLeavesTheClaimToBePutBack() async throws {
        let registry = self.registry, queue = self.queue
        let waiting = Task { await registry.wait(on: queue, timeout: .seconds(20)) {} }
        try await waitForRegistration(1)
        let reservations = registry.reserveOldest(queue, max: 1)
        try #require(reservations.count == 1)
        registry.resolveAll(with: .timedOut)
        #expect(registry.fulfil(reservations[0], with: delivery("m")) == false)
        guard case .timedOut = await waiting.value else {
            Issue.record("shutdown ends the wait")
            return
        }
        #expect(registry.totalCount == 0)
    }
}
