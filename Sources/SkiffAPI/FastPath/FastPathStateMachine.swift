import HTTPTypes
import NIOCore
import SkiffQueue

/// A request the fast path serves itself.
enum FastPathRequest: Equatable, Sendable {
    case send(QueueName)
    case receive(QueueName, timeoutMilliseconds: Int)
    case publish(TopicName)

    /// Whether the fast path may serve a request with this head, and as what; `nil` sends it to
    /// the routes. Only the plainest forms qualify: a POST of one message with no query and no
    /// special header, a GET with at most a valid `timeout`; a POST of one message to a topic,
    /// as plain as the POST to a queue.
    static func classify(_ head: FastPathRequestHead, settings: APISettings) -> FastPathRequest? {
        guard !head.hasSpecialHeader, head.method != .other else { return nil }
        let path = head.target
        guard path.utf8.count > 5, path.hasPrefix("/api/") else { return nil }
        var name = Substring(path).dropFirst(5)
        var query: Substring?
        if let mark = name.firstIndex(of: "?") {
            query = name[name.index(after: mark)...]
            name = name[..<mark]
        }
        if name.hasPrefix("topics/") {
            // `topics` is no queue's name: this is a topic route, and only the publish is served here.
            let topicName = name.dropFirst(7)
            guard head.method == .post, query == nil, !topicName.utf8.contains(UInt8(ascii: "/")), let topic = TopicName(topicName),
                (1...settings.largestBufferedMessageBytes).contains(head.contentLength)
            else { return nil }
            return .publish(topic)
        }
        // No further path component (`/batch`, `/ack`, ...).
        guard !name.utf8.contains(UInt8(ascii: "/")), let queue = QueueName(name) else { return nil }
        switch head.method {
        case .post:
            // An empty body is not JSON: the route answers it.
            // A body the payload store takes is streamed there by the route.
            guard query == nil, head.contentLength >= 1, head.contentLength <= settings.largestBufferedMessageBytes else { return nil }
            return .send(queue)
        case .get:
            // At most `timeout`, read as the route reads it; anything else, or a value the route
            // refuses, is the route's to answer.
            var raw: Substring?
            if let query, !query.isEmpty {
                guard query.hasPrefix("timeout=") else { return nil }
                raw = query.dropFirst(8)
            }
            guard let timeout = try? ExchangeParameters.timeout(raw, settings: settings) else { return nil }
            guard head.contentLength == 0 else { return nil }
            return .receive(queue, timeoutMilliseconds: timeout)
        case .other:
            return nil
        }
    }

    /// The method and path the access policy judges.
    var accessTarget: (method: HTTPRequest.Method, path: String) {
        switch self {
        case .send(let queue): (.post, "/api/" + queue.rawValue)
        case .receive(let queue, _): (.get, "/api/" + queue.rawValue)
        case .publish(let topic): (.post, "/api/topics/" + topic.rawValue)
        }
    }
}

/// The fast path's framing decisions, apart from the socket (as SwiftNIO keeps
/// `NIOTypedHTTPServerUpgraderStateMachine` apart from its handler): which bytes of the connection
/// it serves itself, which it passes on to NIO's decoder and the routes, when a request must wait
/// for the responses before it, and when the events it holds back (the client's half-close, the
/// quiesce of graceful shutdown) go on. ``FastPathHandler`` feeds it the channel's events and
/// carries out the actions it returns, one ``nextAction()`` at a time, until there is none.
///
/// Responses leave in request order: a fast request waits until every routed request before it has
/// written its response end (``routedResponseEnded()``), and nothing after a fast request is served
/// or passed on until its response is written (``fastResponseWritten()``).
struct FastPathStateMachine {
    enum Action: Equatable {
        /// Hand these bytes to NIO's decoder: the routes serve the request they belong to.
        case passOn(ByteBuffer)
        /// NIO's decoder reads the rest of the connection alone from here on (counted once).
        case handOver
        /// Serve this request; call ``fastResponseWritten()`` when its response is written.
        case serve(FastPathRequest, FastPathRequestHead, body: ByteBuffer)
        /// Bytes were passed on outside a read burst: the decoder reads them at read-complete.
        case fireReadComplete
        /// The client's half-close, held back while a request was in progress, goes on.
        case fireInputClosed
        /// Graceful shutdown's quiesce, held back while a fast request was in progress, goes on.
        case fireQuiesce
        /// The channel asked for a read while too much was buffered; there is room again.
        case read
    }

    /// What to do with bytes just read.
    enum ReadOutcome: Equatable {
        /// The decoder has the connection and nothing is buffered: pass them straight on.
        case passThrough
        /// Buffered: run ``nextAction()`` until it returns `nil`.
        case advance
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

    /// Whether the fast path serves a request with this head (and the caller's keys allow it).
    private let classify: (FastPathRequestHead) -> FastPathRequest?
    /// Whether the fast path serves it with this body (a send's must be JSON; the route words the
    /// error otherwise).
    private let acceptsBody: (FastPathRequest, ByteBuffer) -> Bool
    /// Past this many buffered bytes (a client piling up pipelined requests behind a slow one) the
    /// connection stops reading until they drain. Always room for one whole fast request.
    let maximumBufferedBytes: Int

    private var mode = Mode.serving
    /// Bytes read and not yet served or passed on (`nil` when none: an idle connection keeps nothing).
    private var buffered: ByteBuffer?
    /// A fast request is being served and its response is not written yet.
    private(set) var fastRequestInFlight = false
    /// Requests passed to the routes whose response end has not been written yet.
    private(set) var routedResponsesPending = 0
    /// The client closed its side or the connection dropped: a message claimed for it goes back.
    private(set) var clientDeparted = false
    /// Graceful shutdown has begun: no further request is served here.
    private(set) var isShuttingDown = false
    private var inputClosedPending = false
    private var quiescePending = false
    /// Inside a read burst (the channel's read-complete follows).
    private var reading = false
    /// Bytes were passed on since the last read-complete.
    private var passedOn = false
    private var readDeferred = false
    /// Nothing more can be served or passed on until an event changes that.
    private var stalled = false
    /// Stalled on a complete fast request that waits for the routes' responses before it.
    private var waitingForRoutes = false

    init(
        maximumBufferedBytes: Int,
        classify: @escaping (FastPathRequestHead) -> FastPathRequest?,
        acceptsBody: @escaping (FastPathRequest, ByteBuffer) -> Bool
    ) {
        self.maximumBufferedBytes = maximumBufferedBytes
        self.classify = classify
        self.acceptsBody = acceptsBody
    }

    var bufferedBytes: Int { buffered?.readableBytes ?? 0 }

    // MARK: Events

    mutating func read(_ bytes: ByteBuffer) -> ReadOutcome {
        reading = true
        if mode == .handedOver, buffered == nil { return .passThrough }
        if buffered == nil {
            buffered = bytes
        } else {
            var bytes = bytes
            buffered!.writeBuffer(&bytes)
        }
        stalled = false
        return .advance
    }

    /// The channel's read burst ended (its read-complete goes on as always).
    mutating func readComplete() {
        reading = false
        passedOn = false
    }

    /// Whether to read now; otherwise the read is made once enough has drained (`.read`).
    mutating func readRequested() -> Bool {
        guard bufferedBytes < maximumBufferedBytes else {
            readDeferred = true
            return false
        }
        return true
    }

    /// The client half-closed: held until the request in progress is answered.
    mutating func inputClosed() {
        clientDeparted = true
        inputClosedPending = true
    }

    /// Graceful shutdown began. `true`: pass the event on now; `false`: it goes on with
    /// `.fireQuiesce` once the fast request in progress is answered.
    mutating func quiesce() -> Bool {
        isShuttingDown = true
        guard !fastRequestInFlight else {
            quiescePending = true
            return false
        }
        return true
    }

    mutating func channelInactive() {
        clientDeparted = true
        buffered = nil
    }

    /// The routes wrote a response's end. `true`: something waits behind it (run ``nextAction()``
    /// once that write has run its course).
    mutating func routedResponseEnded() -> Bool {
        routedResponsesPending = max(0, routedResponsesPending - 1)
        stalled = false
        return buffered != nil || inputClosedPending
    }

    /// The fast request's response is written.
    mutating func fastResponseWritten() {
        fastRequestInFlight = false
        stalled = false
    }

    // MARK: Actions

    /// The next thing to do, or `nil` until the next event.
    mutating func nextAction() -> Action? {
        if !stalled {
            if let action = step() { return action }
            stalled = true
        }
        if inputClosedPending, !fastRequestInFlight, !waitingForRoutes {
            // What is left is an incomplete request: NIO's decoder has its say, then the event.
            if let rest = buffered {
                buffered = nil
                mode = .handedOver
                passedOn = true
                return .passOn(rest)
            }
            inputClosedPending = false
            return .fireInputClosed
        }
        if quiescePending, !fastRequestInFlight {
            quiescePending = false
            return .fireQuiesce
        }
        // Outside a read: the decoder and the async channel hand reads on at read-complete.
        if passedOn, !reading {
            passedOn = false
            return .fireReadComplete
        }
        if readDeferred, bufferedBytes < maximumBufferedBytes {
            readDeferred = false
            return .read
        }
        return nil
    }

    /// Serves or passes on the next part of what is buffered; `nil` when nothing can go now.
    private mutating func step() -> Action? {
        waitingForRoutes = false
        while let bytes = buffered, bytes.readableBytes > 0 {
            switch mode {
            case .handedOver:
                return passOn(bytes.readableBytes)
            case .forwarding(let remaining):
                let count = min(remaining, bytes.readableBytes)
                mode = count == remaining ? .serving : .forwarding(remaining: remaining - count)
                return passOn(count)
            case .forwardingChunked(var framing):
                switch bytes.withUnsafeReadableBytes({ framing.scan($0) }) {
                case .unframeable:
                    // The decoder has what came before; from here on it reads alone.
                    mode = .handedOver
                    return .handOver
                case .needsMore:
                    mode = .forwardingChunked(framing)
                    return passOn(bytes.readableBytes)
                case .ended(let bodyBytes):
                    mode = .serving
                    return passOn(bodyBytes)
                }
            case .serving:
                guard !fastRequestInFlight, !isShuttingDown else { return nil }
                switch FastPathRequestHead.parse(bytes) {
                case .incomplete:
                    return nil
                case .unframeable:
                    mode = .handedOver
                    return .handOver
                case .head(let head):
                    let length = head.length + head.contentLength
                    if let request = classify(head) {
                        guard routedResponsesPending == 0, bytes.readableBytes >= length else {
                            waitingForRoutes = routedResponsesPending > 0
                            return nil
                        }
                        let body = bytes.getSlice(at: bytes.readerIndex + head.length, length: head.contentLength)!
                        if acceptsBody(request, body) {
                            var rest = bytes
                            rest.moveReaderIndex(forwardBy: length)
                            buffered = rest.readableBytes > 0 ? rest : nil
                            fastRequestInFlight = true
                            return .serve(request, head, body: body)
                        }
                    }
                    routedResponsesPending += 1
                    if head.mayEndConnection {
                        // `Connection: close` or an upgrade: whether anything after this request is
                        // read, and how, is for NIO's decoder and the routes alone to decide (the
                        // routes never run a request behind a `close`). Hand the connection over
                        // with this request.
                        mode = .handedOver
                        return .handOver
                    }
                    if head.isChunked {
                        // The head now, the body as its chunks come.
                        mode = .forwardingChunked(ChunkedBodyFraming())
                        return passOn(head.length)
                    }
                    mode = .forwarding(remaining: length)
                }
            }
        }
        return nil
    }

    /// The first `count` buffered bytes, for NIO's decoder; the rest stays.
    private mutating func passOn(_ count: Int) -> Action {
        var rest = buffered!
        let part = rest.readSlice(length: count)!
        buffered = rest.readableBytes > 0 ? rest : nil
        passedOn = true
        return .passOn(part)
    }
}
