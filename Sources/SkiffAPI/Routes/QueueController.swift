import HTTPTypes
public import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
public import SkiffQueue
import SkiffRedis
import SkiffSupport

extension HTTPField.Name {
    static let skiffMessageID = Self("Skiff-Message-Id")!
    static let skiffEnqueuedAt = Self("Skiff-Enqueued-At")!
    static let skiffReceiveCount = Self("Skiff-Receive-Count")!
    static let skiffPayload = Self("Skiff-Payload")!
    static let skiffReceipt = Self("Skiff-Receipt")!
    static let skiffPriority = Self("Skiff-Priority")!
    static let skiffDuplicate = Self("Skiff-Duplicate")!
    static let skiffLastError = Self("Skiff-Last-Error")!
    static let skiffDeadLetterSource = Self("Skiff-Dead-Letter-Source")!
    static let skiffDeadLetterReceiveCount = Self("Skiff-Dead-Letter-Receive-Count")!
    static let skiffFirstReceivedAt = Self("Skiff-First-Received-At")!
    static let skiffLastReceivedAt = Self("Skiff-Last-Received-At")!
    static let idempotencyKey = Self("Idempotency-Key")!
    static let skiffBatchTruncated = Self("Skiff-Batch-Truncated")!
    static let traceparent = Self("traceparent")!
    static let tracestate = Self("tracestate")!
}

/// The message routes, over any ``QueueBackend``.
///
/// - `POST /api/{queue}[?delay=ms&priority=0-9]` (+ `Idempotency-Key`): store one JSON value, 201
///   (200 with `Skiff-Duplicate: true` for a repeat).
/// - `GET /api/{queue}?timeout=ms[&visibility=ms]`: the oldest message (200) or nothing once the
///   wait ends (204). With `visibility`, acknowledged mode: the response carries `Skiff-Receipt`.
/// - Receipts: `DELETE /api/{queue}/messages/{receipt}` (ack), `POST .../nack`, `POST .../visibility`.
/// - Batches: `POST /api/{queue}/batch`, `GET /api/{queue}/batch`, `POST /api/{queue}/ack`.
public struct QueueController<Backend: QueueBackend>: Sendable {
    public typealias Context = SkiffRequestContext
    let backend: Backend
    let settings: APISettings
    let metrics: SkiffMetrics
    /// Where releases of dropped responses run, so that shutdown waits for them.
    let settlements: SettlementTasks?

    /// Messages per batch, both ways.
    static var maximumBatch: Int { 1000 }
    /// How long a batch receive that had to wait for its first message lingers for more.
    static var batchLinger: Duration { .milliseconds(5) }

    /// What the route shares with the fast path: parameters, sends, deliveries, answers, metrics.
    let exchange: MessageExchange<Backend>

    public init(backend: Backend, settings: APISettings, metrics: SkiffMetrics = SkiffMetrics(), settlements: SettlementTasks? = nil) {
        self.backend = backend
        self.settings = settings
        self.metrics = metrics
        self.settlements = settlements
        self.exchange = MessageExchange(backend: backend, settings: settings, metrics: metrics, settlements: settlements)
    }

    public func addRoutes(to router: Router<Context>) {
        router.post("/api/:queue", use: send)
        router.get("/api/:queue", use: receive)
        router.post("/api/:queue/batch", use: sendBatch)
        router.get("/api/:queue/batch", use: receiveBatch)
        router.addMethodNotAllowed(path: "/api/:queue/batch", allowed: [.get, .post])
        router.post("/api/:queue/ack", use: acknowledgeBatch)
        router.addMethodNotAllowed(path: "/api/:queue/ack", allowed: [.post])
        router.delete("/api/:queue/messages/:receipt", use: acknowledge)
        // GET is the lookup by id (QueueAdminController).
        router.addMethodNotAllowed(path: "/api/:queue/messages/:receipt", allowed: [.get, .delete])
        router.post("/api/:queue/messages/:receipt/nack", use: reject)
        router.addMethodNotAllowed(path: "/api/:queue/messages/:receipt/nack", allowed: [.post])
        router.post("/api/:queue/messages/:receipt/visibility", use: changeVisibility)
        router.addMethodNotAllowed(path: "/api/:queue/messages/:receipt/visibility", allowed: [.post])
    }

    // MARK: Sending

    @Sendable func send(request: Request, context: Context) async throws -> Response {
        let queue = try Self.queueName(context)
        let options = try Self.sendOptions(request)
        let limits = try await exchange.limits(of: queue)
        let length = request.headers[.contentLength].flatMap(Int.init)
        if let length, length > limits.maximumBytes {
            throw Self.tooLarge(limits, settings: settings)
        }
        // A body the payload store takes, of a declared length, goes there as it arrives.
        if let length, let threshold = limits.offloadThresholdBytes, length > threshold,
            let parts = try await exchange.send(streaming: request.body, size: length, to: queue, options: options, logger: context.logger)
        {
            return Self.response(parts)
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limits.maximumBytes)
        } catch is NIOTooManyBytesError {
            throw Self.tooLarge(limits, settings: settings)
        }
        if let error = JSONValidator.validate(body) {
            throw APIError(.badRequest, "body is not valid JSON: \(error)")
        }
        return Self.response(try await exchange.send(body, to: queue, options: options, logger: context.logger))
    }

    @Sendable func sendBatch(request: Request, context: Context) async throws -> Response {
        let queue = try Self.queueName(context)
        let options = try Self.sendOptions(request)
        let messages = try await Self.batchMessages(request, settings: settings)
        let sent = try await exchange.send(batch: messages, to: queue, options: options)
        let duplicate = sent.first?.isDuplicate ?? false
        if !duplicate { metrics.messageEnqueued(queue: queue.rawValue, count: sent.count) }
        // Written as bytes: quoting 1000 ids into a `String` was a quarter of a batch's CPU.
        var json = ByteBufferAllocator().buffer(capacity: 64 + 30 * sent.count)
        json.writeStaticString(#"{"ids":["#)
        for (index, message) in sent.enumerated() {
            if index > 0 { json.writeInteger(UInt8(ascii: ",")) }
            JSONText.writeQuoted(message.id, to: &json)
        }
        json.writeStaticString(#"],"queue":"#)
        JSONText.writeQuoted(queue.rawValue, to: &json)
        json.writeStaticString("}")
        var response = Self.json(status: duplicate ? .ok : .created, json)
        if duplicate { response.headers[.skiffDuplicate] = "true" }
        return response
    }

    /// A batch body's messages (a JSON array, or NDJSON by its content type), each validated.
    /// - Throws: ``APIError`` 400 for a malformed batch, 413 past MAX_BATCH_BYTES or for a
    ///   message past MAX_MESSAGE_BYTES.
    /// - Parameter maximumMessageBytes: each message's limit (`nil`: ``APISettings/maximumMessageBytes``).
    static func batchMessages(_ request: Request, settings: APISettings, maximumMessageBytes: Int? = nil) async throws -> [ByteBuffer] {
        let maximumMessageBytes = maximumMessageBytes ?? settings.maximumMessageBytes
        let body = try await collectBody(request, limit: settings.maximumBatchBytes, name: "MAX_BATCH_BYTES", settings: settings)
        let messages: [ByteBuffer]
        do {
            let contentType = request.headers[.contentType]?.lowercased() ?? ""
            if contentType.hasPrefix("application/x-ndjson") || contentType.hasPrefix("application/jsonl") {
                messages = try BatchBody.ndjson(body, maximumCount: maximumBatch)
            } else {
                messages = try BatchBody.jsonArray(body, maximumCount: maximumBatch)
            }
        } catch {
            throw APIError(.badRequest, error.message)
        }
        if let index = messages.firstIndex(where: { $0.readableBytes > maximumMessageBytes }) {
            throw APIError(
                .contentTooLarge, "message \(index) is larger than the largest message (\(maximumMessageBytes) bytes; \(settings.messageLimitSource))")
        }
        return messages
    }

    /// `delay` and `priority` from the query, `Idempotency-Key` and the trace context from the headers.
    static func sendOptions(_ request: Request) throws -> SendOptions {
        let query = request.uri.queryParameters
        var options = SendOptions()
        if let delay = query["delay"] {
            options.delay = .milliseconds(try Self.integer(delay, name: "delay", range: 0...QueueSettings.maximumRetentionMilliseconds))
        }
        if let priority = query["priority"] {
            options.priority = Int(try Self.integer(priority, name: "priority", range: 0...Int64(SendOptions.maximumPriority)))
        }
        if let key = request.headers[.idempotencyKey] {
            guard (1...SendOptions.maximumIdempotencyKeyLength).contains(key.utf8.count) else {
                throw APIError(.badRequest, "Idempotency-Key must be 1 to \(SendOptions.maximumIdempotencyKeyLength) bytes")
            }
            options.idempotencyKey = key
        }
        // Kept with the messages outside their bodies; a malformed one is ignored, as the W3C
        // recommendation asks (with tracing on, the send span's own context is stored instead).
        if let parent = request.headers[.traceparent] {
            options.traceContext = MessageTraceContext(traceparent: parent, tracestate: request.headers[.tracestate])
        }
        return options
    }

    /// The whole body, refused with 413 past `limit` (named by its setting `name`).
    static func collectBody(_ request: Request, limit: Int, name: String = "MAX_MESSAGE_BYTES", settings: APISettings) async throws -> ByteBuffer {
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            throw tooLarge(limit, name: name, settings: settings)
        }
        do {
            return try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw tooLarge(limit, name: name, settings: settings)
        }
    }

    // MARK: Receiving

    @Sendable func receive(request: Request, context: Context) async throws -> Response {
        let queue = try Self.queueName(context)
        let timeout = try exchange.timeout(request.uri.queryParameters["timeout"])
        let mode = try receiveMode(request)
        let links = try exchange.signedPayloadURLs(request.uri.queryParameters["payload"], acknowledged: mode != .autoAcknowledge)
        let wanted = DeliveryRequest(queue: queue, timeout: .milliseconds(timeout), mode: mode, signedPayloadURLs: links)
        guard let lease = try await lease(wanted, context: context) else {
            return Response(status: .noContent)
        }
        return await respond(with: lease, MessageExchange<Backend>.messageResponse(lease), context: context)
    }

    @Sendable func receiveBatch(request: Request, context: Context) async throws -> Response {
        let queue = try Self.queueName(context)
        let query = request.uri.queryParameters
        let timeout = try exchange.timeout(query["timeout"])
        let max = Int(try query["max"].map { try Self.integer($0, name: "max", range: 1...Int64(Self.maximumBatch)) } ?? 10)
        let mode = try receiveMode(request)
        // The reply's bytes are bounded: the claim itself stops at the cap (less the JSON around
        // each body), so storage never hands over more than one message beyond it.
        let maxBytes = Swift.max(1, settings.maximumBatchBytes - max * Self.batchEnvelopeBytes)
        let links = try exchange.signedPayloadURLs(query["payload"], acknowledged: mode != .autoAcknowledge)
        let wanted = DeliveryRequest(
            queue: queue, max: max, maxBytes: maxBytes, timeout: .milliseconds(timeout), mode: mode, linger: Self.batchLinger, signedPayloadURLs: links)
        guard let lease = try await lease(wanted, context: context) else {
            return Response(status: .noContent)
        }
        return await respond(with: lease, MessageExchange<Backend>.batchResponse(lease), context: context)
    }

    /// The response carrying `lease`'s messages, marked so that its settlement can wait for the
    /// bytes to reach the socket.
    private func respond(with lease: DeliveryLease, _ parts: ResponseParts, context: Context) async -> Response {
        var headers = parts.headers
        let written = await awaitWrite(of: &headers, context: context)
        return Response(status: parts.status, headers: headers, body: deliveryBody(lease, parts.body, written: written, context: context))
    }

    /// About what a batch reply adds around each body (`{"id":…,"receipt":…,"body":}`), reserved
    /// out of MAX_BATCH_BYTES.
    static var batchEnvelopeBytes: Int { 200 }

    /// The delivery lifecycle up to the hand-out (``QueueBackend/deliver(_:context:)``), for this
    /// request's client. `nil` when the wait ended empty, the client left, or the claims were lost
    /// to a stall (the fence).
    private func lease(_ request: DeliveryRequest, context: Context) async throws -> DeliveryLease? {
        let (exchange, logger) = (self.exchange, context.logger)
        guard request.timeout > .zero else {
            // Nothing to wait for: on the request's own task, with no wait task and no watch.
            guard let lease = try await exchange.deliver(request, logger: logger) else { return nil }
            return await Self.handOut(lease, clientDeparted: ClientDepartureHandler.hasDeparted(context.channel))
        }
        // Hummingbird does not cancel a handler when its client leaves: the wait is cancelled
        // when the client's side of the connection closes, and graceful shutdown ends it with 204.
        // The wait task stays on this event loop, where the wake-ups arrive.
        let receiving = Task(executorPreference: EventLoopTaskExecutor.current) {
            try await cancelWhenGracefulShutdown { try await exchange.deliver(request, logger: logger) }
        }
        let presence = await ClientPresence.watch(context.channel) { receiving.cancel() }
        let lease: DeliveryLease?
        do {
            lease = try await withTaskCancellationHandler {
                try await receiving.value
            } onCancel: {
                receiving.cancel()
            }
        } catch is CancellationError {
            return nil
        }
        guard let lease else { return nil }
        return await Self.handOut(lease, clientDeparted: presence.hasDeparted)
    }

    /// A client that left while its messages were being claimed gets nothing: they go back.
    private static func handOut(_ lease: DeliveryLease, clientDeparted: Bool) async -> DeliveryLease? {
        guard clientDeparted else { return lease }
        await lease.release()
        return nil
    }

    /// Marks a delivery's response so that its settlement can wait for the bytes to reach the
    /// socket. `nil` when the connection cannot tell (in-process tests): then handing the body to
    /// the writer counts as written.
    private func awaitWrite(of headers: inout HTTPFields, context: Context) async -> (token: UInt64, future: EventLoopFuture<Void>)? {
        let token = ResponseFlushCoalescer.makeToken()
        guard let future = await ResponseFlushCoalescer.whenWritten(token: token, on: context.channel) else { return nil }
        headers[.skiffWriteToken] = String(token)
        return (token, future)
    }

    /// Writes `chunks`, then settles: the messages are deleted (auto-acknowledge) only once their
    /// bytes were written to the client's socket; if that fails they go back to the head. A
    /// claim lost between the handler and the write (a stall) aborts the response before its
    /// body, so the client sees a broken response rather than a message that is not its own.
    private func deliveryBody(
        _ lease: DeliveryLease,
        _ chunks: [ByteBuffer],
        written: (token: UInt64, future: EventLoopFuture<Void>)?,
        context: Context
    ) -> ResponseBody {
        let (exchange, settlements) = (self.exchange, self.settlements)
        let channel = context.channel
        let length = chunks.reduce(0) { $0 + $1.readableBytes }
        return ResponseBody(contentLength: length) { writer in
            // Fence again for a stall between the handler and this write (free unless one happened).
            guard try await lease.isStillHeld() else {
                if let written { ResponseFlushCoalescer.forget(token: written.token, on: channel) }
                throw APIError(.serviceUnavailable, "the message was recovered by another replica")
            }
            do {
                // The client (or a proxy that aborted for it) closed first: nothing is written.
                if await ClientDepartureHandler.peerHasClosed(on: channel) {
                    throw ChannelError.ioOnClosedChannel
                }
                for chunk in chunks { try await writer.write(chunk) }
                try await writer.finish(nil)
            } catch {
                if let written { ResponseFlushCoalescer.forget(token: written.token, on: channel) }
                await lease.release()
                throw error
            }
            if let written {
                do {
                    try await written.future.get()
                } catch {
                    // The connection closed before the bytes were written: nobody read them.
                    await lease.release()
                    return
                }
            }
            // The whole body is in the socket: delivered. Nothing that happens after this proves
            // otherwise: a fast client reads the response and closes at once.
            let settle = exchange.written(lease)
            // Off the request, as on the fast path; shutdown still waits for it.
            if let settlements {
                settlements.run(on: EventLoopTaskExecutor.shared(for: channel.eventLoop), settle)
            } else {
                await settle()
            }
        }
    }

    private func receiveMode(_ request: Request) throws -> ReceiveMode {
        guard let raw = request.uri.queryParameters["visibility"] else { return .autoAcknowledge }
        // `visibility` without a value: the queue's default visibility timeout.
        if raw.isEmpty { return .acknowledge(visibilityTimeout: nil) }
        let milliseconds = try Self.integer(
            raw, name: "visibility", range: QueueSettings.minimumReceiveVisibilityMilliseconds...QueueSettings.maximumVisibilityTimeoutMilliseconds)
        return .acknowledge(visibilityTimeout: .milliseconds(milliseconds))
    }

    // MARK: Receipts

    @Sendable func acknowledge(request: Request, context: Context) async throws -> Response {
        let queue = try Self.queueName(context)
        let receipt = try Self.receipt(context)
        guard try await settling("ack", in: queue, { try await backend.acknowledge([receipt], in: queue)[0] }) else { throw Self.unknownReceipt() }
        metrics.messageAcked(queue: queue.rawValue)
        return Response(status: .noContent)
    }

    @Sendable func acknowledgeBatch(request: Request, context: Context) async throws -> Response {
        let queue = try Self.queueName(context)
        let document = try JSONDocument.object(try await Self.collectBody(request, limit: 1 << 20, settings: settings))
        guard case .array(let list)? = document["receipts"], (1...Self.maximumBatch).contains(list.count) else {
            throw APIError(.badRequest, #"body must be {"receipts": [...]} with 1 to \#(Self.maximumBatch) receipts"#)
        }
        var receipts: [Receipt] = []
        var malformed: [String] = []
        for item in list {
            guard let text = item.string else { throw APIError(.badRequest, "receipts must be strings") }
            if let receipt = Receipt(text) { receipts.append(receipt) } else { malformed.append(text) }
        }
        let results = try await settling("ack", in: queue, count: receipts.count) { try await backend.acknowledge(receipts, in: queue) }
        metrics.messageAcked(queue: queue.rawValue, count: results.filter { $0 }.count)
        let notFound = malformed + zip(receipts, results).filter { !$0.1 }.map { $0.0.description }
        let json = #"{"acked":"# + String(results.filter { $0 }.count) + #","notFound":["# + notFound.map(JSONText.quoted).joined(separator: ",") + "]}"
        return Self.json(status: .ok, json)
    }

    @Sendable func reject(request: Request, context: Context) async throws -> Response {
        let queue = try Self.queueName(context)
        let receipt = try Self.receipt(context)
        let delay = try request.uri.queryParameters["delay"].map {
            Duration.milliseconds(try Self.integer($0, name: "delay", range: 0...QueueSettings.maximumRetentionMilliseconds))
        }
        var reason: String?
        let body = try await Self.collectBody(request, limit: 64 << 10, settings: settings)
        if body.readableBytes > 0 {
            let document = try JSONDocument.object(body)
            if let value = document["reason"], value != .null {
                guard let text = value.string, text.utf8.count <= 1024 else {
                    throw APIError(.badRequest, "reason must be a string of at most 1024 bytes")
                }
                reason = text
            }
        }
        guard try await settling("nack", in: queue, { try await backend.reject(receipt, in: queue, delay: delay, reason: reason) }) else {
            throw Self.unknownReceipt()
        }
        return Response(status: .noContent)
    }

    @Sendable func changeVisibility(request: Request, context: Context) async throws -> Response {
        let queue = try Self.queueName(context)
        let receipt = try Self.receipt(context)
        guard let raw = request.uri.queryParameters["timeout"] else {
            throw APIError(.badRequest, "timeout (milliseconds from 0 to \(QueueSettings.maximumVisibilityTimeoutMilliseconds)) is required")
        }
        let timeout = try Self.integer(raw, name: "timeout", range: 0...QueueSettings.maximumVisibilityTimeoutMilliseconds)
        guard try await settling("extend", in: queue, { try await backend.changeVisibility(receipt, in: queue, timeout: .milliseconds(timeout)) })
        else { throw Self.unknownReceipt() }
        return Response(status: .noContent)
    }

    /// Runs a settlement under a `settle {queue}` span when tracing is on.
    private func settling<Result>(
        _ operation: String, in queue: QueueName, count: Int = 1, _ body: () async throws -> Result
    ) async throws -> Result {
        guard let tracing = settings.tracing else { return try await body() }
        return try await tracing.settle(operation, in: queue, count: count, body)
    }

    static func receipt(_ context: Context) throws -> Receipt {
        guard let receipt = context.parameters.get("receipt").flatMap(Receipt.init) else { throw unknownReceipt() }
        return receipt
    }

    static func unknownReceipt() -> APIError {
        APIError(.notFound, APIError.unknownReceiptMessage)
    }

    // MARK: Parameters

    /// A non-negative decimal integer query parameter within `range`.
    static func integer(_ raw: Substring, name: String, range: ClosedRange<Int64>) throws -> Int64 {
        guard !raw.isEmpty, raw.utf8.count <= 15, raw.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let value = Int64(raw), range.contains(value)
        else {
            throw APIError(.badRequest, "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// A 413 naming what sets the limit: the queue's `maxMessageBytes` or the replica's settings.
    private static func tooLarge(_ limits: MessageLimits, settings: APISettings) -> APIError {
        guard limits.maximumBytes < settings.maximumMessageBytes else { return tooLarge(limits.maximumBytes, name: "MAX_MESSAGE_BYTES", settings: settings) }
        return APIError(.contentTooLarge, "request body is larger than \(limits.setBy) (\(limits.maximumBytes) bytes)")
    }

    private static func tooLarge(_ limit: Int, name: String, settings: APISettings) -> APIError {
        if name != "MAX_MESSAGE_BYTES" { return APIError(.contentTooLarge, "request body is larger than \(name) (\(limit) bytes)") }
        return APIError(.contentTooLarge, "request body is larger than its limit (\(limit) bytes; \(settings.messageLimitSource))")
    }

    static func queueName(_ context: Context) throws -> QueueName {
        let raw = context.parameters.get("queue") ?? ""
        guard let name = QueueName(raw) else {
            throw APIError(.badRequest, "queue name must be 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-', and not 'topics'")
        }
        return name
    }

    static func json(status: HTTPResponse.Status, _ text: String) -> Response {
        json(status: status, ByteBuffer(string: text))
    }

    static func response(_ parts: ResponseParts) -> Response {
        if parts.body.count == 1 { return Response(status: parts.status, headers: parts.headers, body: .init(byteBuffer: parts.body[0])) }
        return Response(
            status: parts.status,
            headers: parts.headers,
            body: .init(contentLength: parts.bodyLength) { writer in
                for chunk in parts.body { try await writer.write(chunk) }
                try await writer.finish(nil)
            }
        )
    }

    static func json(status: HTTPResponse.Status, _ body: ByteBuffer) -> Response {
        response(.json(status, body))
    }
}

extension Router {
    /// Answers 405 with an `Allow` header for the methods a path does not serve.
    func addMethodNotAllowed(path: RouterPath, allowed: [HTTPRequest.Method]) {
        let allow = allowed.map(\.rawValue).joined(separator: ", ")
        let others: [HTTPRequest.Method] = [.get, .head, .post, .put, .delete, .patch, .options, .trace, .init("QUERY")!].filter { !allowed.contains($0) }
        for method in others {
            on(path, method: method) { _, _ -> Response in
                throw APIError(.methodNotAllowed, "method not allowed here; use \(allow)", headers: [.allow: allow])
            }
        }
    }
}
