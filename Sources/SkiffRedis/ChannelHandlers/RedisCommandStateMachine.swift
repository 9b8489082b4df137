public import NIOCore

/// The decisions of one Redis connection, kept apart from I/O so they can be tested without sockets.
///
/// Replies arrive in the order commands were written (RESP is strictly ordered), so pending
/// commands form a FIFO queue. A reply that matches no pending command, a deadline that passes, or
/// a cancelled blocking command makes the connection unusable: the state machine tells its owner to
/// fail everything and close, because a blocking pop still armed on the server would swallow the next
/// message given to this connection.
///
/// `Promise` is generic so tests can use plain values.
public struct RedisCommandStateMachine<Promise> {
    public struct Pending {
        public let id: UInt64
        public let deadline: NIODeadline
        /// `nil` once the caller gave up (cancelled a pipelined command): the reply is read and dropped.
        public var promise: Promise?
        /// Blocking commands get a connection of their own; cancelling one must close the connection.
        public let isBlocking: Bool
        /// The channel of a `SUNSUBSCRIBE`: its reply looks like the push Redis sends when it drops a
        /// shard channel on its own (see ``receive(_:)``).
        public let shardUnsubscribe: String?
    }

    public enum State {
        case active
        case closed(RedisClientError)
    }

    public enum EnqueueAction {
        /// Write the command; arm the deadline timer at `armTimer` if it is not `nil`.
        case write(armTimer: NIODeadline?)
        case fail(Promise, RedisClientError)
    }

    public enum ReceiveAction {
        case succeed(Promise, RedisValue)
        /// The reply belongs to a command whose caller left (or the connection is closing): drop it.
        case drop
        case deliverPush(RedisValue)
        case failAllAndClose([Promise], RedisClientError)
    }

    public enum CancelAction {
        case none
        /// Fail only this promise; the connection stays in use and discards the late reply.
        case failOne(Promise)
        /// A blocking command was cancelled: fail everything and close.
        case failAllAndClose([Promise], RedisClientError)
    }

    public enum TimerAction {
        case none
        case rearm(NIODeadline)
        case failAllAndClose([Promise], RedisClientError)
    }

    private(set) public var state: State = .active
    private var pending = CircularBuffer<Pending>()
    private var armedDeadline: NIODeadline?
    /// In subscriber mode, `message`/`pmessage` arrays are pushes, not replies.
    public var isSubscriber: Bool

    public init(isSubscriber: Bool = false) {
        self.isSubscriber = isSubscriber
    }

    public var pendingCount: Int { pending.count }

    public mutating func enqueue(
        id: UInt64,
        promise: Promise,
        deadline: NIODeadline,
        isBlocking: Bool,
        shardUnsubscribe: String? = nil
    ) -> EnqueueAction {
        guard case .active = state else {
            if case .closed(let error) = state { return .fail(promise, error) }
            return .fail(promise, .connectionClosed)
        }
        pending.append(Pending(id: id, deadline: deadline, promise: promise, isBlocking: isBlocking, shardUnsubscribe: shardUnsubscribe))
        if let armed = armedDeadline, armed <= deadline { return .write(armTimer: nil) }
        armedDeadline = deadline
        return .write(armTimer: deadline)
    }

    /// In subscriber mode, a `sunsubscribe` array is the reply of a pending `SUNSUBSCRIBE` of the same
    /// channel only when that command is next in line; otherwise Redis sent it on its own (the
    /// channel's slot moved to another node, Redis 7) and it is a push. (RESP2 gives the two the same
    /// shape; an ambiguous one is taken as the command's reply, and the subscriber was leaving that
    /// channel anyway.)
    public mutating func receive(_ value: RedisValue) -> ReceiveAction {
        guard case .active = state else { return .drop }
        if isSubscriber, Self.isPush(value) || isUnsolicitedShardUnsubscribe(value) { return .deliverPush(value) }
        guard let head = pending.popFirst() else {
            return .failAllAndClose(close(.unexpectedReply("reply with no pending command")), .unexpectedReply("reply with no pending command"))
        }
        // The timer may stay armed for a deadline that is no longer pending; it re-arms itself for
        // the earliest remaining one when it fires, which is cheaper than scanning on every reply.
        if let promise = head.promise { return .succeed(promise, value) }
        return .drop
    }

    public mutating func cancel(id: UInt64) -> CancelAction {
        guard case .active = state, let index = pending.firstIndex(where: { $0.id == id }) else { return .none }
        if pending[index].isBlocking {
            return .failAllAndClose(close(.cancelled), .cancelled)
        }
        guard let promise = pending[index].promise else { return .none }
        pending[index].promise = nil
        return .failOne(promise)
    }

    public mutating func timerFired(now: NIODeadline) -> TimerAction {
        armedDeadline = nil
        guard case .active = state else { return .none }
        if pending.contains(where: { $0.deadline <= now }) {
            return .failAllAndClose(close(.timeout), .timeout)
        }
        guard let next = pending.lazy.map(\.deadline).min() else { return .none }
        armedDeadline = next
        return .rearm(next)
    }

    /// The connection is gone (closed by either side, or an error): fail what is pending.
    public mutating func connectionClosed(_ error: RedisClientError) -> [Promise] {
        guard case .active = state else { return [] }
        return close(error)
    }

    private mutating func close(_ error: RedisClientError) -> [Promise] {
        state = .closed(error)
        armedDeadline = nil
        let promises = pending.compactMap(\.promise)
        pending.removeAll()
        return promises
    }

    static func isPush(_ value: RedisValue) -> Bool {
        guard case .array(let elements) = value, let kind = elements.first?.string else { return false }
        return kind == "message" || kind == "pmessage" || kind == "smessage"
    }

    private func isUnsolicitedShardUnsubscribe(_ value: RedisValue) -> Bool {
        guard case .array(let elements) = value, elements.count == 3, elements[0].string == "sunsubscribe" else { return false }
        guard let awaited = pending.first?.shardUnsubscribe else { return true }
        return elements[1].string != awaited
    }
}
