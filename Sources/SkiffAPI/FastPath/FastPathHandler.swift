import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import SkiffQueue
import SkiffRedis
import SkiffSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What the fast path needs from the application.
struct FastPathSettings: Sendable {
    let api: APISettings
    /// The API keys: a request they do not allow goes to the routes, which refuse it.
    let policy: AccessPolicy
    let metrics: SkiffMetrics
    let httpMetrics: HTTPMetrics
    let accessLog: Bool
    let logger: Logger
    /// Where deletes and releases after a write run, so that shutdown waits for them.
    let settlements: SettlementTasks
}

/// Serves the two hottest requests straight from the bytes on the socket, in front of NIO's HTTP
/// codec and Hummingbird's channel, router and middleware (which cost several times the request
/// itself; see BENCHMARKS.md):
///
/// - `POST /api/{queue}` with one message and no options: no query, no `Idempotency-Key`, no
///   `Expect`, a body within the limit that is valid JSON;
/// - `GET /api/{queue}` with at most a valid `timeout`: the oldest message is claimed (waited for
///   as long as `timeout`), written, and deleted only once the write has reached the socket; if
///   the write fails or the client left meanwhile, the message goes back to the head of its queue.
///   A wait ends with 204 at its timeout, when the client leaves, or when graceful shutdown begins.
///
/// It is the first handler of the connection and reads request heads itself
/// (``FastPathRequestHead``, a strict HTTP/1.1 subset). Every other request is passed on, byte for
/// byte, to NIO's decoder and the routes, which answer it as always; the handler only needs to know
/// where it ends (its `Content-Length`, or the end of its chunks, ``ChunkedBodyFraming``), and
/// ``RoutedResponseObserver`` tells it when its response is written, so responses leave in request
/// order whichever path serves them. A head or a chunked body outside the strict subset (another
/// `Transfer-Encoding`, another HTTP version, chunk extensions or trailers, odd syntax) hands the
/// rest of the connection to NIO's decoder for good.
///
/// API keys are checked as the access-control middleware checks them; a request they refuse goes to
/// the routes, which answer 401 or 403. With a rate limit configured the handler is not installed.
/// A fast response is the route's in
/// status, headers and body; the HTTP metrics, the queue metrics and the access log record it the
/// same way. Graceful shutdown reaches this handler first: a fast request in progress finishes (a
/// long-poll with 204) before the quiesce event goes on to the connection state handler, which then
/// closes the idle connection.
final class FastPathHandler<Backend: QueueBackend>: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A request this handler serves.
    enum Eligible: Equatable {
        case send(QueueName)
        case receive(QueueName, timeoutMilliseconds: Int)
    }

    private enum Mode: Equatable {
        /// Reading request heads: serving fast requests, passing others on.
        case serving
        /// Passing on the rest of a request the routes serve.
        case forwarding(remaining: Int)
        /// Passing on a chunked body the routes read, watching for its end.
        case forwardingChunked(ChunkedBodyFraming)
        /// NIO's decoder has the connection for good.
        case handedOver
    }

    /// What a fast receive's claim came back with.
    private enum Claimed {
        case lease(DeliveryLease)
        /// Nothing ready now (or the claim was fenced off): the route waits.
        case nothing
        case failure(any Error)
    }

    private var mode = Mode.serving
    /// Bytes read and not yet served or passed on (`nil` when none: an idle connection keeps nothing).
    private var buffered: ByteBuffer?
    /// A fast request being served whose response is not written yet.
    private var fastRequestInFlight = false
    /// Requests passed to the routes whose response end has not been written yet.
    private var routedResponsesPending = 0
    /// The client closed its side or the connection dropped: a message claimed for it now goes back.
    private var clientDeparted = false
    /// The fast GET in progress: cancelled (it answers 204) when the client leaves or the replica
    /// shuts down gracefully.
    private var receiving: Task<Void, Never>?
    /// Graceful shutdown has begun: no further request is served here (the connection closes
    /// once the one in progress is answered).
    private var isShuttingDown = false
    /// Events held back until the fast request in progress is answered (the handlers behind would
    /// close the connection under it): the client's half-close, the quiesce of graceful shutdown.
    private var inputClosedPending = false
    private var quiescePending = false
    /// Inside a read burst (the channel's read-complete follows); outside one, bytes passed on are
    /// followed by a read-complete of this handler's own.
    private var reading = false
    /// A read the channel asked for while too much was buffered.
    private var readDeferred = false
    private var context: ChannelHandlerContext?
    private let exchange: MessageExchange<Backend>
    private let settings: FastPathSettings
    /// Past this many buffered bytes (a client piling up pipelined requests behind a slow one) the
    /// connection stops reading until they drain. Always room for one whole fast request.
    let maximumBufferedBytes: Int

    init(backend: Backend, settings: FastPathSettings) {
        self.exchange = MessageExchange(backend: backend, settings: settings.api, metrics: settings.metrics, settlements: settings.settlements)
        self.settings = settings
        self.maximumBufferedBytes = settings.api.maximumMessageBytes + FastPathRequestHead.maximumBytes + (64 << 10)
    }

    /// The observer to place where routed responses pass, behind Hummingbird's connection state handler.
    func makeRoutedResponseObserver() -> RoutedResponseObserver {
        RoutedResponseObserver { [self] in routedResponseEnded() }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reading = true
        if mode == .handedOver, buffered == nil {
            context.fireChannelRead(data)
            return
        }
        var bytes = unwrapInboundIn(data)
        if buffered == nil {
            buffered = bytes
        } else {
            buffered!.writeBuffer(&bytes)
        }
        advance(context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed = event as? ChannelEvent {
            clientDeparted = true
            receiving?.cancel()
            inputClosedPending = true
            advance(context)
            return
        }
        if event is ChannelShouldQuiesceEvent {
            isShuttingDown = true
            receiving?.cancel()
            if fastRequestInFlight {
                quiescePending = true
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        clientDeparted = true
        buffered = nil
        receiving?.cancel()
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        guard (buffered?.readableBytes ?? 0) < maximumBufferedBytes else {
            readDeferred = true
            return
        }
        context.read()
    }

    /// The routes wrote the end of a response. What waited behind it goes on once that write has
    /// run its course through the pipeline (not from inside it).
    private func routedResponseEnded() {
        routedResponsesPending = max(0, routedResponsesPending - 1)
        guard let context, buffered != nil || inputClosedPending else { return }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = bound.value
            guard handler.context != nil, context.channel.isActive else { return }
            handler.advance(context)
        }
    }

    /// Serves, passes on or keeps what is buffered, as far as it can go now.
    private func advance(_ context: ChannelHandlerContext) {
        var passedOn = false
        /// A complete fast request waits for the routes' responses before it.
        var waitingForRoutes = false
        serving: while var bytes = buffered, bytes.readableBytes > 0 {
            switch mode {
            case .handedOver:
                passOn(bytes.readableBytes, of: bytes, context)
                passedOn = true
            case .forwarding(let remaining):
                let count = min(remaining, bytes.readableBytes)
                mode = count == remaining ? .serving : .forwarding(remaining: remaining - count)
                passOn(count, of: bytes, context)
                passedOn = true
            case .forwardingChunked(var framing):
                let count: Int
                switch bytes.withUnsafeReadableBytes({ framing.scan($0) }) {
                case .unframeable:
                    // The decoder has what came before; from here on it reads alone.
                    mode = .handedOver
                    settings.metrics.fastPathHandedOver()
                    continue serving
                case .needsMore:
                    mode = .forwardingChunked(framing)
                    count = bytes.readableBytes
                case .ended(let bodyBytes):
                    mode = .serving
                    count = bodyBytes
                }
                passOn(count, of: bytes, context)
                passedOn = true
            case .serving:
                guard !fastRequestInFlight, !isShuttingDown else { break serving }
                switch FastPathRequestHead.parse(bytes) {
                case .incomplete:
                    break serving
                case .unframeable:
                    mode = .handedOver
                    settings.metrics.fastPathHandedOver()
                case .head(let head):
                    let length = head.length + head.contentLength
                    if let eligible = Self.eligible(head, settings: settings.api), allowed(eligible, head) {
                        guard routedResponsesPending == 0, bytes.readableBytes >= length else {
                            waitingForRoutes = routedResponsesPending > 0
                            break serving
                        }
                        let body = bytes.getSlice(at: bytes.readerIndex + head.length, length: head.contentLength)!
                        if case .send = eligible, JSONValidator.validate(body) != nil {
                            // Not JSON: the route says so, in its words.
                        } else {
                            bytes.moveReaderIndex(forwardBy: length)
                            buffered = bytes.readableBytes > 0 ? bytes : nil
                            serve(context, eligible, head: head, body: body)
                            continue serving
                        }
                    }
                    routedResponsesPending += 1
                    if head.mayEndConnection {
                        // `Connection: close` or an upgrade: whether anything after this request is
                        // read, and how, is for NIO's decoder and the routes alone to decide (the
                        // routes never run a request behind a `close`). Hand the connection over
                        // with this request.
                        mode = .handedOver
                        settings.metrics.fastPathHandedOver()
                        continue serving
                    }
                    if head.isChunked {
                        // The head now, the body as its chunks come.
                        mode = .forwardingChunked(ChunkedBodyFraming())
                        passOn(head.length, of: bytes, context)
                        passedOn = true
                    } else {
                        mode = .forwarding(remaining: length)
                    }
                }
            }
        }
        if inputClosedPending, !fastRequestInFlight, !waitingForRoutes {
            // What is left is an incomplete request: NIO's decoder has its say, then the event.
            inputClosedPending = false
            if let rest = buffered {
                buffered = nil
                mode = .handedOver
                context.fireChannelRead(wrapInboundOut(rest))
                passedOn = true
            }
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        }
        if quiescePending, !fastRequestInFlight {
            quiescePending = false
            context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        // Outside a read: the decoder and the async channel hand reads on at read-complete.
        if passedOn, !reading { context.fireChannelReadComplete() }
        if readDeferred, (buffered?.readableBytes ?? 0) < maximumBufferedBytes {
            readDeferred = false
            context.read()
        }
    }

    /// Passes the first `count` of `bytes` (what is buffered) on to NIO's decoder and keeps the rest.
    private func passOn(_ count: Int, of bytes: ByteBuffer, _ context: ChannelHandlerContext) {
        var rest = bytes
        let part = rest.readSlice(length: count)!
        buffered = rest.readableBytes > 0 ? rest : nil
        context.fireChannelRead(wrapInboundOut(part))
    }

    /// Whether the API keys allow the request (always, when the service runs open). A refusal is
    /// the routes' to give, with their status, challenge and log line.
    private func allowed(_ eligible: Eligible, _ head: FastPathRequestHead) -> Bool {
        guard !settings.policy.isOpen else { return true }
        let (method, queue): (HTTPRequest.Method, QueueName) =
            switch eligible {
            case .send(let queue): (.post, queue)
            case .receive(let queue, _): (.get, queue)
            }
        guard case .allow = settings.policy.decide(method: method, path: "/api/" + queue.rawValue, authorization: head.authorization) else {
            return false
        }
        return true
    }

    private func serve(_ context: ChannelHandlerContext, _ eligible: Eligible, head: FastPathRequestHead, body: ByteBuffer) {
        fastRequestInFlight = true
        connectionGuard(context)?.headReceived()
        let requestID = RequestIDMiddleware<SkiffRequestContext>.requestID(given: head.requestID)
        switch eligible {
        case .send(let queue):
            send(context, queue: queue, body: body, requestID: requestID)
        case .receive(let queue, let timeout):
            receive(context, queue: queue, timeoutMilliseconds: timeout, requestID: requestID)
        }
    }

    /// The connection's ``ConnectionGuard``, told when a request's head is read and its response
    /// written.
    private var connectionGuard = ConnectionGuardLookup()

    /// Whether this handler may serve a request with this head, and as what.
    static func eligible(_ head: FastPathRequestHead, settings: APISettings) -> Eligible? {
        guard !head.hasSpecialHeader, head.method != .other else { return nil }
        let path = head.target
        guard path.utf8.count > 5, path.hasPrefix("/api/") else { return nil }
        var name = Substring(path).dropFirst(5)
        var query: Substring?
        if let mark = name.firstIndex(of: "?") {
            query = name[name.index(after: mark)...]
            name = name[..<mark]
        }
        // No further path component (`/batch`, `/ack`, ...).
        guard !name.utf8.contains(UInt8(ascii: "/")), let queue = QueueName(name) else { return nil }
        switch head.method {
        case .post:
            // An empty body is not JSON: the route answers it.
            guard query == nil, (1...settings.maximumMessageBytes).contains(head.contentLength) else { return nil }
            return .send(queue)
        case .get:
            // At most `timeout`, read as the route reads it; anything else, or a value the route
            // refuses, is the route's to answer.
            var raw: Substring?
            if let query, !query.isEmpty {
                guard query.hasPrefix("timeout=") else { return nil }
                raw = query.dropFirst(8)
            }
            guard let timeout = try? MessageExchange<Backend>.timeout(raw, settings: settings) else { return nil }
            guard head.contentLength == 0 else { return nil }
            return .receive(queue, timeoutMilliseconds: timeout)
        case .other:
            return nil
        }
    }

    /// Runs `work` on a task that prefers the connection's loop, then `then` on the loop.
    @discardableResult
    private func onLoop<Value: Sendable>(
        _ context: ChannelHandlerContext,
        _ work: @escaping @Sendable () async -> Value,
        then: @escaping (FastPathHandler, ChannelHandlerContext, Value) -> Void
    ) -> Task<Void, Never> {
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context, then), eventLoop: loop)
        return Task(executorPreference: EventLoopTaskExecutor.shared(for: loop)) {
            let result = await work()
            let finish = {
                let (handler, context, then) = bound.value
                then(handler, context, result)
            }
            if loop.inEventLoop { finish() } else { loop.execute(finish) }
        }
    }

    private func send(_ context: ChannelHandlerContext, queue: QueueName, body: ByteBuffer, requestID: String) {
        let (exchange, logger) = (self.exchange, settings.logger)
        let observation = Observation(method: "POST", queue: queue, requestID: requestID, start: .now)
        onLoop(context) { () -> Result<ResponseParts, any Error> in
            do { return .success(try await exchange.send(body, to: queue, options: SendOptions(), logger: logger)) } catch { return .failure(error) }
        } then: { handler, context, outcome in
            switch outcome {
            case .success(let parts):
                handler.respond(context, parts, observation)
            case .failure(let error):
                handler.respond(context, error: error, observation)
            }
        }
    }

    private func receive(_ context: ChannelHandlerContext, queue: QueueName, timeoutMilliseconds: Int, requestID: String) {
        let (exchange, logger) = (self.exchange, settings.logger)
        let request = DeliveryRequest(queue: queue, timeout: .milliseconds(timeoutMilliseconds))
        let observation = Observation(method: "GET", queue: queue, requestID: requestID, start: .now)
        receiving = onLoop(context) { () -> Claimed in
            // This task is cancelled if the client leaves or the replica shuts down; the backend
            // gives back a message handed over just then.
            do {
                return try await exchange.deliver(request, logger: logger).map { .lease($0) } ?? .nothing
            } catch is CancellationError {
                return .nothing
            } catch {
                return .failure(error)
            }
        } then: { handler, context, claimed in
            handler.receiving = nil
            switch claimed {
            case .nothing:
                handler.respondNoContent(context, observation)
            case .failure(let error):
                handler.respond(context, error: error, observation)
            case .lease(let lease):
                handler.deliver(context, lease, observation)
            }
        }
    }

    /// Writes a claimed message; it is deleted once the bytes have reached the socket, and goes
    /// back to the head of its queue if they never do or the client left during the claim.
    private func deliver(_ context: ChannelHandlerContext, _ lease: DeliveryLease, _ observation: Observation) {
        let (tasks, exchange) = (settings.settlements, self.exchange)
        // Settling stays on this loop, where this loop's Redis connection is.
        let executor = EventLoopTaskExecutor.shared(for: context.eventLoop)
        // A client (or a proxy that aborted for it) whose FIN or RST is already here gets nothing.
        guard !clientDeparted, context.channel.isActive, !ClientDepartureHandler.peerHasClosed(context.channel) else {
            // As on the route: nobody will read it; the connection gets the 204 a departed waiter gets.
            tasks.run(on: executor) { await lease.release() }
            respondNoContent(context, observation)
            return
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenComplete { result in
            switch result {
            case .success: tasks.run(on: executor, exchange.written(lease))
            case .failure: tasks.run(on: executor) { await lease.release() }
            }
        }
        respond(context, MessageExchange<Backend>.messageResponse(lease), observation, written: written)
    }

    /// Writes `parts` as the route's response would be written: a small body in the head's
    /// buffer (one buffer, one iovec), a large one as it came from storage.
    private func respond(_ context: ChannelHandlerContext, _ parts: ResponseParts, _ observation: Observation, written: EventLoopPromise<Void>? = nil) {
        let length = parts.bodyLength
        let inline = length <= Self.inlineBodyBytes
        var response = responseHead(context, parts.status, observation, bodyBytes: inline ? length : 0) { head in Self.write(parts.headers, to: &head) }
        if inline {
            for chunk in parts.body { response.writeImmutableBuffer(chunk) }
            respond(context, response, body: nil, status: parts.status, observation, written: written)
        } else {
            respond(context, response, body: parts.body, status: parts.status, observation, written: written)
        }
    }

    /// Bodies up to this size are copied behind the head: one buffer, one iovec.
    static var inlineBodyBytes: Int { 4096 }

    /// What the access log and the HTTP metrics record about a fast request.
    private struct Observation {
        let method: String
        let queue: QueueName
        let requestID: String
        let start: ContinuousClock.Instant
    }

    private func respond(_ context: ChannelHandlerContext, error: any Error, _ observation: Observation) {
        let apiError = APIError(from: error)
        let (fields, body) = apiError.rendered()
        if apiError.status.code >= 500 {
            var logger = settings.logger
            logger[metadataKey: "request.id"] = .string(observation.requestID)
            logger.error("request failed", metadata: ["http.status": "\(apiError.status.code)", "error": "\(error)"])
        }
        respond(context, ResponseParts(status: apiError.status, headers: fields, body: [body]), observation)
    }

    private func respondNoContent(_ context: ChannelHandlerContext, _ observation: Observation) {
        let response = responseHead(context, .noContent, observation, bodyBytes: 0) { _ in }
        respond(context, response, body: nil, status: .noContent, observation)
    }

    private static func write(_ fields: HTTPFields, to head: inout ByteBuffer) {
        for field in fields {
            head.writeString(field.name.rawName)
            head.writeStaticString(": ")
            head.writeString(field.value)
            head.writeStaticString("\r\n")
        }
    }

    /// A response head as NIO's encoder writes the route's: status line, the response's own fields,
    /// then `X-Request-Id`, `Date` and `Server`, as the middleware and the server add them.
    private func responseHead(
        _ context: ChannelHandlerContext,
        _ status: HTTPResponse.Status,
        _ observation: Observation,
        bodyBytes: Int,
        fields: (inout ByteBuffer) -> Void
    ) -> ByteBuffer {
        var head = context.channel.allocator.buffer(capacity: 256 + bodyBytes)
        head.writeStaticString("HTTP/1.1 ")
        head.writeString(String(status.code))
        head.writeStaticString(" ")
        head.writeString(status.reasonPhrase)
        head.writeStaticString("\r\n")
        fields(&head)
        head.writeStaticString("X-Request-Id: ")
        head.writeString(observation.requestID)
        head.writeStaticString("\r\nDate: ")
        head.writeString(HTTPDate.now())
        head.writeStaticString("\r\nServer: skiff\r\n\r\n")
        return head
    }

    private func respond(
        _ context: ChannelHandlerContext,
        _ response: ByteBuffer,
        body: [ByteBuffer]?,
        status: HTTPResponse.Status,
        _ observation: Observation,
        written: EventLoopPromise<Void>? = nil
    ) {
        fastRequestInFlight = false
        connectionGuard(context)?.responseCompleted()
        if let body, let last = body.last {
            context.write(wrapOutboundOut(response), promise: nil)
            for chunk in body.dropLast() { context.write(wrapOutboundOut(chunk), promise: nil) }
            context.writeAndFlush(wrapOutboundOut(last), promise: written)
        } else {
            context.writeAndFlush(wrapOutboundOut(response), promise: written)
        }
        let record = ResponseObservation(method: observation.method, route: "/api/{queue}", status: status.code, duration: .now - observation.start)
        settings.httpMetrics.record(record)
        if settings.accessLog, settings.logger.logLevel <= .info {
            var logger = settings.logger
            logger[metadataKey: "request.id"] = .string(observation.requestID)
            record.logAccess(path: "/api/" + observation.queue.rawValue, logger: logger)
        }
        advance(context)
    }
}

/// Tells ``FastPathHandler`` when the routes have written the end of a response, so the requests
/// after it may be served. It sits behind Hummingbird's connection state handler, where routed
/// responses pass as HTTP parts.
final class RoutedResponseObserver: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let responseEnded: () -> Void

    init(responseEnded: @escaping () -> Void) {
        self.responseEnded = responseEnded
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let isEnd = if case .end = unwrapOutboundIn(data) { true } else { false }
        context.write(data, promise: promise)
        if isEnd { responseEnded() }
    }
}

/// The `Date` header value (RFC 9110 IMF-fixdate), formatted once a second.
enum HTTPDate {
    private static let cache = Mutex<(second: Int, text: String)>((-1, ""))

    static func now() -> String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        let second = time.tv_sec
        return cache.withLock { cache in
            if cache.second == second { return cache.text }
            var seconds = second
            var parts = tm()
            gmtime_r(&seconds, &parts)
            var buffer = [CChar](repeating: 0, count: 64)
            let length = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
            let text = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            cache = (second, text)
            return text
        }
    }
}
