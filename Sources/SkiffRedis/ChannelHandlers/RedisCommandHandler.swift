public import Logging
public import NIOCore

/// A command on its way to the handler.
public struct RedisRequest: Sendable {
    public let id: UInt64
    public let encoded: ByteBuffer
    public let deadline: NIODeadline
    public let isBlocking: Bool
    public let promise: EventLoopPromise<RedisValue>
    /// Set for a `SUNSUBSCRIBE` on a subscriber connection: the channel (see ``RedisCommandStateMachine``).
    public var shardUnsubscribe: String? = nil
}

/// Writes commands, matches replies to them in order, enforces deadlines and closes the connection
/// when it can no longer be trusted. Event-loop confined; the decisions live in
/// ``RedisCommandStateMachine``.
///
/// Writes are not flushed one by one: the first write in an event-loop tick schedules one flush
/// after everything already queued on the loop, so commands from many concurrent requests share a
/// single `writev`.
public final class RedisCommandHandler: ChannelDuplexHandler {
    public typealias InboundIn = RedisValue
    public typealias OutboundIn = RedisRequest
    public typealias OutboundOut = ByteBuffer

    private var stateMachine: RedisCommandStateMachine<EventLoopPromise<RedisValue>>
    private var context: ChannelHandlerContext?
    private var timer: Scheduled<Void>?
    private var flushScheduled = false
    private let onPush: (@Sendable (RedisValue) -> Void)?
    private let logger: Logger

    public init(isSubscriber: Bool = false, logger: Logger, onPush: (@Sendable (RedisValue) -> Void)? = nil) {
        self.stateMachine = RedisCommandStateMachine(isSubscriber: isSubscriber)
        self.onPush = onPush
        self.logger = logger
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        failAll(stateMachine.connectionClosed(.connectionClosed), .connectionClosed)
        timer?.cancel()
        self.context = nil
    }

    public func channelInactive(context: ChannelHandlerContext) {
        failAll(stateMachine.connectionClosed(.connectionClosed), .connectionClosed)
        timer?.cancel()
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        // RESP errors come from the decoder as RedisClientError; anything else is the transport
        // (a reset, a TLS failure): the connection is gone, not the protocol broken.
        let clientError = (error as? RedisClientError) ?? .connectionClosed
        logger.debug("redis connection error", metadata: ["error": "\(error)"])
        failAll(stateMachine.connectionClosed(clientError), clientError)
        context.close(promise: nil)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        switch stateMachine.receive(value) {
        case .succeed(let promise, let value):
            promise.succeed(value)
        case .drop:
            break
        case .deliverPush(let value):
            onPush?(value)
        case .failAllAndClose(let promises, let error):
            failAll(promises, error)
            context.close(promise: nil)
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        switch stateMachine.enqueue(
            id: request.id,
            promise: request.promise,
            deadline: request.deadline,
            isBlocking: request.isBlocking,
            shardUnsubscribe: request.shardUnsubscribe
        ) {
        case .write(let deadline):
            arm(deadline, context: context)
            context.write(wrapOutboundOut(request.encoded), promise: promise)
            scheduleFlush(context: context)
        case .fail(let failed, let error):
            failed.fail(error)
            promise?.fail(error)
        }
    }

    /// Called on the event loop when the caller of command `id` was cancelled.
    public func cancel(id: UInt64) {
        switch stateMachine.cancel(id: id) {
        case .none:
            break
        case .failOne(let promise):
            promise.fail(RedisClientError.cancelled)
        case .failAllAndClose(let promises, let error):
            failAll(promises, error)
            context?.close(promise: nil)
        }
    }

    private func scheduleFlush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = loopBound.value
            handler.flushScheduled = false
            context.flush()
        }
    }

    private func arm(_ deadline: NIODeadline?, context: ChannelHandlerContext) {
        guard let deadline else { return }
        timer?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.timerFired(context: context)
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        timer = nil
        switch stateMachine.timerFired(now: .now()) {
        case .none:
            break
        case .rearm(let deadline):
            arm(deadline, context: context)
        case .failAllAndClose(let promises, let error):
            logger.warning("redis command deadline passed; closing connection", metadata: ["redis.pending": "\(promises.count)"])
            failAll(promises, error)
            context.close(promise: nil)
        }
    }

    private func failAll(_ promises: [EventLoopPromise<RedisValue>], _ error: RedisClientError) {
        for promise in promises { promise.fail(error) }
    }
}
