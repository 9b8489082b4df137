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

/// What the fast send path needs from the application.
struct FastSendSettings: Sendable {
    let maximumMessageBytes: Int
    let metrics: SkiffMetrics
    let httpMetrics: HTTPMetrics
    let accessLog: Bool
    let logger: Logger
}

/// Serves the hottest request, `POST /api/{queue}` with one message and no options, straight from
/// the connection's event loop, without the async channel, router and middleware machinery (which
/// cost several times the request itself; see BENCHMARKS.md).
///
/// Only the plain success path is served here: the request must have a valid queue name, no query,
/// no `Idempotency-Key`, no `Expect`, a body within the limit that is valid JSON, and the service
/// must run open (no API keys, no rate limit). Anything else, or any doubt, is handed on untouched
/// (the head and body it held are replayed) to the Hummingbird routes, which answer it as always.
/// The response is the route's byte for byte in headers and body; the HTTP metrics, the queue
/// metrics and the access log record it the same way.
///
/// It sits after Hummingbird's connection state handler, so graceful shutdown still sees the
/// request in progress and waits for its response.
final class FastSendHandler<Backend: QueueBackend>: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        /// Between requests.
        case idle
        /// A request the routes serve: every part goes on until its end.
        case passing
        /// A fast send whose body is arriving.
        case collecting(HTTPRequest, QueueName, ByteBuffer, ContinuousClock.Instant)
    }

    private var state = State.idle
    /// A fast send stored or being stored, whose response is not written yet.
    private var fastSendInFlight = false
    /// Requests handed to the routes whose response end has not been written yet.
    private var routedResponsesPending = 0
    /// Parts of pipelined requests that wait for the responses before them: responses leave in
    /// request order whichever path serves them, and one request is served at a time.
    private var held = CircularBuffer<HTTPRequestPart>()
    /// Past this many held parts the connection stops reading until they drain: a client cannot
    /// pile up pipelined requests without bound behind a slow one.
    static var maximumHeldParts: Int { 64 }
    /// A read the channel asked for while too much was held.
    private var readDeferred = false
    private let backend: Backend
    private let settings: FastSendSettings

    init(backend: Backend, settings: FastSendSettings) {
        self.backend = backend
        self.settings = settings
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if !held.isEmpty || !process(context, part) { held.append(part) }
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
            guard !fastSendInFlight, routedResponsesPending == 0 else { return false }
            if let queue = eligibleQueue(head) {
                state = .collecting(head, queue, context.channel.allocator.buffer(capacity: 0), .now)
            } else {
                state = .passing
                routedResponsesPending += 1
                context.fireChannelRead(wrapInboundOut(part))
            }
        case (.collecting(let head, let queue, var body, let start), .body(let chunk)):
            guard body.readableBytes + chunk.readableBytes <= settings.maximumMessageBytes else {
                replay(context, head: head, body: body, then: part)
                return true
            }
            body.writeImmutableBuffer(chunk)
            state = .collecting(head, queue, body, start)
        case (.collecting(let head, let queue, let body, let start), .end):
            guard JSONValidator.validate(body) == nil else {
                replay(context, head: head, body: body, then: part)
                return true
            }
            state = .idle
            fastSendInFlight = true
            send(context, head: head, queue: queue, body: body, start: start)
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

    /// The queue of a request this handler may serve, or `nil`.
    private func eligibleQueue(_ head: HTTPRequest) -> QueueName? {
        guard head.method == .post, let path = head.path, path.utf8.count > 5, path.hasPrefix("/api/") else { return nil }
        let name = path.utf8.dropFirst(5)
        // No query, no further path component (`/batch`, `/ack`, ...).
        guard !name.contains(UInt8(ascii: "?")), !name.contains(UInt8(ascii: "/")), let queue = QueueName(String(Substring(name))) else {
            return nil
        }
        let fields = head.headerFields
        guard fields[.idempotencyKey] == nil, fields[.expect] == nil else { return nil }
        if let connection = fields[.connection], connection.lowercased() != "keep-alive" { return nil }
        if let declared = fields[.contentLength].flatMap(Int.init), declared > settings.maximumMessageBytes { return nil }
        return queue
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

    private func send(_ context: ChannelHandlerContext, head: HTTPRequest, queue: QueueName, body: ByteBuffer, start: ContinuousClock.Instant) {
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let backend = self.backend
        let requestID = RequestIDMiddleware<SkiffRequestContext>.requestID(given: head.headerFields[.requestID])
        Task(executorPreference: EventLoopTaskExecutor.shared(for: loop)) {
            let status: HTTPResponse.Status
            var headers: HTTPFields
            let responseBody: ByteBuffer
            var failure: String?
            do {
                let sent = try await backend.send(body, to: queue, options: SendOptions())
                status = .created
                responseBody = ByteBuffer(string: QueueController<Backend>.sentJSON(sent))
                headers = [.contentType: "application/json; charset=utf-8", .contentLength: String(responseBody.readableBytes)]
            } catch {
                failure = "\(error)"
                let apiError = APIError(from: error)
                status = apiError.status
                (headers, responseBody) = apiError.rendered()
            }
            headers[.requestID] = requestID
            headers[.date] = HTTPDate.now()
            headers[.server] = "skiff"
            let response = HTTPResponse(status: status, headerFields: headers)
            let finish = {
                let (handler, context) = bound.value
                handler.respond(context, response, responseBody, queue: queue, requestID: requestID, failure: failure, start: start)
            }
            if loop.inEventLoop { finish() } else { loop.execute(finish) }
        }
    }

    private func respond(
        _ context: ChannelHandlerContext,
        _ response: HTTPResponse,
        _ body: ByteBuffer,
        queue: QueueName,
        requestID: String,
        failure: String?,
        start: ContinuousClock.Instant
    ) {
        fastSendInFlight = false
        context.write(wrapOutboundOut(.head(response)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        drain(context)
        var logger = settings.logger
        logger[metadataKey: "request.id"] = .string(requestID)
        if let failure, response.status.code >= 500 {
            logger.error("request failed", metadata: ["http.status": "\(response.status.code)", "error": "\(failure)"])
        }
        if failure == nil { settings.metrics.messageEnqueued(queue: queue.rawValue) }
        let observation = ResponseObservation(method: "POST", route: "/api/{queue}", status: response.status.code, duration: .now - start)
        settings.httpMetrics.record(observation)
        if settings.accessLog, logger.logLevel <= .info {
            observation.logAccess(path: "/api/" + queue.rawValue, logger: logger)
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
