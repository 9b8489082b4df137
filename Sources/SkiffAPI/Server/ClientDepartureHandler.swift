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

    private func depart() {
        hasDeparted = true
        departed?.succeed()
    }

    private var hasDeparted = false

    /// Completes when the client is gone; `nil` when the channel has no such handler (in-process tests).
    static func departure(of channel: any Channel) async -> EventLoopFuture<Void>? {
        await withHandler(of: channel) { $0.departed?.futureResult } ?? nil
    }

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
    /// On the channel's event loop: whether the client's FIN or RST has already reached this
    /// connection, read from the socket's TCP state now, before NIO has read it. Asked right
    /// before a delivery is written: a client (or a proxy that aborted for its client) that closed
    /// first gets nothing written, and the message goes back. Once written, a delivery stands: a
    /// close after the write cannot be told from one after reading (a proxy even resets its server
    /// connection once it has relayed a whole response). `false` when it cannot be read at once.
    static func peerHasClosed(_ channel: any Channel) -> Bool {
        guard channel.eventLoop.inEventLoop, let provider = channel as? any SocketOptionProvider else { return false }
        let closed = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
        #if os(Linux)
        // On its own loop the option is read at once and the future is already complete.
        provider.getTCPInfo().whenComplete { result in
            switch result {
            case .success(let info): closed.value = [6, 7, 8, 9, 11].contains(Int(info.tcpi_state))
            case .failure: closed.value = true
            }
        }
        #endif
        return closed.value
    }

    /// ``peerHasClosed(_:)`` from anywhere: at once on the channel's loop, else one hop to it.
    static func peerHasClosed(on channel: any Channel) async -> Bool {
        if channel.eventLoop.inEventLoop { return peerHasClosed(channel) }
        return (try? await channel.eventLoop.submit { peerHasClosed(channel) }.get()) ?? true
    }
}
