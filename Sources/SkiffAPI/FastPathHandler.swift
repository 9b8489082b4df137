import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import SkiffQueue
import SkiffRedis
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What the fast path needs from the application.
struct FastPathSettings: Sendable {
    let api: APISettings
    let metrics: SkiffMetrics
    let httpMetrics: HTTPMetrics
    let accessLog: Bool
    let logger: Logger
}

/// Serves the two hottest requests straight from the connection's event loop, without the async
/// channel, router and middleware machinery (which cost several times the request itself; see
/// BENCHMARKS.md):
///
/// - `POST /api/{queue}` with one message and no options: no query, no `Idempotency-Key`, no
///   `Expect`, a body within the limit that is valid JSON;
/// - `GET /api/{queue}` with at most a valid `timeout`: the oldest message is claimed (waited for
///   as long as `timeout`), written, and deleted only once the write has reached the socket; if
///   the write fails or the client left meanwhile, the message goes back to the head of its queue.
///   A wait ends with 204 at its timeout, when the client leaves, or when graceful shutdown begins
///   (``GracefulShutdownRelay`` tells this handler, which sits behind the connection state handler).
///
/// The service must run open (no API keys, no rate limit). Anything else, or any doubt, is handed
/// on untouched (the head and body it held are replayed) to the Hummingbird routes, which answer it
/// as always. The response is the route's in status, headers and body; the HTTP metrics, the queue
/// metrics and the access log record it the same way.
///
/// It sits after Hummingbird's connection state handler, so graceful shutdown still sees the
/// request in progress and waits for its response.
final class FastPathHandler<Backend: QueueBackend>: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// A request this handler serves.
    enum Eligible: Equatable {
        case send(QueueName)
        case receive(QueueName, timeoutMilliseconds: Int)
    }

    private enum State {
        /// Between requests.
        case idle
        /// A request the routes serve: every part goes on until its end.
        case passing
        /// A fast request whose body is arriving.
        case collecting(HTTPRequest, Eligible, ByteBuffer, ContinuousClock.Instant)
    }

    /// What a fast receive's claim came back with.
    private enum Claimed {
        case message(Delivery)
        /// Nothing ready now (or the claim was fenced off): the route waits.
        case nothing
        case failure(any Error)
    }

    private var state = State.idle
    /// A fast request being served whose response is not written yet.
    private var fastRequestInFlight = false
    /// Requests handed to the routes whose response end has not been written yet.
    private var routedResponsesPending = 0
    /// The client closed its side or the connection dropped: a message claimed for it now goes back.
    private var clientDeparted = false
    /// The fast GET in progress: cancelled (it answers 204) when the client leaves or the replica
    /// shuts down gracefully.
    private var receiving: Task<Void, Never>?
    /// Graceful shutdown has begun: a GET still to come on this connection does not wait.
    private var isShuttingDown = false
    /// Parts of pipelined requests that wait for the responses before them: responses leave in
    /// request order whichever path serves them, and one request is served at a time.
    /// (An array, which allocates nothing while empty: every connection has one.)
    private var held: [HTTPRequestPart] = []
    /// Past this many held parts the connection stops reading until they drain: a client cannot
    /// pile up pipelined requests without bound behind a slow one.
    static var maximumHeldParts: Int { 64 }
    /// A read the channel asked for while too much was held.
    private var readDeferred = false
    private let backend: Backend
    private let settings: FastPathSettings

    init(backend: Backend, settings: FastPathSettings) {
        self.backend = backend
        self.settings = settings
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if !held.isEmpty || !process(context, part) { held.append(part) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed = event as? ChannelEvent {
            clientDeparted = true
            receiving?.cancel()
        }
        if event is GracefulShutdownRelay.ShutdownStarted {
            // Long-polls end with 204 at once, as on the route; the connection state handler then
            // closes the connection after the response.
            isShuttingDown = true
            receiving?.cancel()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        clientDeparted = true
        receiving?.cancel()
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        guard held.count < Self.maximumHeldParts else {
            readDeferred = true
            return
        }
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            routedResponsesPending = max(0, routedResponsesPending - 1)
            if !held.isEmpty {
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.execute {
                    let (handler, context) = bound.value
                    handler.drain(context)
                }
            }
        }
        context.write(data, promise: promise)
    }

    /// Serves or hands on one request part; `false` when it must wait.
    private func process(_ context: ChannelHandlerContext, _ part: HTTPRequestPart) -> Bool {
        switch (state, part) {
        case (.idle, .head(let head)):
            guard !fastRequestInFlight, routedResponsesPending == 0 else { return false }
            if let eligible = Self.eligible(head, settings: settings.api) {
                state = .collecting(head, eligible, context.channel.allocator.buffer(capacity: 0), .now)
            } else {
                state = .passing
                routedResponsesPending += 1
                context.fireChannelRead(wrapInboundOut(part))
            }
        case (.collecting(let head, let eligible, var body, let start), .body(let chunk)):
            // A GET with a body, or a message past the limit: the route says what it thinks of it.
            guard case .send = eligible, body.readableBytes + chunk.readableBytes <= settings.api.maximumMessageBytes else {
                replay(context, head: head, body: body, then: part)
                return true
            }
            body.writeImmutableBuffer(chunk)
            state = .collecting(head, eligible, body, start)
        case (.collecting(let head, .send(let queue), let body, let start), .end):
            guard JSONValidator.validate(body) == nil else {
                replay(context, head: head, body: body, then: part)
                return true
            }
            state = .idle
            fastRequestInFlight = true
            send(context, head: head, queue: queue, body: body, start: start)
        case (.collecting(let head, .receive(let queue, let timeout), _, let start), .end):
            state = .idle
            fastRequestInFlight = true
            receive(context, head: head, queue: queue, timeoutMilliseconds: timeout, start: start)
        case (.passing, .end):
            state = .idle
            context.fireChannelRead(wrapInboundOut(part))
        default:
            context.fireChannelRead(wrapInboundOut(part))
        }
        return true
    }

    /// Processes held parts until one must wait again.
    private func drain(_ context: ChannelHandlerContext) {
        var delivered = false
        while let part = held.first {
            guard process(context, part) else { break }
            held.removeFirst()
            delivered = true
        }
        // Outside a read: the async channel hands reads on at read-complete.
        if delivered { context.fireChannelReadComplete() }
        if readDeferred, held.count < Self.maximumHeldParts {
            readDeferred = false
            context.read()
        }
    }

    /// Whether this handler may serve a request with this head, and as what.
    static func eligible(_ head: HTTPRequest, settings: APISettings) -> Eligible? {
        guard let path = head.path, path.utf8.count > 5, path.hasPrefix("/api/") else { return nil }
        var name = Substring(path).dropFirst(5)
        var query: Substring?
        if let mark = name.firstIndex(of: "?") {
            query = name[name.index(after: mark)...]
            name = name[..<mark]
        }
        // No further path component (`/batch`, `/ack`, ...).
        guard !name.utf8.contains(UInt8(ascii: "/")), let queue = QueueName(String(name)) else { return nil }
        let fields = head.headerFields
        guard fields[.expect] == nil else { return nil }
        if let connection = fields[.connection], connection.lowercased() != "keep-alive" { return nil }
        switch head.method {
        case .post:
            guard query == nil, fields[.idempotencyKey] == nil else { return nil }
            if let declared = fields[.contentLength].flatMap(Int.init), declared > settings.maximumMessageBytes { return nil }
            return .send(queue)
        case .get:
            // At most `timeout`, and only a value the route accepts (it answers anything else 400).
            var timeout = settings.defaultTimeoutMilliseconds
            if let query, !query.isEmpty {
                guard query.hasPrefix("timeout="), case let digits = query.dropFirst(8), (1...6).contains(digits.utf8.count),
                    digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                    let value = Int(digits), value <= settings.maximumTimeoutMilliseconds
                else { return nil }
                timeout = value
            }
            if let declared = fields[.contentLength].flatMap(Int.init), declared > 0 { return nil }
            return .receive(queue, timeoutMilliseconds: timeout)
        default:
            return nil
        }
    }

    /// Hands a request it held to the routes after all.
    private func replay(_ context: ChannelHandlerContext, head: HTTPRequest, body: ByteBuffer, then part: HTTPRequestPart) {
        state = .passing
        if case .end = part { state = .idle }
        routedResponsesPending += 1
        context.fireChannelRead(wrapInboundOut(.head(head)))
        if body.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(.body(body))) }
        context.fireChannelRead(wrapInboundOut(part))
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

    private func send(_ context: ChannelHandlerContext, head: HTTPRequest, queue: QueueName, body: ByteBuffer, start: ContinuousClock.Instant) {
        let backend = self.backend
        let requestID = RequestIDMiddleware<SkiffRequestContext>.requestID(given: head.headerFields[.requestID])
        onLoop(context) { () -> Result<SentMessage, any Error> in
            do { return .success(try await backend.send(body, to: queue, options: SendOptions())) } catch { return .failure(error) }
        } then: { handler, context, outcome in
            let observation = Observation(method: "POST", queue: queue, requestID: requestID, start: start)
            switch outcome {
            case .success(let sent):
                let json = ByteBuffer(string: QueueController<Backend>.sentJSON(sent))
                let headers: HTTPFields = [.contentType: "application/json; charset=utf-8", .contentLength: String(json.readableBytes)]
                handler.respond(context, .created, headers, json, observation)
                handler.settings.metrics.messageEnqueued(queue: queue.rawValue)
            case .failure(let error):
                handler.respond(context, error: error, observation)
            }
        }
    }

    private func receive(_ context: ChannelHandlerContext, head: HTTPRequest, queue: QueueName, timeoutMilliseconds: Int, start: ContinuousClock.Instant) {
        let timeoutMilliseconds = isShuttingDown ? 0 : timeoutMilliseconds
        let backend = self.backend
        let metrics = settings.metrics
        let requestID = RequestIDMiddleware<SkiffRequestContext>.requestID(given: head.headerFields[.requestID])
        receiving = onLoop(context) { () -> Claimed in
            do {
                // With a timeout, a long-poll: the claim, then the wait if it found nothing (the
                // backend knows when that wait needs no claim of its own). This task is cancelled
                // if the client leaves or the replica shuts down; the backend gives back a message
                // handed over just then.
                if timeoutMilliseconds > 0 { metrics.waiterStarted() }
                defer { if timeoutMilliseconds > 0 { metrics.waiterFinished() } }
                let deliveries = try await backend.receive(from: queue, max: 1, timeout: .milliseconds(timeoutMilliseconds), mode: .autoAcknowledge)
                guard let delivery = deliveries.first else { return .nothing }
                // The fence, as on the route: a claim a stall may have lost is not ours to give.
                return try await backend.confirm(delivery) ? .message(delivery) : .nothing
            } catch is CancellationError {
                return .nothing
            } catch {
                return .failure(error)
            }
        } then: { handler, context, claimed in
            handler.receiving = nil
            let observation = Observation(method: "GET", queue: queue, requestID: requestID, start: start)
            switch claimed {
            case .nothing:
                handler.respond(context, .noContent, [:], nil, observation)
            case .failure(let error):
                handler.respond(context, error: error, observation)
            case .message(let delivery):
                handler.deliver(context, delivery, observation)
            }
        }
    }

    /// Writes a claimed message; it is deleted once the bytes have reached the socket, and goes
    /// back to the head of its queue if they never do or the client left during the claim.
    private func deliver(_ context: ChannelHandlerContext, _ delivery: Delivery, _ observation: Observation) {
        let settlement = DeliverySettlement(deliveries: [delivery], backend: backend, logger: settings.logger)
        // Settling stays on this loop, where this loop's Redis connection is.
        let executor = EventLoopTaskExecutor.shared(for: context.eventLoop)
        guard !clientDeparted, context.channel.isActive else {
            // As on the route: nobody will read it; the connection gets the 204 a departed waiter gets.
            Task(executorPreference: executor) { await settlement.release() }
            respond(context, .noContent, [:], nil, observation)
            return
        }
        let message = delivery.message
        var headers = QueueController<Backend>.headers(for: delivery)
        headers[.contentType] = "application/json"
        headers[.contentLength] = String(message.body.readableBytes)
        let written = context.eventLoop.makePromise(of: Void.self)
        let metrics = settings.metrics
        written.futureResult.whenComplete { result in
            switch result {
            case .success:
                metrics.messageDelivered(queue: delivery.queue.rawValue)
                Task(executorPreference: executor) {
                    if await settlement.complete() > 0 { metrics.messageAcked(queue: delivery.queue.rawValue) }
                }
            case .failure:
                Task(executorPreference: executor) { await settlement.release() }
            }
        }
        respond(context, .ok, headers, message.body, observation, written: written)
    }

    /// What the access log and the HTTP metrics record about a fast request.
    private struct Observation {
        let method: String
        let queue: QueueName
        let requestID: String
        let start: ContinuousClock.Instant
    }

    private func respond(_ context: ChannelHandlerContext, error: any Error, _ observation: Observation) {
        let apiError = APIError(from: error)
        let (headers, body) = apiError.rendered()
        if apiError.status.code >= 500 {
            var logger = settings.logger
            logger[metadataKey: "request.id"] = .string(observation.requestID)
            logger.error("request failed", metadata: ["http.status": "\(apiError.status.code)", "error": "\(error)"])
        }
        respond(context, apiError.status, headers, body, observation)
    }

    private func respond(
        _ context: ChannelHandlerContext,
        _ status: HTTPResponse.Status,
        _ headers: HTTPFields,
        _ body: ByteBuffer?,
        _ observation: Observation,
        written: EventLoopPromise<Void>? = nil
    ) {
        fastRequestInFlight = false
        var headers = headers
        headers[.requestID] = observation.requestID
        headers[.date] = HTTPDate.now()
        headers[.server] = "skiff"
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: headers))), promise: nil)
        if let body { context.write(wrapOutboundOut(.body(body)), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        drain(context)
        let record = ResponseObservation(method: observation.method, route: "/api/{queue}", status: status.code, duration: .now - observation.start)
        settings.httpMetrics.record(record)
        if settings.accessLog, settings.logger.logLevel <= .info {
            var logger = settings.logger
            logger[metadataKey: "request.id"] = .string(observation.requestID)
            record.logAccess(path: "/api/" + observation.queue.rawValue, logger: logger)
        }
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
