/// A condition that did not come true in time.
public struct EventuallyTimedOut: Error, CustomStringConvertible {
    public let timeout: Duration
    public var description: String { "the condition did not hold within \(timeout)" }
}

/// Polls `read` every 20 ms until `until` holds or `timeout` has passed; returns the last value
/// read, for the test to check (a deadline, not a timing threshold: it only bounds a wait).
public func eventually<T: Sendable>(
    timeout: Duration = .seconds(20),
    until: (T) -> Bool = { _ in true },
    _ read: () async throws -> T
) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while true {
        let value = try await read()
        if until(value) || ContinuousClock.now >= deadline { return value }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// Polls `condition` every 20 ms until it holds.
/// - Throws: ``EventuallyTimedOut`` when it still does not after `timeout`.
public func eventually(timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
    guard try await eventually(timeout: timeout, until: { $0 }, condition) else { throw EventuallyTimedOut(timeout: timeout) }
}
