import NIOCore

/// Tells the handlers behind Hummingbird's connection state handler that graceful shutdown has
/// begun: that handler consumes `ChannelShouldQuiesceEvent` and passes nothing on, but a long-poll
/// served by ``FastPathHandler`` must end (with 204) for the connection to close.
///
/// It sits in front of the connection state handler and sends ``ShutdownStarted`` down the
/// pipeline first, then the quiesce event itself.
final class GracefulShutdownRelay: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    /// Graceful shutdown has begun: end waits now.
    struct ShutdownStarted: Sendable {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            context.fireUserInboundEventTriggered(ShutdownStarted())
        }
        context.fireUserInboundEventTriggered(event)
    }
}
