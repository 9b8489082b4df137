import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import SkiffRedis

/// Runs each connection's handler with a preference for the connection's own event loop (see
/// ``EventLoopTaskExecutor``); the channel setup is `Inner`'s.
struct EventLoopBoundChildChannel<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        inner.setup(channel: channel, logger: logger)
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
    static func eventLoopBoundHTTP1(configuration: HTTP1Channel.Configuration) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            EventLoopBoundChildChannel(inner: HTTP1Channel(responder: responder, configuration: configuration))
        }
    }
}
