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
    /// `nil` when the backend keeps no topics: publishes go to the routes, which answer 501.
    let topics: Topics?
}

/// Serves the two hottest requests straight from the bytes on the socket, in front of NIO's HTTP
/// codec and Hummingbird's channel, router and middleware (which cost several times the request
/// itself; see BENCHMARKS.md):
///
/// - `POST /api/{queue}` with one message and no options: no query, no `Idempotency-Key`, no
///   `Expect`, a body within the limit that is valid JSON;
/// - `POST /api/topics/{topic}` under the same conditions: a publish, answered as the route
///   answers it (``TopicController/publish(_:to:options:topics:metrics:)``);
/// - `GET /api/{queue}` with at most a valid `timeout`: the oldest message is claimed (waited for
///   as long as `timeout`), written, and deleted only once the write has reached the socket; if
///   the write fails or the client left meanwhile, the message goes back to the head of its queue.
///   A wait ends with 204 at its timeout, when the client leaves, or when graceful shutdown begins.
///
/// It is the first handler of the connection and reads request heads itself
/// (``FastPathRequestHead``, a strict HTTP/1.1 subset); what to serve, pass on or hold back is
/// decided by ``FastPathStateMachine``, which has no socket and its own tests; this handler carries
/// out its actions and does the I/O: the claim, the write, the settlement. Every other request is passed on, byte for
/// byte, to NIO's decoder and the routes, which answer it as always; the handler only needs to know
/// where it ends (its `Content-Length`, or the end of its chunks, ``ChunkedBodyFraming``), and
/// ``RoutedResponseObserver`` tells it when its response is written, so responses leave in request
/// order whichever path serves them. A head or a chunked body outside the strict subset (another
/// `Transfer-Encoding`, another HTTP version, chunk extensions or trailers, odd syntax) hands the
/// rest of the connection to NIO's decoder for good.
///
/// API keys are checked as the access-control middleware checks them; a request they refuse goes to
/// the routes, which answer 401 or 403. With a rate limit configured the handler is not installed.
/// A fast response is the route's in status, headers and body (``MessageExchange``); the HTTP metrics, the queue metrics and the access log record it the
/// same way. Graceful shutdown reaches this handler first: a fast request in progress finishes (a
/// long-poll with 204) before the quiesce event goes on to the connection state handler, which then
/// closes the idle connection.
final class FastPathHandler<Backend: QueueBackend>: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// What a fast receive's claim came back with.
    private enum Claimed {
        case lease(DeliveryLease)
        /// Nothing ready now (or the claim was fenced off): the route waits.
        case nothing
        case failure(any Error)
    }

    /// Which bytes are served here and which go on, and when held-back events go on.
    private var machine: FastPathStateMachine
    /// The fast GET in progress: cancelled (it answers 204) when the client leaves or the replica
    /// shuts down gracefully.
    private var receiving: Task<Void, Never>?
    private var context: ChannelHandlerContext?
    private let exchange: MessageExchange<Backend>
    private let settings: FastPathSettings

    init(backend: Backend, settings: FastPathSettings) {
        self.exchange = MessageExchange(backend: backend, settings: settings.api, metrics: settings.metrics, settlements: settings.settlements)
        self.settings = settings
        let (api, policy) = (settings.api, settings.policy)
        self.machine = FastPathStateMachine(
            // The largest body the fast path takes: a message under the offload threshold (the
            // route streams larger queue messages to the store, and collects larger publishes).
            maximumBufferedBytes: api.largestBufferedMessageBytes + FastPathRequestHead.maximumBytes
                + (64 << 10),
            classify: { [hasTopics = settings.topics != nil] head in
                guard let request = FastPathRequest.classify(head, settings: api) else { return nil }
                if case .publish = request, !hasTopics { return nil }
                // A request the API keys refuse is the routes' to answer, with their status,
                // challenge and log line.
                guard !policy.isOpen else { return request }
                let (method, path) = request.accessTarget
                guard case .allow = policy.decide(method: method, path: path, authorization: head.authorization) else { return nil }
                return request
            },
            acceptsBody: { request, body in
                // A send that is not JSON: the route says so, in its words.
                switch request {
                case .send, .publish: return JSONValidator.validate(body) == nil
                case .receive: return true
                }
            }
        )
    }

    /// Past this many buffered bytes the connection stops reading until they drain.
    var maximumBufferedBytes: Int { machine.maximumBufferedBytes }

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
        switch machine.read(unwrapInboundIn(data)) {
        case .passThrough: context.fireChannelRead(data)
        case .advance: advance(context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        machine.readComplete()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed = event as? ChannelEvent {
            machine.inputClosed()
            receiving?.cancel()
            advance(context)
            return
        }
        if event is ChannelShouldQuiesceEvent {
            receiving?.cancel()
            guard machine.quiesce() else { return }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        machine.channelInactive()
        receiving?.cancel()
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        if machine.readRequested() { context.read() }
    }

    /// The routes wrote the end of a response. What waited behind it goes on once that write has
    /// run its course through the pipeline (not from inside it).
    private func routedResponseEnded() {
        guard machine.routedResponseEnded(), let context else { return }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = bound.value
            guard handler.context != nil, context.channel.isActive else { return }
            handler.advance(context)
        }
    }

    /// Carries out what the state machine says, as far as it can go now.
    private func advance(_ context: ChannelHandlerContext) {
        while let action = machine.nextAction() {
            switch action {
            case .passOn(let bytes): context.fireChannelRead(wrapInboundOut(bytes))
            case .handOver: settings.metrics.fastPathHandedOver()
            case .serve(let request, let head, let body): serve(context, request, head: head, body: body)
            case .fireReadComplete: context.fireChannelReadComplete()
            case .fireInputClosed: context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            case .fireQuiesce: context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            case .read: context.read()
            }
        }
    }

    private func serve(_ context: ChannelHandlerContext, _ request: FastPathRequest, head: FastPathRequestHead, body: ByteBuffer) {
        connectionGuard(context)?.headReceived()
        let requestID = RequestIDMiddleware<SkiffRequestContext>.requestID(given: head.requestID)
        switch request {
        case .send(let queue):
            send(context, queue: queue, body: body, requestID: requestID)
        case .publish(let topic):
            publish(context, topic: topic, body: body, requestID: requestID)
        case .receive(let queue, let timeout):
            receive(context, queue: queue, timeoutMilliseconds: timeout, requestID: requestID)
        }
    }

    /// The connection's ``ConnectionGuard``, told when a request's head is read and its response
    /// written.
    private var connectionGuard = ConnectionGuardLookup()

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
        let observation = Observation(method: "POST", path: .queue(queue), requestID: requestID, start: .now)
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

    private func publish(_ context: ChannelHandlerContext, topic: TopicName, body: ByteBuffer, requestID: String) {
        let metrics = settings.metrics
        let observation = Observation(method: "POST", path: .topic(topic), requestID: requestID, start: .now)
        // (classify leaves such a publish to the routes; answered as they would answer it)
        guard let topics = settings.topics else {
            return respond(context, error: APIError(.notImplemented, "this backend keeps no topics"), observation)
        }
        onLoop(context) { () -> Result<ResponseParts, any Error> in
            do {
                return .success(try await TopicController.publish(body, to: topic, options: SendOptions(), topics: topics, metrics: metrics))
            } catch {
                return .failure(error)
            }
        } then: { handler, context, outcome in
            switch outcome {
            case .success(let parts): handler.respond(context, parts, observation)
            case .failure(let error): handler.respond(context, error: error, observation)
            }
        }
    }

    private func receive(_ context: ChannelHandlerContext, queue: QueueName, timeoutMilliseconds: Int, requestID: String) {
        let (exchange, logger) = (self.exchange, settings.logger)
        let request = DeliveryRequest(queue: queue, timeout: .milliseconds(timeoutMilliseconds))
        let observation = Observation(method: "GET", path: .queue(queue), requestID: requestID, start: .now)
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
        guard !machine.clientDeparted, context.channel.isActive, !ClientDepartureHandler.peerHasClosed(context.channel) else {
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
        enum Path {
            case queue(QueueName)
            case topic(TopicName)

            /// The route's pattern, as the HTTP metrics label it.
            var route: String {
                switch self {
                case .queue: "/api/{queue}"
                case .topic: "/api/topics/{topic}"
                }
            }

            var text: String {
                switch self {
                case .queue(let queue): "/api/" + queue.rawValue
                case .topic(let topic): "/api/topics/" + topic.rawValue
                }
            }
        }

        let method: String
        let path: Path
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
        machine.fastResponseWritten()
        connectionGuard(context)?.responseCompleted()
        if let body, let last = body.last {
            context.write(wrapOutboundOut(response), promise: nil)
            for chunk in body.dropLast() { context.write(wrapOutboundOut(chunk), promise: nil) }
            context.writeAndFlush(wrapOutboundOut(last), promise: written)
        } else {
            context.writeAndFlush(wrapOutboundOut(response), promise: written)
        }
        let record = ResponseObservation(method: observation.method, route: observation.path.route, status: status.code, duration: .now - observation.start)
        settings.httpMetrics.record(record)
        if settings.accessLog, settings.logger.logLevel <= .info {
            var logger = settings.logger
            logger[metadataKey: "request.id"] = .string(observation.requestID)
            record.logAccess(path: observation.path.text, logger: logger)
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
