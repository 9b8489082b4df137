import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import SkiffRedis

/// Runs each connection's handler with a preference for the connection's own event loop (see
/// ``EventLoopTaskExecutor``); the channel setup is `Inner`'s.
///
/// `connectionHandlers` are added to every connection after Hummingbird's connection state
/// handler, where they see requests before the routes do (``FastPathHandler``) and graceful
/// shutdown still sees every request.
struct EventLoopBoundChildChannel<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner
    var connectionHandlers: @Sendable () -> [any RemovableChannelHandler] = { [] }

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
            if !handlers.isEmpty {
                let pipeline = channel.pipeline.syncOperations
                try pipeline.addHandlers(handlers, position: .after(try pipeline.handler(type: HTTPConnectionStateHandler.self)))
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
        connectionHandlers: @escaping @Sendable () -> [any RemovableChannelHandler] = { [] }
    ) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            EventLoopBoundChildChannel(inner: HTTP1Channel(responder: responder, configuration: configuration), connectionHandlers: connectionHandlers)
        }
    }
}
