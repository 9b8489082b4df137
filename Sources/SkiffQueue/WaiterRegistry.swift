import NIOCore
import SkiffRedis
import Synchronization

/// How a wait for a message ended.
public enum WaitOutcome: Sendable {
    case delivered(Delivery)
    case timedOut
    case cancelled
    case failed(any Error)
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
    public func wait(on queue: QueueName, timeout: Duration, onRegistered: @Sendable () -> Void) async -> WaitOutcome {
        let id = state.withLock { state -> UInt64 in
            state.nextID &+= 1
            let id = state.nextID
            state.queues[queue, default: Waiters()].entries[id] = Entry()
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
                let timer = eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) { [weak self] () -> Void in
                    self?.resolve(queue: queue, id: id, with: .timedOut)
                }
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

    /// Removes and returns the oldest waiter on `queue`, if any.
    public func takeOldest(_ queue: QueueName) -> TakenWaiter? {
        state.withLock { state in
            guard var waiters = state.queues[queue] else { return nil }
            defer { Self.store(waiters, for: queue, in: &state) }
            while let id = waiters.order.popFirst() {
                guard let entry = waiters.entries[id], let continuation = entry.continuation else { continue }
                waiters.entries[id] = nil
                state.total -= 1
                return TakenWaiter(continuation: continuation, timer: entry.timer)
            }
            return nil
        }
    }

    /// Waiters currently registered on `queue`.
    public func count(on queue: QueueName) -> Int {
        state.withLock { state in
            state.queues[queue]?.entries.values.reduce(0) { $0 + ($1.continuation == nil ? 0 : 1) } ?? 0
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
                    taken.append(TakenWaiter(continuation: continuation, timer: entry.timer))
                }
                state.total -= taken.count
            }
            return taken
        }
        for waiter in taken { waiter.resume(outcome) }
    }

    private func resolve(queue: QueueName, id: UInt64, with outcome: WaitOutcome) {
        let taken = state.withLock { state -> TakenWaiter? in
            guard var waiters = state.queues[queue], let entry = waiters.entries[id] else { return nil }
            defer { Self.store(waiters, for: queue, in: &state) }
            guard let continuation = entry.continuation else {
                // Not registered yet: the registration sees the flag and resumes at once.
                waiters.entries[id]?.cancelled = true
                return nil
            }
            waiters.entries[id] = nil
            state.total -= 1
            return TakenWaiter(continuation: continuation, timer: entry.timer)
        }
        taken?.resume(outcome)
    }

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
