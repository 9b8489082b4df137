public import NIOCore
import SkiffSupport
import Synchronization

/// How a wait for a message ended.
public enum WaitOutcome: Sendable {
    case delivered(Delivery)
    case timedOut
    case cancelled
    case failed(any Error)
}

extension WaitOutcome {
    /// The delivery a wait ended with, or `nil` if it timed out. A delivery handed over just as the
    /// waiting task was cancelled (its client left) is given back at once with `release`.
    public func delivery(releasingIfCancelled release: (Delivery) async throws -> Void) async throws -> Delivery? {
        switch self {
        case .delivered(let delivery):
            if Task.isCancelled {
                try await release(delivery)
                throw CancellationError()
            }
            return delivery
        case .timedOut: return nil
        case .cancelled: throw CancellationError()
        case .failed(let error): throw error
        }
    }
}

/// The consumers waiting on this replica, per queue, oldest first.
///
/// Backends hand claimed messages to the oldest waiter with ``takeOldest(_:)``. Each waiter has
/// a timer on an event loop (millisecond precise, and cheap for tens of thousands of waiters),
/// and is removed exactly once: by a hand-off, its timer, its task's cancellation or a failure.
public final class WaiterRegistry: Sendable {
    private struct Entry {
        var continuation: CheckedContinuation<WaitOutcome, Never>?
        var cancelled = false
        var timer: Scheduled<Void>?
        var deadline: NIODeadline
        /// How the message handed to this waiter is to be claimed.
        let mode: ReceiveMode
        /// Counted for a claim in flight: it neither times out nor leaves until the claim returns,
        /// so the message claimed for it is never orphaned (which would hide the queue's head).
        var reserved = false
    }

    /// A waiter set aside for a claim in flight (see ``reserveOldest(_:max:)``).
    public struct Reservation: Sendable {
        fileprivate let queue: QueueName
        fileprivate let id: UInt64
        /// The receive mode the waiter asked for: claim its message accordingly.
        public let mode: ReceiveMode
    }

    private struct Waiters {
        var order = CircularBuffer<UInt64>()
        var entries: [UInt64: Entry] = [:]
    }

    private struct State {
        var queues: [QueueName: Waiters] = [:]
        var nextID: UInt64 = 0
        var total = 0
    }

    /// A waiter taken out of the registry: resume it outside any lock.
    public struct TakenWaiter: Sendable {
        fileprivate let continuation: CheckedContinuation<WaitOutcome, Never>
        fileprivate let timer: Scheduled<Void>?
        /// The receive mode the waiter asked for.
        public let mode: ReceiveMode

        public func resume(_ outcome: WaitOutcome) {
            timer?.cancel()
            continuation.resume(returning: outcome)
        }
    }

    private let state = Mutex(State())
    private let eventLoop: any EventLoop

    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Waits for a hand-off on `queue` for at most `timeout`.
    ///
    /// `onRegistered` runs once the waiter can receive hand-offs: the place to check for messages
    /// that arrived before the registration, so none is missed.
    public func wait(
        on queue: QueueName,
        timeout: Duration,
        mode: ReceiveMode = .autoAcknowledge,
        onRegistered: @Sendable () -> Void
    ) async -> WaitOutcome {
        let id = state.withLock { state -> UInt64 in
            state.nextID &+= 1
            let id = state.nextID
            state.queues[queue, default: Waiters()].entries[id] = Entry(deadline: .now() + .nanoseconds(timeout.nanoseconds), mode: mode)
            return id
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<WaitOutcome, Never>) in
                let registered = state.withLock { state -> Bool in
                    guard let entry = state.queues[queue]?.entries[id], !entry.cancelled else {
                        state.queues[queue]?.entries[id] = nil
                        return false
                    }
                    state.queues[queue]?.entries[id]?.continuation = continuation
                    state.queues[queue]?.order.append(id)
                    state.total += 1
                    return true
                }
                guard registered else {
                    continuation.resume(returning: .cancelled)
                    return
                }
                let timer = armTimer(queue: queue, id: id, in: timeout)
                let stillWaiting = state.withLock { state -> Bool in
                    guard state.queues[queue]?.entries[id] != nil else { return false }
                    state.queues[queue]?.entries[id]?.timer = timer
                    return true
                }
                if stillWaiting { onRegistered() } else { timer.cancel() }
            }
        } onCancel: {
            self.resolve(queue: queue, id: id, with: .cancelled)
        }
    }

    private func armTimer(queue: QueueName, id: UInt64, in timeout: Duration) -> Scheduled<Void> {
        eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) { [weak self] () -> Void in
            self?.resolve(queue: queue, id: id, with: .timedOut)
        }
    }

    /// Sets aside up to `max` of the oldest waiters on `queue` for a claim about to be made for them.
    ///
    /// Each reservation must end with ``fulfil(_:with:)`` or ``unreserve(_:)``.
    public func reserveOldest(_ queue: QueueName, max: Int) -> [Reservation] {
        state.withLock { state in
            // Taken out and put back, so the mutation does not copy every entry (copy-on-write).
            guard var waiters = state.queues.removeValue(forKey: queue) else { return [] }
            var reservations: [Reservation] = []
            while reservations.count < max, let id = waiters.order.popFirst() {
                guard let entry = waiters.entries[id], entry.continuation != nil, !entry.reserved else { continue }
                // The timer stays armed: if it fires during the claim it is ignored, and
                // `unreserve` ends a waiter whose deadline passed (cheaper than cancelling and
                // re-arming every reserved waiter's timer on every claim).
                waiters.entries[id]?.reserved = true
                reservations.append(Reservation(queue: queue, id: id, mode: entry.mode))
            }
            state.queues[queue] = waiters
            return reservations
        }
    }

    /// Hands `delivery` to a reserved waiter. `false` if the waiter is gone (the registry was
    /// shut down or failed meanwhile): the caller must put the message back.
    public func fulfil(_ reservation: Reservation, with delivery: Delivery) -> Bool {
        let taken = state.withLock { state -> TakenWaiter? in
            guard let entry = state.queues[reservation.queue]?.entries[reservation.id], entry.reserved,
                let continuation = entry.continuation, var waiters = state.queues.removeValue(forKey: reservation.queue)
            else { return nil }
            defer { Self.store(waiters, for: reservation.queue, in: &state) }
            waiters.entries[reservation.id] = nil
            state.total -= 1
            return TakenWaiter(continuation: continuation, timer: entry.timer, mode: entry.mode)
        }
        guard let taken else { return false }
        // A waiter whose task was cancelled while reserved still gets it; its receive gives it back.
        taken.resume(.delivered(delivery))
        return true
    }

    /// Ends reservations that got no message: back at the front of the line, in their order, unless
    /// their deadline passed (they time out now) or their task was cancelled meanwhile.
    public func unreserve(_ reservations: [Reservation]) {
        guard let queue = reservations.first?.queue else { return }
        let now = NIODeadline.now()
        var ended: [(TakenWaiter, WaitOutcome)] = []
        state.withLock { state in
            guard var waiters = state.queues.removeValue(forKey: queue) else { return }
            for reservation in reservations.reversed() {
                guard let entry = waiters.entries[reservation.id], entry.reserved, let continuation = entry.continuation else { continue }
                if entry.cancelled || entry.deadline <= now {
                    waiters.entries[reservation.id] = nil
                    state.total -= 1
                    ended.append((TakenWaiter(continuation: continuation, timer: entry.timer, mode: entry.mode), entry.cancelled ? .cancelled : .timedOut))
                } else {
                    // Its timer is still armed (it fires at the deadline, which has not come).
                    waiters.entries[reservation.id]?.reserved = false
                    waiters.order.prepend(reservation.id)
                }
            }
            Self.store(waiters, for: queue, in: &state)
        }
        for (waiter, outcome) in ended { waiter.resume(outcome) }
    }

    /// Removes and returns the oldest waiter on `queue`, if any.
    public func takeOldest(_ queue: QueueName) -> TakenWaiter? {
        state.withLock { state in
            guard var waiters = state.queues.removeValue(forKey: queue) else { return nil }
            defer { Self.store(waiters, for: queue, in: &state) }
            while let id = waiters.order.popFirst() {
                guard let entry = waiters.entries[id], let continuation = entry.continuation, !entry.reserved else { continue }
                waiters.entries[id] = nil
                state.total -= 1
                return TakenWaiter(continuation: continuation, timer: entry.timer, mode: entry.mode)
            }
            return nil
        }
    }

    /// Waiters currently registered on `queue`.
    public func count(on queue: QueueName) -> Int {
        state.withLock { state in
            state.queues[queue]?.entries.values.reduce(0) { $0 + ($1.continuation == nil || $1.reserved ? 0 : 1) } ?? 0
        }
    }

    /// All waiters on this replica.
    public var totalCount: Int { state.withLock { $0.total } }

    public var queuesWithWaiters: [QueueName] {
        state.withLock { state in state.queues.compactMap { $0.value.entries.isEmpty ? nil : $0.key } }
    }

    /// Ends every wait on `queue` (or on all queues) with `outcome`.
    public func resolveAll(on queue: QueueName? = nil, with outcome: WaitOutcome) {
        let taken = state.withLock { state -> [TakenWaiter] in
            let names = queue.map { [$0] } ?? Array(state.queues.keys)
            var taken: [TakenWaiter] = []
            for name in names {
                guard let waiters = state.queues.removeValue(forKey: name) else { continue }
                for entry in waiters.entries.values {
                    guard let continuation = entry.continuation else { continue }
                    taken.append(TakenWaiter(continuation: continuation, timer: entry.timer, mode: entry.mode))
                    state.total -= 1
                }
            }
            return taken
        }
        for waiter in taken { waiter.resume(outcome) }
    }

    private func resolve(queue: QueueName, id: UInt64, with outcome: WaitOutcome) {
        let taken = state.withLock { state -> TakenWaiter? in
            guard let entry = state.queues[queue]?.entries[id], var waiters = state.queues.removeValue(forKey: queue) else { return nil }
            defer { Self.store(waiters, for: queue, in: &state) }
            guard let continuation = entry.continuation, !entry.reserved else {
                // Not registered yet (the registration sees the flag and resumes at once), or
                // reserved for a claim in flight (its reservation ends it): a timer that fires
                // meanwhile is ignored, and unreserve checks the deadline.
                if case .cancelled = outcome { waiters.entries[id]?.cancelled = true }
                return nil
            }
            waiters.entries[id] = nil
            state.total -= 1
            return TakenWaiter(continuation: continuation, timer: entry.timer, mode: entry.mode)
        }
        taken?.resume(outcome)
    }

    /// Puts a queue's waiters (taken out with `removeValue`) back, dropping an empty entry.
    private static func store(_ waiters: Waiters, for queue: QueueName, in state: inout State) {
        var waiters = waiters
        if waiters.entries.isEmpty {
            state.queues[queue] = nil
            return
        }
        // Timed-out and cancelled waiters leave their ids in `order`; compact now and then.
        if waiters.order.count > 2 * waiters.entries.count + 16 {
            waiters.order = CircularBuffer(waiters.order.filter { waiters.entries[$0] != nil })
        }
        state.queues[queue] = waiters
    }
}
