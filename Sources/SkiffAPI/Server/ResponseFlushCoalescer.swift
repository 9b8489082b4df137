import HTTPTypes
import NIOCore
import NIOHTTPTypes
import Synchronization

extension HTTPField.Name {
    /// Marks a routed response whose delivery waits for its bytes to reach the socket (see
    /// ``ResponseFlushCoalescer/whenWritten(token:on:)``). Removed before the head leaves the process.
    static let skiffWriteToken = Self("Skiff-Internal-Write-Token")!
    /// Marks a streaming response (an event feed) whose every part must leave at once. Removed
    /// before the head leaves the process.
    static let skiffStreamingResponse = Self("Skiff-Internal-Streaming")!
}

/// Sends a small response in one `write` system call instead of one per part, and tells a
/// delivery when its response has been written to the socket.
///
/// Hummingbird's response writer flushes the head, every body part and the end separately; each
/// flush is a system call and a TCP segment. This handler holds the flushes of a response in
/// progress until its end is written, unless more than ``flushThresholdBytes`` are waiting (a
/// large body still streams, and backpressure still works).
///
/// Hummingbird's writer returns once a part is queued, not once it is written; a routed delivery
/// must not delete its message before its bytes left the process (a kill or a reset in between
/// would lose it). The route marks its response head with a token and waits on
/// ``whenWritten(token:on:)``, which completes with the write of that response's end.
final class ResponseFlushCoalescer: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    static let flushThresholdBytes = 16 << 10

    private var inResponse = false
    private var unflushedBytes = 0
    /// Responses whose end a delivery waits for, by token; failed if the connection goes first.
    private var writeWaiters: [UInt64: EventLoopPromise<Void>] = [:]
    /// The token of the response being written, if it has one.
    private var currentToken: UInt64?

    private static let tokens = Atomic<UInt64>(0)

    /// A token for ``whenWritten(token:on:)``, unique in this process.
    static func makeToken() -> UInt64 {
        tokens.add(1, ordering: .relaxed).newValue
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            // An informational head (100 Continue) is its own response part: flush it at once; so
            // is every part of a streaming response.
            inResponse = head.status.kind != .informational
            if head.headerFields[.skiffStreamingResponse] != nil {
                head.headerFields[.skiffStreamingResponse] = nil
                inResponse = false
                context.write(wrapOutboundOut(.head(head)), promise: promise)
                return
            }
            if let token = head.headerFields[.skiffWriteToken] {
                head.headerFields[.skiffWriteToken] = nil
                currentToken = UInt64(token)
                context.write(wrapOutboundOut(.head(head)), promise: promise)
                return
            }
        case .body(let buffer):
            unflushedBytes += buffer.readableBytes
        case .end:
            inResponse = false
            connectionGuard(context)?.responseCompleted()
            if let token = currentToken {
                currentToken = nil
                if let waiter = writeWaiters.removeValue(forKey: token) {
                    let written = promise ?? context.eventLoop.makePromise(of: Void.self)
                    written.futureResult.cascade(to: waiter)
                    context.write(data, promise: written)
                    return
                }
            }
        }
        context.write(data, promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { connectionGuard(context)?.headReceived() }
        context.fireChannelRead(data)
    }

    /// The connection's ``ConnectionGuard``, told when a request's head is read and its response
    /// written.
    private var connectionGuard = ConnectionGuardLookup()

    func flush(context: ChannelHandlerContext) {
        if inResponse, unflushedBytes < Self.flushThresholdBytes { return }
        unflushedBytes = 0
        context.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        failWaiters()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failWaiters()
    }

    private func failWaiters() {
        let waiters = writeWaiters
        writeWaiters = [:]
        for waiter in waiters.values { waiter.fail(ChannelError.ioOnClosedChannel) }
    }

    /// Completes once the end of the response whose head carries `token` (in
    /// ``HTTPField/Name/skiffWriteToken``) has been written to the socket; fails if the connection
    /// closes first. `nil` when the channel has no such handler (in-process tests).
    static func whenWritten(token: UInt64, on channel: any Channel) async -> EventLoopFuture<Void>? {
        if channel.eventLoop.inEventLoop { return try? registerWriteWaiter(token: token, on: channel) }
        return try? await channel.eventLoop.submit { try registerWriteWaiter(token: token, on: channel) }.get()
    }

    /// ``whenWritten(token:on:)`` on the channel's event loop.
    static func registerWriteWaiter(token: UInt64, on channel: any Channel) throws -> EventLoopFuture<Void> {
        let handler = try channel.pipeline.syncOperations.handler(type: ResponseFlushCoalescer.self)
        let promise = channel.eventLoop.makePromise(of: Void.self)
        guard channel.isActive else {
            promise.fail(ChannelError.ioOnClosedChannel)
            return promise.futureResult
        }
        handler.writeWaiters[token] = promise
        return promise.futureResult
    }

    /// Gives up waiting for `token`'s response (it will not be written).
    static func forget(token: UInt64, on channel: any Channel) {
        channel.eventLoop.execute {
            guard let handler = try? channel.pipeline.syncOperations.handler(type: ResponseFlushCoalescer.self) else { return }
            handler.writeWaiters.removeValue(forKey: token)?.fail(ChannelError.ioOnClosedChannel)
        }
    }
}
