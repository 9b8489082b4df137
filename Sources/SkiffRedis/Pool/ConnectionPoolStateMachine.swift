/// How long to wait before the next connect after `attempt` failed ones (0 is the first): 50 ms,
/// 100 ms, ... capped at 2 s, with jitter so that replicas do not reconnect in step.
enum RedisBackoff {
    static func delay(attempt: Int) -> Duration {
        let base = min(2_000, 50 << min(attempt, 6))
        let jitter = Int.random(in: 0...(base / 4))
        return .milliseconds(base - base / 8 + jitter)
    }
}

/// What the pool needs to know of a connection.
protocol PoolableConnection: AnyObject {
    /// The channel is open (a closed one is replaced, never lent).
    var isActive: Bool { get }
}

extension RedisConnection: PoolableConnection {}

/// The decisions of ``RedisConnectionPool``, apart from sockets, tasks and locks (as valkey-swift
/// keeps its `PoolStateMachine` apart from its pool): which shared connection a command gets,
/// when a slot connects, backs off or reconnects, how many dedicated connections are lent for
/// blocking commands, and what closing leaves to close. The pool holds it under a lock, feeds it
/// events and carries out what it answers; time comes in as an argument, so its tests need no clock.
///
/// `Pending` is what callers wait on while a slot connects (the pool's connect task).
struct ConnectionPoolStateMachine<Connection: PoolableConnection, Pending> {
    enum Slot {
        case empty
        case connecting(Pending, attempt: Int)
        case connected(Connection)
        case failed(String, retryAt: ContinuousClock.Instant, attempt: Int)
    }

    /// What a caller asking for a shared connection does.
    enum SharedDecision {
        case ready(Connection)
        /// Another caller's connect is under way on a slot: wait for it.
        case wait(Pending)
        /// Open a connection for this slot, then report ``startedConnecting(slot:pending:)`` at once
        /// (under the same lock) and ``connected(slot:_:)`` or ``connectFailed(slot:reason:now:)``
        /// when it ends.
        case connect(slot: Int, attempt: Int)
        case fail(RedisClientError)
    }

    /// What to do with a connection that has just opened.
    enum ConnectedDecision: Equatable {
        /// It is the slot's; `isReconnect` when the slot had a connection before (counted).
        case keep(isReconnect: Bool)
        /// The pool closed meanwhile: close it.
        case close
    }

    enum BlockingDecision {
        case idle(Connection)
        /// Open a dedicated connection; report ``blockingConnectFailed()`` if that fails.
        case connect
        case fail(RedisClientError)
    }

    private(set) var slots: [Slot]
    private var next = 0
    private var idleBlocking: [Connection] = []
    private(set) var blockingInUse = 0
    let maximumBlocking: Int
    private(set) var isClosed = false
    /// Slots that had a connection before: a new connection there is a reconnect.
    private var everConnected: Set<Int> = []
    /// How long a slot waits after its `attempt`-th failed connect (0 is the first).
    private let backoff: (Int) -> Duration

    init(sharedSlots: Int, maximumBlocking: Int, backoff: @escaping (Int) -> Duration = RedisBackoff.delay(attempt:)) {
        self.slots = Array(repeating: .empty, count: max(1, sharedSlots))
        self.maximumBlocking = maximumBlocking
        self.backoff = backoff
    }

    /// Open connections: shared ones plus blocking ones lent out or idle.
    var openConnections: Int {
        slots.reduce(0) { count, slot in
            if case .connected(let connection) = slot, connection.isActive { return count + 1 }
            return count
        } + idleBlocking.count + blockingInUse
    }

    // MARK: Shared connections

    /// A shared connection for a caller. One on the caller's own event loop (`isLocal(slot)`) is
    /// preferred, since its command and reply then never leave the thread; otherwise any live one,
    /// round-robin; otherwise a slot that is connecting, empty, or whose backoff has passed. While
    /// every slot backs off, callers fail at once instead of queueing.
    mutating func sharedConnection(now: ContinuousClock.Instant, isLocal: (Int) -> Bool) -> SharedDecision {
        if isClosed { return .fail(.poolClosed) }
        let count = slots.count
        let start = next
        next &+= 1
        for offset in 0..<count {
            let index = (start + offset) % count
            guard isLocal(index) else { continue }
            switch slots[index] {
            case .connected(let connection) where connection.isActive: return .ready(connection)
            case .empty: return .connect(slot: index, attempt: 0)
            default: continue
            }
        }
        for offset in 0..<count {
            if case .connected(let connection) = slots[(start + offset) % count], connection.isActive {
                return .ready(connection)
            }
        }
        for offset in 0..<count {
            let index = (start + offset) % count
            switch slots[index] {
            case .connecting(let pending, _):
                return .wait(pending)
            case .failed(_, let retryAt, let attempt) where retryAt <= now:
                return .connect(slot: index, attempt: attempt + 1)
            case .empty, .connected:
                // Empty, or its connection has closed.
                return .connect(slot: index, attempt: 0)
            case .failed:
                continue
            }
        }
        if case .failed(let reason, _, _) = slots[start % count] { return .fail(.unavailable(reason)) }
        return .fail(.unavailable("no connection"))
    }

    /// The connect a `.connect` decision asked for is under way.
    mutating func startedConnecting(slot: Int, attempt: Int, pending: Pending) {
        slots[slot] = .connecting(pending, attempt: attempt)
    }

    mutating func connected(slot: Int, _ connection: Connection) -> ConnectedDecision {
        guard !isClosed else { return .close }
        slots[slot] = .connected(connection)
        return .keep(isReconnect: !everConnected.insert(slot).inserted)
    }

    /// The slot's connect failed: it backs off. Returns how long.
    mutating func connectFailed(slot: Int, reason: String, now: ContinuousClock.Instant) -> Duration {
        var attempt = 0
        if case .connecting(_, let current) = slots[slot] { attempt = current }
        let wait = backoff(attempt)
        if !isClosed { slots[slot] = .failed(reason, retryAt: now + wait, attempt: attempt) }
        return wait
    }

    // MARK: Dedicated connections

    /// A dedicated connection for a blocking command: an idle one, or a new one within the bound.
    mutating func leaseBlocking() -> BlockingDecision {
        if isClosed { return .fail(.poolClosed) }
        while let connection = idleBlocking.popLast() {
            if connection.isActive {
                blockingInUse += 1
                return .idle(connection)
            }
        }
        guard blockingInUse < maximumBlocking else {
            return .fail(.unavailable("all \(maximumBlocking) blocking connections are in use"))
        }
        blockingInUse += 1
        return .connect
    }

    mutating func blockingConnectFailed() {
        blockingInUse -= 1
    }

    /// A dedicated connection comes back. `true`: it is kept for the next lease; `false`: close it
    /// (its command failed in some way, it closed, or the pool did).
    mutating func returnBlocking(_ connection: Connection, commandSucceeded: Bool) -> Bool {
        blockingInUse -= 1
        guard commandSucceeded, !isClosed, connection.isActive else { return false }
        idleBlocking.append(connection)
        return true
    }

    // MARK: Closing

    /// Closes the pool: what is open is returned to be closed, what is connecting to be cancelled.
    /// Later requests fail with ``RedisClientError/poolClosed``.
    mutating func close() -> (close: [Connection], cancel: [Pending]) {
        isClosed = true
        var open = idleBlocking
        var pending: [Pending] = []
        for slot in slots {
            switch slot {
            case .connected(let connection): open.append(connection)
            case .connecting(let task, _): pending.append(task)
            case .empty, .failed: break
            }
        }
        slots = Array(repeating: .empty, count: slots.count)
        idleBlocking = []
        return (open, pending)
    }
}
