import Synchronization

/// Values read from a queue's settings, each used for up to `refreshInterval` before it is read
/// again, so that a hot path pays a table lookup instead of a storage round trip. A change made
/// on another replica is seen within `refreshInterval`.
///
/// At most ``maximumRemembered`` queues are kept: a client cycling through queue names cannot grow
/// the table without bound (the oldest half goes when it is full).
final class RecentlyRead<Value: Sendable>: Sendable {
    private struct Known {
        var value: Value
        var readAt: ContinuousClock.Instant
    }

    let refreshInterval: Duration
    private let known = Mutex<[QueueName: Known]>([:])

    static var maximumRemembered: Int { 10_000 }

    init(refreshInterval: Duration) {
        self.refreshInterval = refreshInterval
    }

    /// The value of `queue` as read at most ``refreshInterval`` ago (or now, `fresh`). When
    /// `read` fails, the last value read serves (unless `fresh`), so that a storage hiccup does
    /// not stop what the value only tunes.
    /// - Parameter check: refuses a value read (its error is thrown and nothing is remembered).
    func value(
        of queue: QueueName, fresh: Bool = false, read: () async throws -> Value, check: (Value) throws -> Void = { _ in }
    ) async throws -> Value {
        let now = ContinuousClock.now
        let last = known.withLock { $0[queue] }
        if !fresh, let last, now - last.readAt < refreshInterval { return last.value }
        let value: Value
        do {
            value = try await read()
        } catch {
            if let last, !fresh { return last.value }
            throw error
        }
        try check(value)
        remember(value, of: queue, at: now)
        return value
    }

    /// Records `value` as just read (after this replica changed it).
    func remember(_ value: Value, of queue: QueueName, at instant: ContinuousClock.Instant = .now) {
        known.withLock { known in
            if known.count >= Self.maximumRemembered, known[queue] == nil {
                let oldest = known.sorted { $0.value.readAt < $1.value.readAt }.prefix(known.count / 2).map(\.key)
                for name in oldest { known[name] = nil }
            }
            known[queue] = Known(value: value, readAt: instant)
        }
    }

    func forget(_ queue: QueueName) {
        _ = known.withLock { $0.removeValue(forKey: queue) }
    }
}
