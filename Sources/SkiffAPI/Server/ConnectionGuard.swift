import Logging
import NIOCore
import Synchronization

/// How many connections a replica holds open, against its limit (`MAX_CONNECTIONS`).
final class ConnectionLimiter: Sendable {
    let maximum: Int
    private let open = Atomic<Int>(0)

    init(maximum: Int) {
        self.maximum = maximum
    }

    var count: Int { open.load(ordering: .relaxed) }

    /// Takes a place if one is free.
    func admit() -> Bool {
        var current = open.load(ordering: .relaxed)
        while current < maximum {
            let (exchanged, original) = open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func release() {
        open.subtract(1, ordering: .relaxed)
    }
}

/// Finds a connection's ``ConnectionGuard`` once, for the handlers that report to it (it may be
/// added to the pipeline after them, so it is looked up on first use, on the event loop).
struct ConnectionGuardLookup {
    private var lookedUp = false
    private var found: ConnectionGuard?

    mutating func callAsFunction(_ context: ChannelHandlerContext) -> ConnectionGuard? {
        if !lookedUp {
            lookedUp = true
            found = try? context.pipeline.syncOperations.handler(type: ConnectionGuard.self)
        }
        return found
    }
}

/// The limits every connection is held to, whichever path serves its requests: a cap on open
/// connections (503 past it), a deadline for each request's head once its first byte arrived
/// (408: a client sending a header line every few seconds cannot hold the connection), and an
/// idle timeout between requests. The first handler of the pipeline, so it sees every byte.
///
/// It cannot tell where a head ends by itself: the fast path (for the requests it serves) and
/// ``ResponseFlushCoalescer`` (for those NIO's decoder reads, and for every routed response) tell
/// it through ``headReceived()`` and ``responseCompleted()``. Its decisions are in
/// ``RequestTimingState``.
final class ConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let limiter: ConnectionLimiter
    private let headTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private let logger: Logger
    private var state = RequestTimingState()
    private var admitted = false
    private var refused = false
    private var context: ChannelHandlerContext?

    /// What passing ``deadline`` means.
    private enum Limit {
        case head
        case idle
    }

    /// The one limit in force and when it ends: `nil` while requests are in progress or the
    /// connection streams.
    private var deadline: (at: NIODeadline, limit: Limit)?
    /// The connection's one timer, and when it fires. It never fires later than ``deadline``, and
    /// while requests keep coming it is armed at most ``step`` ahead, so that a deadline set later
    /// (`now` plus a timeout of at least ``step``) never comes before it: a request then costs no
    /// timer at all, where scheduling and cancelling a head deadline and an idle timer for each one
    /// cost a keep-alive connection four heap-allocated timer operations per request. When it fires
    /// short of the deadline, it is armed again: at the idle timeout itself if the connection is
    /// idle (a quiet connection wakes twice, not every ``step``).
    private var timer: Scheduled<Void>?
    private var timerFiresAt = NIODeadline.distantFuture
    private let step: TimeAmount

    init(limiter: ConnectionLimiter, headTimeout: Duration, idleTimeout: Duration, logger: Logger) {
        self.limiter = limiter
        self.headTimeout = TimeAmount(headTimeout)
        self.idleTimeout = TimeAmount(idleTimeout)
        self.step = min(self.headTimeout, self.idleTimeout)
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { admit(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        admit(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
        if admitted {
            admitted = false
            limiter.release()
        }
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        if admitted {
            admitted = false
            limiter.release()
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        apply(state.bytesArrived(), context)
        context.fireChannelRead(data)
    }

    /// A request's head is complete.
    func headReceived() {
        guard let context else { return }
        apply(state.headReceived(), context)
    }

    /// The connection became a WebSocket stream: the head deadline and idle timeout end here
    /// (the stream pings its peer); the connection still counts against the limit.
    func streamStarted() {
        guard let context else { return }
        apply(state.streamStarted(), context)
    }

    /// A response has been written in full.
    func responseCompleted() {
        guard let context else { return }
        apply(state.responseCompleted(), context)
    }

    private func admit(_ context: ChannelHandlerContext) {
        guard !admitted, !refused else { return }
        guard limiter.admit() else {
            refused = true
            logger.warning("connection refused: the replica holds its maximum of connections", metadata: ["connection.limit": "\(limiter.maximum)"])
            close(
                context,
                status: "503 Service Unavailable",
                extraHeaders: "Retry-After: 1\r\n",
                error: "this replica holds its maximum of \(limiter.maximum) connections (MAX_CONNECTIONS); retry shortly"
            )
            return
        }
        admitted = true
        apply(.startIdleTimer, context)
    }

    private func apply(_ action: RequestTimingState.Action, _ context: ChannelHandlerContext) {
        switch action {
        case .none:
            return
        case .startHeadDeadline:
            limit(.head, after: headTimeout, context)
        case .cancelHeadDeadline:
            // An armed timer finds no deadline when it fires, and stops.
            deadline = nil
        case .startIdleTimer:
            limit(.idle, after: idleTimeout, context)
        }
    }

    private func limit(_ limit: Limit, after timeout: TimeAmount, _ context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        deadline = (now + timeout, limit)
        if timer != nil, timerFiresAt <= now + timeout { return }
        timer?.cancel()
        arm(at: min(now + timeout, now + step), context)
    }

    private func arm(at time: NIODeadline, _ context: ChannelHandlerContext) {
        timerFiresAt = time
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: time) {
            let (handler, context) = bound.value
            guard handler.context != nil else { return }
            handler.timerFired(context)
        }
    }

    private func timerFired(_ context: ChannelHandlerContext) {
        timer = nil
        guard let deadline else { return }
        let now = NIODeadline.now()
        guard now >= deadline.at else {
            // Idle for a whole step: a quiet connection, most likely. It sleeps until its idle
            // timeout; if a request comes first, its head deadline arms the timer again, once.
            arm(at: deadline.limit == .idle ? deadline.at : min(deadline.at, now + step), context)
            return
        }
        self.deadline = nil
        switch deadline.limit {
        case .head:
            guard state.headDeadlineApplies else { return }
            close(
                context,
                status: "408 Request Timeout",
                extraHeaders: "",
                error: "the request head was not received within \(headTimeout.nanoseconds / 1_000_000) ms (REQUEST_HEAD_TIMEOUT_MS)"
            )
        case .idle:
            guard state.idleTimeoutApplies else { return }
            context.close(promise: nil)
        }
    }

    private func cancelTimers() {
        timer?.cancel()
        timer = nil
        deadline = nil
    }

    /// Answers with a JSON error straight on the socket (no request is being answered) and closes.
    private func close(_ context: ChannelHandlerContext, status: String, extraHeaders: String, error: String) {
        var body = context.channel.allocator.buffer(capacity: 128)
        body.writeStaticString(#"{"error":"#)
        body.writeString(JSONText.quoted(error))
        body.writeStaticString("}")
        var response = context.channel.allocator.buffer(capacity: 256 + body.readableBytes)
        response.writeString("HTTP/1.1 \(status)\r\nContent-Type: application/json; charset=utf-8\r\n\(extraHeaders)")
        response.writeString("Content-Length: \(body.readableBytes)\r\nConnection: close\r\n\r\n")
        response.writeBuffer(&body)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(response)).whenComplete { _ in bound.value.close(promise: nil) }
    }
}
