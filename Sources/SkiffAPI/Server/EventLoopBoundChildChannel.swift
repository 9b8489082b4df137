import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import SkiffRedis
import SkiffSupport

/// Runs each connection's handler with a preference for the connection's own event loop (see
/// ``EventLoopTaskExecutor``); the channel setup is `Inner`'s.
///
/// `connectionHandlers` are added to every connection: `front` before everything, where they see
/// the bytes from the socket first (``FastPathHandler``), `behindStateHandler` after Hummingbird's
/// connection state handler, where routed requests and responses pass as HTTP parts.
struct EventLoopBoundChildChannel<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner
    var connectionHandlers: @Sendable () -> ConnectionHandlers = { ConnectionHandlers() }

    /// The first read buffer of a connection (NIO's default is 2 KiB): requests are a few hundred
    /// bytes, the buffer grows for larger reads, and an idle connection (a long-poll) keeps it.
    static var initialReadBufferBytes: Int { 512 }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let makeHandlers = connectionHandlers
        let allocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: Self.initialReadBufferBytes, maximum: 65536)
        do {
            try channel.syncOptions?.setOption(ChannelOptions.recvAllocator, value: allocator)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let handlers = makeHandlers()
            let pipeline = channel.pipeline.syncOperations
            if !handlers.behindStateHandler.isEmpty {
                try pipeline.addHandlers(handlers.behindStateHandler, position: .after(try pipeline.handler(type: HTTPConnectionStateHandler.self)))
            }
            if !handlers.front.isEmpty {
                try pipeline.addHandlers(handlers.front, position: .first)
            }
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(value.channel.eventLoop)) {
            await inner.handle(value: value, logger: logger)
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 as Hummingbird's `.http1(configuration:)`, with every connection's requests
    /// handled on that connection's event loop.
    static func eventLoopBoundHTTP1(
        configuration: HTTP1Channel.Configuration,
        connectionHandlers: @escaping @Sendable () -> ConnectionHandlers = { ConnectionHandlers() }
    ) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            EventLoopBoundChildChannel(inner: HTTP1Channel(responder: responder, configuration: configuration), connectionHandlers: connectionHandlers)
        }
    }
}

/// Handlers a connection gets besides Hummingbird's (see ``EventLoopBoundChildChannel``).
struct ConnectionHandlers {
    var front: [any ChannelHandler] = []
    var behindStateHandler: [any ChannelHandler] = []
}
