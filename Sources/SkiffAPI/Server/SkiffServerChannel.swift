import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
import SkiffSupport

/// One connection of a replica: HTTP/1.1 as Hummingbird's `HTTP1Channel` serves it, except that
/// a request to `/api/{queue}/stream` may upgrade it to a WebSocket stream. Requests run with a
/// preference for the connection's own event loop (see ``EventLoopTaskExecutor``).
///
/// The upgrade decision is the stream endpoint's (``StreamUpgrading/decide(uri:authorization:subprotocols:)``);
/// an upgrade it declines goes on to the routes like any request, where ``StreamController`` answers
/// why. `connectionHandlers` are added to every connection: `front` before everything, where
/// they see the bytes from the socket first (``FastPathHandler``), `behindStateHandler` after
/// Hummingbird's connection state handler once the connection is known to stay HTTP.
struct SkiffServerChannel: ServerChildChannel, HTTPChannelHandler {
    enum Negotiated: Sendable {
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case stream(NIOAsyncChannel<WebSocketFrame, Never>, StreamOpening)
    }

    struct Value: ServerChildChannelValue {
        let negotiated: EventLoopFuture<Negotiated>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let configuration: HTTP1Channel.Configuration
    let streams: any StreamUpgrading
    var connectionHandlers: @Sendable () -> ConnectionHandlers = { ConnectionHandlers() }

    /// The first read buffer of a connection (NIO's default is 2 KiB): requests are a few hundred
    /// bytes, the buffer grows for larger reads, and an idle connection (a long-poll) keeps it.
    static var initialReadBufferBytes: Int { 512 }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let (configuration, streams, handlers) = (self.configuration, self.streams, connectionHandlers())
        return channel.eventLoop.makeCompletedFuture {
            let allocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: Self.initialReadBufferBytes, maximum: 65536)
            try channel.syncOptions?.setOption(ChannelOptions.recvAllocator, value: allocator)
            // The decision made for the upgrade request, kept for the pipeline that follows it.
            let opening = NIOLoopBoundBox<StreamOpening?>(nil, eventLoop: channel.eventLoop)
            // The connection's first request head: when NIO's upgrade handler did not upgrade a
            // request with an `Upgrade` header it passes on only its end, so the not-upgraded
            // pipeline replays the head for the routes.
            let declined = NIOLoopBoundBox<HTTPRequestHead?>(nil, eventLoop: channel.eventLoop)
            let upgrader = NIOTypedWebSocketServerUpgrader<Negotiated>(
                maxFrameSize: streams.maximumFrameBytes,
                enableAutomaticErrorHandling: true,
                shouldUpgrade: { channel, head in
                    channel.eventLoop.makeCompletedFuture {
                        guard head.method == .GET,
                            case .open(let decided)? = streams.decide(
                                uri: head.uri,
                                authorization: head.headers.first(name: "authorization"),
                                subprotocols: head.headers[canonicalForm: "sec-websocket-protocol"].joined(separator: ",")
                            )
                        else { return nil }
                        opening.value = decided
                        return decided.subprotocol.map { HTTPHeaders([("Sec-WebSocket-Protocol", $0)]) } ?? HTTPHeaders()
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard let decided = opening.value else { throw ChannelError.inappropriateOperationForState }
                        try channel.pipeline.syncOperations.removeHandler(
                            context: channel.pipeline.syncOperations.context(handlerType: NegotiationErrorHandler.self))
                        // The stream pings its peer: the request timeouts end here.
                        try? channel.pipeline.syncOperations.handler(type: ConnectionGuard.self).streamStarted()
                        try channel.pipeline.syncOperations.addHandler(StreamPongWatcher())
                        let frames = try NIOAsyncChannel<WebSocketFrame, Never>(wrappingChannelSynchronously: channel)
                        return .stream(frames, decided)
                    }
                }
            )
            let upgrade = NIOTypedHTTPServerUpgradeConfiguration<Negotiated>(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        try pipeline.removeHandler(context: pipeline.context(handlerType: NegotiationErrorHandler.self))
                        if let head = declined.value { try pipeline.addHandler(DeclinedUpgradeReplay(head: head)) }
                        try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try pipeline.addHandlers(configuration.additionalChannelHandlers())
                        try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: configuration.idleTimeout.map { .init($0) }, logger: logger))
                        try pipeline.addHandlers(handlers.behindStateHandler)
                        return .http(try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true)))
                    }
                }
            )
            var pipelineConfiguration = NIOUpgradableHTTPServerPipelineConfiguration(upgradeConfiguration: upgrade)
            // As HTTP1Channel: NIOAsyncChannel pipelines, the application handles errors, HTTP
            // types validate headers.
            pipelineConfiguration.enablePipelining = false
            pipelineConfiguration.enableErrorHandling = false
            pipelineConfiguration.enableResponseHeaderValidation = false
            pipelineConfiguration.decoderConfiguration.maxHeaderFieldSize = configuration.httpDecoder.maxHeaderFieldSize
            pipelineConfiguration.decoderConfiguration.maxHeaderListSize = configuration.httpDecoder.maxHeaderListSize
            pipelineConfiguration.decoderConfiguration.maxHeaderFieldCount = configuration.httpDecoder.maxHeaderFieldCount
            let negotiated = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: pipelineConfiguration)
            // NIO's upgrade handler swallows the head of any request with an `Upgrade` header it
            // does not upgrade (h2c, a WebSocket handshake without a key, one the streams declined):
            // the first head is recorded ahead of it, for the not-upgraded pipeline to replay.
            let upgradeHandler = try channel.pipeline.syncOperations.handler(type: NIOTypedHTTPServerUpgradeHandler<Negotiated>.self)
            try channel.pipeline.syncOperations.addHandler(FirstHeadRecorder(declined), position: .before(upgradeHandler))
            try channel.pipeline.syncOperations.addHandler(NegotiationErrorHandler())
            if !handlers.front.isEmpty {
                try channel.pipeline.syncOperations.addHandlers(handlers.front, position: .first)
            }
            return Value(negotiated: negotiated, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(value.channel.eventLoop)) {
            do {
                switch try await value.negotiated.get() {
                case .http(let http):
                    await handleHTTP(asyncChannel: http, logger: logger)
                case .stream(let frames, let opening):
                    await streams.run(frames, opening: opening, logger: logger)
                }
            } catch {
                logger.debug("connection ended before its first request was understood", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// Answers a request NIO's decoder refuses before the connection knows whether it stays HTTP
/// (its first request): 400 and close, as Hummingbird's HTTP handling answers one later on. Without
/// it the error would end at the pipeline's tail and the connection would wait for nothing.
/// Removed as soon as the first request is understood.
final class NegotiationErrorHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Never
    typealias OutboundOut = HTTPServerResponsePart

    /// Graceful shutdown reaching a connection that never got as far as Hummingbird's HTTP
    /// handlers (every request so far was the fast path's, which held the event back until its
    /// response was written): nothing is in progress, so it closes, as Hummingbird's connection
    /// state handler closes an idle connection. Without this the server would wait for it.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        let body = ByteBuffer(string: #"{"error":"malformed HTTP request"}"#)
        let head = HTTPResponseHead(
            version: .http1_1,
            status: .badRequest,
            headers: ["Content-Type": "application/json; charset=utf-8", "Content-Length": "\(body.readableBytes)", "Connection": "close"]
        )
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
    }
}

/// Keeps the first request head of a connection (see ``SkiffServerChannel``), then leaves.
final class FirstHeadRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    private let first: NIOLoopBoundBox<HTTPRequestHead?>

    init(_ first: NIOLoopBoundBox<HTTPRequestHead?>) {
        self.first = first
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            first.value = head
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireChannelRead(data)
    }
}

/// Passes on the head of a declined upgrade request before its end (see ``SkiffServerChannel``),
/// then leaves the pipeline.
final class DeclinedUpgradeReplay: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private var head: HTTPRequestHead?

    init(head: HTTPRequestHead) {
        self.head = head
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let head {
            self.head = nil
            if case .head = unwrapInboundIn(data) {
                // NIO passed the head after all: nothing to replay.
            } else {
                context.fireChannelRead(wrapInboundOut(.head(head)))
            }
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
            return
        }
        context.fireChannelRead(data)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with WebSocket streams (see ``SkiffServerChannel``).
    static func skiff(
        configuration: HTTP1Channel.Configuration,
        streams: any StreamUpgrading,
        connectionHandlers: @escaping @Sendable () -> ConnectionHandlers = { ConnectionHandlers() }
    ) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            SkiffServerChannel(responder: responder, configuration: configuration, streams: streams, connectionHandlers: connectionHandlers)
        }
    }
}

/// Handlers a connection gets besides Hummingbird's (see ``SkiffServerChannel``).
struct ConnectionHandlers {
    var front: [any ChannelHandler] = []
    var behindStateHandler: [any ChannelHandler] = []
}
