#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Synchronization

/// Notices when the client of an HTTP/1 connection goes away (it closed its side, or the
/// connection dropped) without consuming the request stream, so keep-alive still works.
///
/// Hummingbird does not cancel a handler when its client leaves; a long-poll watches
/// ``departure`` and cancels its wait, so a departed client never takes a message with it.
final class ClientDepartureHandler: ChannelInboundHandler, RemovableChannelHandler {
    // Reads pass through untouched (the default channelRead forwards them), so their type is not named here.
    typealias InboundIn = NIOAny

    private var departed: EventLoopPromise<Void>?

    func handlerAdded(context: ChannelHandlerContext) {
        departed = context.eventLoop.makePromise(of: Void.self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        depart()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed = event as? ChannelEvent { depart() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        depart()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, [ECONNRESET, EPIPE].contains(error.errnoCode) { wasReset = true }
        context.fireErrorCaught(error)
    }

    /// The client reset the connection (an RST): it did not take what was being sent.
    private(set) var wasReset = false

    private func depart() {
        hasDeparted = true
        departed?.succeed()
    }

    private var hasDeparted = false

    /// Completes when the client is gone; `nil` when the channel has no such handler (in-process tests).
    static func departure(of channel: any Channel) async -> EventLoopFuture<Void>? {
        await withHandler(of: channel) { $0.departed?.futureResult } ?? nil
    }

    /// The connection's handler, on its event loop (`nil` without one).
    static func handler(of channel: any Channel) async -> ClientDepartureHandler? {
        await withHandler(of: channel) { UncheckedHandler(handler: $0) }?.handler
    }

    /// Carries the loop-confined handler out of its loop; only touched on that loop again.
    struct UncheckedHandler: @unchecked Sendable { let handler: ClientDepartureHandler }

    /// Whether the client is known to be gone now (`false` without such a handler).
    static func hasDeparted(_ channel: any Channel) async -> Bool {
        await withHandler(of: channel) { $0.hasDeparted } ?? false
    }

    /// Runs `body` with the channel's handler on its event loop: at once when already there.
    private static func withHandler<T: Sendable>(of channel: any Channel, _ body: @escaping (ClientDepartureHandler) -> T) async -> T? {
        if channel.eventLoop.inEventLoop {
            return (try? channel.pipeline.syncOperations.handler(type: ClientDepartureHandler.self)).map(body)
        }
        return try? await channel.eventLoop.submit {
            try body(channel.pipeline.syncOperations.handler(type: ClientDepartureHandler.self))
        }.get()
    }
}

/// Whether the client of one request is known to have gone, set from the connection's event loop.
final class ClientPresence: Sendable {
    private let departed = Atomic<Bool>(false)

    var hasDeparted: Bool { departed.load(ordering: .acquiring) }

    /// Watches `channel`; `onDeparture` runs once the client is gone.
    static func watch(_ channel: any Channel, onDeparture: @escaping @Sendable () -> Void) async -> ClientPresence {
        let presence = ClientPresence()
        if let departure = await ClientDepartureHandler.departure(of: channel) {
            departure.whenComplete { _ in
                presence.departed.store(true, ordering: .releasing)
                onDeparture()
            }
        }
        return presence
    }
}

extension ClientDepartureHandler {
    /// Whether a delivery just written to this connection failed to reach its client's socket,
    /// read from the socket's TCP state (so it also sees a close NIO has not read yet). Asked
    /// right after the bytes were written, before the message is deleted:
    ///
    /// - the connection is open: delivered (the bytes are in the client's connection);
    /// - the client reset it (state CLOSE): not delivered, the message goes back;
    /// - the client closed it (its FIN is here): delivered once the client's kernel has
    ///   acknowledged every byte, since a socket closed before the bytes arrived answers them with
    ///   an RST instead; until then it is looked at again every millisecond, for at most
    ///   `patience`, and past that counted as not delivered (a duplicate rather than a loss).
    ///
    /// What stays indistinguishable from a delivery: a client that closes after its kernel took
    /// the bytes but before the application read them (README, Guarantees).
    /// `false` on a channel that is not a socket (in-process tests). When the socket is already
    /// closed, `departure` (the connection's handler, taken while it was open) tells whether the
    /// client reset it.
    static func deliveryFailed(_ channel: any Channel, departure: ClientDepartureHandler?, patience: Int = 50) -> EventLoopFuture<Bool> {
        guard let provider = channel as? any SocketOptionProvider else { return channel.eventLoop.makeSucceededFuture(false) }
        #if os(Linux)
        return provider.getTCPInfo().flatMap { info -> EventLoopFuture<Bool> in
            // include/net/tcp_states.h: TIME_WAIT 6, CLOSE 7, CLOSE_WAIT 8, LAST_ACK 9, CLOSING 11.
            switch Int(info.tcpi_state) {
            case 7:
                return channel.eventLoop.makeSucceededFuture(true)
            case 6, 8, 9, 11 where info.tcpi_unacked > 0:
                guard patience > 0 else { return channel.eventLoop.makeSucceededFuture(true) }
                return channel.eventLoop.flatScheduleTask(in: .milliseconds(1)) {
                    deliveryFailed(channel, departure: departure, patience: patience - 1)
                }.futureResult
            default:
                return channel.eventLoop.makeSucceededFuture(false)
            }
        }.recover { _ in
            // The socket is closed already: by the client's RST (not delivered), or after its FIN
            // (it closed once the bytes were in its connection: delivered).
            departure?.wasReset ?? true
        }
        #else
        return channel.eventLoop.makeSucceededFuture(!channel.isActive)
        #endif
    }
}
