import Testing

@testable import SkiffRedis

/// The pool's decisions without sockets or clocks: which connection a command gets, when a slot
/// connects, backs off and reconnects, the bound on dedicated connections, and closing.
@Suite("Connection pool state machine")
struct ConnectionPoolStateMachineTests {
    final class FakeConnection: PoolableConnection, CustomStringConvertible {
        let name: String
        var isActive = true
        init(_ name: String) { self.name = name }
        var description: String { name }
    }

    typealias Machine = ConnectionPoolStateMachine<FakeConnection, String>

    static let startInstant = ContinuousClock.now

    /// The machine as the pool holds it (a reference, so that `#expect` can call its mutating
    /// methods), with a backoff of 100 ms times the attempt number plus one (no jitter).
    final class Pool {
        var machine: Machine

        init(slots: Int, blocking: Int = 2) {
            machine = Machine(sharedSlots: slots, maximumBlocking: blocking, backoff: { .milliseconds(100 * ($0 + 1)) })
        }

        /// Asks for a shared connection and, if it must connect, starts it as the pool does.
        func ask(at now: ContinuousClock.Instant = ConnectionPoolStateMachineTests.startInstant, local: Int? = nil) -> String {
            switch machine.sharedConnection(now: now, isLocal: { $0 == local }) {
            case .ready(let connection): return "ready \(connection)"
            case .wait(let pending): return "wait \(pending)"
            case .fail(let error): return "fail \(error.detail)"
            case .connect(let slot, let attempt):
                machine.startedConnecting(slot: slot, attempt: attempt, pending: "connect \(slot)#\(attempt)")
                return "connect \(slot)#\(attempt)"
            }
        }

        func connected(slot: Int, _ connection: FakeConnection) -> Machine.ConnectedDecision { machine.connected(slot: slot, connection) }
        func connectFailed(slot: Int, reason: String, now: ContinuousClock.Instant) -> Duration {
            machine.connectFailed(slot: slot, reason: reason, now: now)
        }
        func leaseBlocking() -> Machine.BlockingDecision { machine.leaseBlocking() }
        func blockingConnectFailed() { machine.blockingConnectFailed() }
        func returnBlocking(_ connection: FakeConnection, commandSucceeded: Bool) -> Bool {
            machine.returnBlocking(connection, commandSucceeded: commandSucceeded)
        }
        func close() -> (close: [FakeConnection], cancel: [String]) { machine.close() }
    }

    @Test func aCallerOnAnEventLoopGetsThatLoopsConnection() {
        let machine = Pool(slots: 2)
        #expect(machine.ask(local: 1) == "connect 1#0")
        #expect(machine.connected(slot: 1, FakeConnection("b")) == .keep(isReconnect: false))
        // Another caller on loop 0 connects its own slot rather than borrow loop 1's.
        #expect(machine.ask(local: 0) == "connect 0#0")
        #expect(machine.connected(slot: 0, FakeConnection("a")) == .keep(isReconnect: false))
        for _ in 0..<4 {
            #expect(machine.ask(local: 0) == "ready a")
            #expect(machine.ask(local: 1) == "ready b")
        }
        // Off every loop: round-robin over the live ones.
        let picks = Set((0..<4).map { _ in machine.ask() })
        #expect(picks == ["ready a", "ready b"])
        #expect(machine.machine.openConnections == 2)
    }

    @Test func callersShareAConnectInProgress() {
        let machine = Pool(slots: 1)
        #expect(machine.ask() == "connect 0#0")
        #expect(machine.ask() == "wait connect 0#0")
        #expect(machine.ask(local: 0) == "wait connect 0#0")
    }

    @Test func aFailedSlotBacksOffAndCallersFailAtOnceMeanwhile() {
        let machine = Pool(slots: 1)
        #expect(machine.ask() == "connect 0#0")
        #expect(machine.connectFailed(slot: 0, reason: "refused", now: Self.startInstant) == .milliseconds(100))
        #expect(machine.ask(at: Self.startInstant + .milliseconds(99)) == "fail Redis unavailable: refused")
        // Past the backoff: the next attempt, which backs off longer if it fails too.
        #expect(machine.ask(at: Self.startInstant + .milliseconds(100)) == "connect 0#1")
        let later = Self.startInstant + .milliseconds(100)
        #expect(machine.connectFailed(slot: 0, reason: "refused again", now: later) == .milliseconds(200))
        #expect(machine.ask(at: later + .milliseconds(199)) == "fail Redis unavailable: refused again")
        #expect(machine.ask(at: later + .milliseconds(200)) == "connect 0#2")
        // Success: the first connection of the slot is not a reconnect, and the attempts start over.
        #expect(machine.connected(slot: 0, FakeConnection("a")) == .keep(isReconnect: false))
        #expect(machine.ask() == "ready a")
    }

    @Test func aLiveSlotIsPreferredWhileAnotherBacksOff() {
        let machine = Pool(slots: 2)
        #expect(machine.ask(local: 0) == "connect 0#0")
        _ = machine.connectFailed(slot: 0, reason: "refused", now: Self.startInstant)
        #expect(machine.ask(local: 1) == "connect 1#0")
        _ = machine.connected(slot: 1, FakeConnection("b"))
        for _ in 0..<3 { #expect(machine.ask(local: 0) == "ready b") }
    }

    @Test func aClosedConnectionIsReplacedAndCountedAsAReconnect() {
        let machine = Pool(slots: 1)
        #expect(machine.ask() == "connect 0#0")
        let first = FakeConnection("a")
        _ = machine.connected(slot: 0, first)
        first.isActive = false
        #expect(machine.machine.openConnections == 0)
        #expect(machine.ask() == "connect 0#0")
        #expect(machine.connected(slot: 0, FakeConnection("a2")) == .keep(isReconnect: true))
        #expect(machine.ask() == "ready a2")
    }

    @Test func closingReturnsWhatToCloseAndCancelAndRefusesEverythingAfter() {
        let machine = Pool(slots: 2)
        #expect(machine.ask(local: 0) == "connect 0#0")
        let a = FakeConnection("a")
        _ = machine.connected(slot: 0, a)
        #expect(machine.ask(local: 1) == "connect 1#0")
        guard case .connect = machine.leaseBlocking() else { Issue.record("no blocking connect"); return }
        let idle = FakeConnection("idle")
        #expect(machine.returnBlocking(idle, commandSucceeded: true))
        let (close, cancel) = machine.close()
        #expect(Set(close.map(\.name)) == ["a", "idle"])
        #expect(cancel == ["connect 1#0"])
        #expect(machine.ask() == "fail \(RedisClientError.poolClosed.detail)")
        if case .fail(let error) = machine.leaseBlocking() { #expect(error == .poolClosed) } else { Issue.record("leased after close") }
        // The connect that was under way ends after the close: its connection is closed, not kept.
        #expect(machine.connected(slot: 1, FakeConnection("b")) == .close)
        #expect(machine.machine.openConnections == 0)
    }

    @Test func dedicatedConnectionsAreBoundedReusedAndDroppedAfterAFailure() {
        let machine = Pool(slots: 1, blocking: 2)
        guard case .connect = machine.leaseBlocking(), case .connect = machine.leaseBlocking() else {
            Issue.record("expected two connects")
            return
        }
        guard case .fail(let error) = machine.leaseBlocking() else {
            Issue.record("a third dedicated connection was lent")
            return
        }
        #expect(error.detail == "Redis unavailable: all 2 blocking connections are in use")
        // One connect failed: its place is free again.
        machine.blockingConnectFailed()
        #expect(machine.machine.blockingInUse == 1)
        guard case .connect = machine.leaseBlocking() else {
            Issue.record("the failed connect's place was not freed")
            return
        }
        // A connection whose command failed is not kept; one that succeeded is lent again.
        #expect(!machine.returnBlocking(FakeConnection("failed"), commandSucceeded: false))
        #expect(machine.returnBlocking(FakeConnection("good"), commandSucceeded: true))
        guard case .idle(let again) = machine.leaseBlocking() else {
            Issue.record("the idle connection was not reused")
            return
        }
        #expect(again.name == "good")
        // An idle connection that closed meanwhile is skipped.
        again.isActive = false
        #expect(!machine.returnBlocking(again, commandSucceeded: true))
        guard case .connect = machine.leaseBlocking() else {
            Issue.record("expected a new connect")
            return
        }
        #expect(machine.machine.blockingInUse == 1)
    }
}
