/// The decisions of ``ConnectionGuard`` about one connection's time limits, as a value: no I/O,
/// no timers, so every transition is unit-tested.
///
/// A connection is `idle` between requests (the idle timeout runs), `headPending` from the first
/// byte of a request until its head is complete (the head deadline runs: slowloris), and
/// `inRequest` while requests whose responses are not complete are in progress (no limit here: a
/// long-poll may wait as long as its `timeout`, a body may stream as long as the client sends it).
struct RequestTimingState: Equatable {
    enum Phase: Equatable {
        case idle
        case headPending
        /// Requests whose head arrived and whose response is not yet complete (pipelining: several).
        case inRequest(Int)
        /// The connection became a stream (a WebSocket): no request timing applies any more.
        case streaming
    }

    /// What the guard must do with its timers.
    enum Action: Equatable {
        case none
        /// Cancel the idle timer, start the head deadline.
        case startHeadDeadline
        /// The head arrived: cancel the head deadline.
        case cancelHeadDeadline
        /// The last response is complete: start the idle timer.
        case startIdleTimer
    }

    private(set) var phase = Phase.idle

    /// Bytes arrived from the client.
    /// The connection was upgraded to a stream, which has its own heartbeat.
    mutating func streamStarted() -> Action {
        phase = .streaming
        return .cancelHeadDeadline
    }

    mutating func bytesArrived() -> Action {
        guard phase == .idle else { return .none }
        phase = .headPending
        return .startHeadDeadline
    }

    /// A request's head is complete (read by the fast path or by NIO's decoder).
    mutating func headReceived() -> Action {
        switch phase {
        case .streaming:
            return .none
        case .idle, .headPending:
            phase = .inRequest(1)
            return .cancelHeadDeadline
        case .inRequest(let count):
            phase = .inRequest(count + 1)
            return .none
        }
    }

    /// A response has been written in full.
    mutating func responseCompleted() -> Action {
        guard case .inRequest(let count) = phase else { return .none }
        if count > 1 {
            phase = .inRequest(count - 1)
            return .none
        }
        phase = .idle
        return .startIdleTimer
    }

    /// Whether the head deadline, when it fires, closes the connection.
    var headDeadlineApplies: Bool { phase == .headPending }
    /// Whether the idle timer, when it fires, closes the connection.
    var idleTimeoutApplies: Bool { phase == .idle }
}
