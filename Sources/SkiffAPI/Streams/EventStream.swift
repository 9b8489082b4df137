import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import SkiffQueue
import SkiffSupport
import Synchronization

/// A stream's frames as Server-Sent Events: a message is an event whose `id:` is its receipt and
/// whose `data:` is the same JSON a WebSocket frame carries; any other frame is an event named
/// after its op (`event: expired`, `event: error`). The response body's writer takes them in order;
/// a write's future completes once the writer has taken its bytes.
final class EventStreamOutput: StreamOutput {
    let channel: any Channel
    private let continuation: AsyncStream<(ByteBuffer, EventLoopPromise<Void>)>.Continuation
    let events: AsyncStream<(ByteBuffer, EventLoopPromise<Void>)>
    /// Promises of events not written yet, failed when the stream ends.
    private let pending = Mutex<(promises: [ObjectIdentifier: EventLoopPromise<Void>], closed: Bool)>(([:], false))

    init(channel: any Channel) {
        self.channel = channel
        (events, continuation) = AsyncStream.makeStream()
    }

    var isWritable: Bool { channel.isWritable }

    var eventLoop: any EventLoop { channel.eventLoop }

    /// Events go to the response writer through `events`, which takes them one at a time.
    func untilWritable() async {}

    /// Every event goes to the response writer as it comes (it flushes each).
    func flush() {}

    func write(_ frame: ByteBuffer) -> EventLoopFuture<Void> {
        var event = ByteBuffer(string: "event: \(Self.op(of: frame))\ndata: ")
        event.writeImmutableBuffer(frame)
        event.writeStaticString("\n\n")
        return send(event)
    }

    func writeMessage(_ frame: ByteBuffer, receipt: Receipt?) -> EventLoopFuture<Void> {
        var event = ByteBuffer()
        if let receipt { event.writeString("id: \(receipt)\n") }
        event.writeStaticString("data: ")
        event.writeImmutableBuffer(frame)
        event.writeStaticString("\n\n")
        return send(event)
    }

    /// A comment line: a heartbeat that keeps proxies from closing an idle feed.
    func heartbeat() {
        _ = send(ByteBuffer(string: ": ping\n\n"))
    }

    /// The writer took the event: from here its promise is the writer's to complete, and closing
    /// the output no longer fails it (a drain must not release an event the client got).
    func taken(_ promise: EventLoopPromise<Void>) {
        _ = pending.withLock { $0.promises.removeValue(forKey: ObjectIdentifier(promise.futureResult)) }
    }

    /// No more events will be written: everything still waiting fails, and so does every later write.
    func close() {
        let promises = pending.withLock { state in
            state.closed = true
            defer { state.promises = [:] }
            return Array(state.promises.values)
        }
        continuation.finish()
        for promise in promises { promise.fail(ChannelError.ioOnClosedChannel) }
    }

    private func send(_ event: ByteBuffer) -> EventLoopFuture<Void> {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        let closed = pending.withLock { state in
            if !state.closed { state.promises[ObjectIdentifier(promise.futureResult)] = promise }
            return state.closed
        }
        if closed {
            promise.fail(ChannelError.ioOnClosedChannel)
        } else {
            continuation.yield((event, promise))
        }
        return promise.futureResult
    }

    /// The op of a frame Skiff wrote (`{"op":"<op>",…`).
    static func op(of frame: ByteBuffer) -> String {
        let prefix = #"{"op":""#
        guard let text = frame.getString(at: frame.readerIndex, length: min(frame.readableBytes, 32)), text.hasPrefix(prefix) else { return "skiff" }
        return String(text.dropFirst(prefix.count).prefix { $0 != "\"" })
    }
}

/// `GET /api/{queue}/events`: a Server-Sent Events feed of the queue's messages for browsers and
/// curl, in acknowledged mode. `prefetch` bounds the unacknowledged messages (default 10); the
/// client acks with `DELETE /api/{queue}/messages/{receipt}` on any replica, which frees a place
/// within ``reconcileInterval``. When the connection ends, whatever it held is released at once,
/// so a reconnect (with `Last-Event-ID` or not) loses nothing.
struct EventStreamController<Backend: QueueBackend>: Sendable {
    typealias Context = SkiffRequestContext
    let endpoint: StreamEndpoint<Backend>

    /// How soon an ack made elsewhere frees a place in a full window.
    static var reconcileInterval: Duration { .milliseconds(250) }
    static var defaultPrefetch: Int { 10 }

    func addRoutes(to router: Router<Context>) {
        router.get("/api/:queue/events", use: events)
        router.addMethodNotAllowed(path: "/api/:queue/events", allowed: [.get])
    }

    @Sendable func events(request: Request, context: Context) async throws -> Response {
        let queue = try QueueController<Backend>.queueName(context)
        let (_, query) = StreamEndpoint<Backend>.split(request.uri.description)
        let parameters = try StreamParameters(
            queue: queue,
            query: StreamEndpoint<Backend>.pairs(query),
            creditName: "prefetch",
            credit: Self.defaultPrefetch,
            allowsAutoAck: false
        )
        if parameters.signedPayloadURLs { try endpoint.exchange.checkSignsPayloadURLs() }
        let streams = endpoint.streams
        guard streams.admit() else {
            throw APIError(
                .serviceUnavailable,
                "this replica holds its maximum of \(streams.maximum) streams (MAX_STREAMS); retry shortly",
                headers: [.retryAfter: "1"]
            )
        }
        let (endpoint, channel, grant, logger) = (self.endpoint, context.channel, context.accessGrant, context.logger)
        let headers: HTTPFields = [
            .contentType: "text/event-stream; charset=utf-8",
            .cacheControl: "no-cache",
            // nginx and some proxies buffer responses unless told not to.
            HTTPField.Name("X-Accel-Buffering")!: "no",
            // Every event leaves at once (see ResponseFlushCoalescer).
            .skiffStreamingResponse: "1",
        ]
        return Response(
            status: .ok,
            headers: headers,
            body: ResponseBody { writer in
                defer { streams.release() }
                let output = EventStreamOutput(channel: channel)
                let session = StreamSession(
                    parameters: parameters,
                    exchange: endpoint.exchange,
                    grant: grant,
                    rateLimiter: nil,
                    output: output,
                    logger: logger,
                    reconcileInterval: Self.reconcileInterval
                )
                let executor = EventLoopTaskExecutor.shared(for: channel.eventLoop)
                let deliveries = Task(executorPreference: executor) { await session.runDeliveries() }
                let interval = TimeAmount(endpoint.pingInterval)
                let heartbeat = channel.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in output.heartbeat() }
                // The client leaving ends the feed at once (Hummingbird would only notice at the next write).
                _ = await ClientPresence.watch(channel) { output.close() }
                endpoint.exchange.metrics.streamOpened()
                await withGracefulShutdownHandler {
                    do {
                        // A first comment, so the client sees the feed open before any message.
                        try await writer.write(ByteBuffer(string: ": \(queue) open\n\n"))
                        for await (event, promise) in output.events {
                            output.taken(promise)
                            do {
                                try await writer.write(event)
                                promise.succeed()
                            } catch {
                                promise.fail(error)
                                throw error
                            }
                        }
                    } catch {
                        logger.debug("event stream ended", metadata: ["error": "\(error)"])
                    }
                } onGracefulShutdown: {
                    output.close()
                }
                output.close()
                heartbeat.cancel()
                deliveries.cancel()
                await deliveries.value
                await session.releaseHeld()
                endpoint.exchange.metrics.streamClosed()
                try? await writer.finish(nil)
            }
        )
    }
}
