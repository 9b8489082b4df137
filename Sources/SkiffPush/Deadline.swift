import Synchronization

/// Runs work against a deadline without waiting for it past the deadline: a task group would
/// wait for its cancelled child, and a push's child may be stuck where cancellation does not reach
/// (a resolver call in a thread pool).
enum Deadline {
    /// `work`'s result, or `nil` when `limit` passed first; `work` is then cancelled and ends on
    /// its own, its result dropped.
    static func run<T: Sendable>(within limit: Duration, _ work: @escaping @Sendable () async -> T) async -> T? {
        let race = Race<T>()
        let worker = Task {
            let value = await work()
            race.finish(value)
        }
        let timer = Task {
            try? await Task.sleep(for: limit)
            if race.finish(nil) { worker.cancel() }
        }
        let value = await race.wait()
        timer.cancel()
        return value
    }

    /// The first of two outcomes, handed to one waiter.
    private final class Race<T: Sendable>: Sendable {
        private struct State {
            var outcome: T??
            var waiter: CheckedContinuation<T?, Never>?
        }

        private let state = Mutex(State())

        /// Records the outcome if none was yet; `true` when this one won.
        @discardableResult
        func finish(_ value: T?) -> Bool {
            let (won, waiter) = state.withLock { state -> (Bool, CheckedContinuation<T?, Never>?) in
                guard state.outcome == nil else { return (false, nil) }
                state.outcome = .some(value)
                defer { state.waiter = nil }
                return (true, state.waiter)
            }
            waiter?.resume(returning: value)
            return won
        }

        func wait() async -> T? {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> T?? in
                    if let outcome = state.outcome { return outcome }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}
