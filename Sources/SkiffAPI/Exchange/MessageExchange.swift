import HTTPTypes
import Logging
import NIOCore
import SkiffQueue

/// A response as every transport writes it: the routes hand it to Hummingbird, the fast path
/// encodes it straight into bytes. Headers are the response's own (`X-Request-Id`, `Date` and
/// `Server` are the server's to add).
struct ResponseParts: Sendable {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    /// Written in order, verbatim.
    var body: [ByteBuffer]

    var bodyLength: Int { body.reduce(0) { $0 + $1.readableBytes } }

    /// A JSON document.
    static func json(_ status: HTTPResponse.Status, _ body: ByteBuffer) -> Self {
        Self(status: status, headers: [.contentType: "application/json; charset=utf-8", .contentLength: String(body.readableBytes)], body: [body])
    }
}

/// Request parameters as every transport reads them (the fast path reads them before it knows
/// which backend serves the request).
enum ExchangeParameters {
    /// `timeout` in milliseconds: absent is the default, otherwise 0 to the maximum, digits only.
    static func timeout(_ raw: Substring?, settings: APISettings) throws(APIError) -> Int {
        guard let raw else { return settings.defaultTimeoutMilliseconds }
        let maximum = settings.maximumTimeoutMilliseconds
        guard !raw.isEmpty, raw.utf8.count <= 6, raw.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let value = Int(raw), value <= maximum
        else {
            throw APIError(.badRequest, "timeout must be an integer number of milliseconds from 0 to \(maximum)")
        }
        return value
    }
}

/// The message exchange between HTTP and the queue, the same whichever transport carries it: what
/// a request's parameters mean, what a send or a delivery does, what it answers (status, headers,
/// bodies) and counts (the queue metrics). The Hummingbird routes (``QueueController``) and the
/// fast path (``FastPathHandler``) both run through it and add only their framing, so the two
/// cannot drift (TransportDriftTests holds them to it). A new transport (a stream) starts here.
struct MessageExchange<Backend: QueueBackend>: Sendable {
    let backend: Backend
    let settings: APISettings
    let metrics: SkiffMetrics
    /// Where settlements after a write, and releases of dropped leases, run; shutdown waits for them.
    let settlements: SettlementTasks?

    // MARK: Parameters

    /// `timeout` in milliseconds: absent is the default, otherwise 0 to the maximum, digits only.
    func timeout(_ raw: Substring?) throws(APIError) -> Int {
        try ExchangeParameters.timeout(raw, settings: settings)
    }

    // MARK: Sending

    /// Stores one message: 201, or 200 with `Skiff-Duplicate: true` for a repeat of an idempotency key.
    func send(_ body: ByteBuffer, to queue: QueueName, options: SendOptions, logger: Logger) async throws -> ResponseParts {
        let options = storable(options)
        guard let tracing = settings.tracing else {
            return answer(try await backend.send(body, to: queue, options: options), to: queue, logger: logger)
        }
        let sent = try await tracing.send(to: queue, count: 1, bodyBytes: body.readableBytes, options: options, storing: settings.storesTraceContext) {
            options in
            try await backend.send(body, to: queue, options: options)
        } ids: {
            [$0.id]
        }
        return answer(sent, to: queue, logger: logger)
    }

    /// Stores a batch's messages with one storage call (under one `send` span).
    func send(batch bodies: [ByteBuffer], to queue: QueueName, options: SendOptions) async throws -> [SentMessage] {
        let options = storable(options)
        guard let tracing = settings.tracing else { return try await backend.send(bodies, to: queue, options: options) }
        return try await tracing.send(to: queue, count: bodies.count, bodyBytes: nil, options: options, storing: settings.storesTraceContext) { options in
            try await backend.send(bodies, to: queue, options: options)
        } ids: {
            $0.map(\.id)
        }
    }

    /// Whether receives may ask for `payload=url`: this replica's payload store signs URLs.
    var signsPayloadURLs: Bool { (backend as? OffloadingQueues)?.offload?.store.signsURLs ?? false }

    /// - Throws: 400 when receives cannot ask for `payload=url` here.
    func checkSignsPayloadURLs() throws(APIError) {
        guard signsPayloadURLs else {
            throw APIError(
                .badRequest,
                "payload=url needs a payload store that signs URLs (PAYLOADS_URL_SECRET with a file:// store, PAYLOADS_GCS_SIGNING_ACCOUNT with gs://)")
        }
    }

    /// `payload=bytes` (the default) or `payload=url` from a receive's query: `true` for signed
    /// URLs in place of offloaded bodies, which needs acknowledged mode and a store that signs.
    func signedPayloadURLs(_ raw: Substring?, acknowledged: Bool) throws(APIError) -> Bool {
        switch raw {
        case nil, "bytes"?: return false
        case "url"?:
            guard acknowledged else {
                throw APIError(
                    .badRequest,
                    "payload=url needs an acknowledged receive (visibility): a plain receive deletes the message, and its stored body, once it is written")
            }
            try checkSignsPayloadURLs()
            return true
        default: throw APIError(.badRequest, "payload must be bytes or url")
        }
    }

    /// The size limits of sends to `queue` (its `maxMessageBytes` and `offloadThresholdBytes`
    /// within this replica's).
    func limits(of queue: QueueName) async throws -> MessageLimits {
        guard let offloading = backend as? OffloadingQueues else { return MessageLimits(maximumBytes: settings.maximumMessageBytes) }
        var limits = try await offloading.limits(of: queue)
        limits.maximumBytes = min(limits.maximumBytes, settings.maximumMessageBytes)
        return limits
    }

    /// Sends a body of `size` bytes that the payload store takes as it arrives, validated as JSON
    /// on the way (``StreamingJSONValidator``): nothing is stored unless it is one JSON value.
    /// `nil` when this replica has no payload store.
    func send<Body: AsyncSequence & Sendable>(
        streaming body: Body, size: Int, to queue: QueueName, options: SendOptions, logger: Logger
    ) async throws -> ResponseParts? where Body.Element == ByteBuffer {
        guard let offloading = backend as? OffloadingQueues, offloading.offload != nil else { return nil }
        let validated = ValidatedJSONBody(base: body, size: size)
        let options = storable(options)
        guard let tracing = settings.tracing else {
            return answer(try await offloading.send(streaming: validated, size: size, to: queue, options: options), to: queue, logger: logger)
        }
        let sent = try await tracing.send(to: queue, count: 1, bodyBytes: size, options: options, storing: settings.storesTraceContext) { options in
            try await offloading.send(streaming: validated, size: size, to: queue, options: options)
        } ids: {
            [$0.id]
        }
        return answer(sent, to: queue, logger: logger)
    }

    /// `options` as this replica stores them: without a trace context when STORE_TRACE_CONTEXT is off.
    private func storable(_ options: SendOptions) -> SendOptions {
        guard !settings.storesTraceContext, options.traceContext != nil else { return options }
        var options = options
        options.traceContext = nil
        return options
    }

    private func answer(_ sent: SentMessage, to queue: QueueName, logger: Logger) -> ResponseParts {
        if !sent.isDuplicate { metrics.messageEnqueued(queue: queue.rawValue) }
        logger.debug("message enqueued", metadata: ["queue.name": "\(queue)", "message.id": "\(sent.id)"])
        var json = ByteBufferAllocator().buffer(capacity: 96)
        Self.writeSentJSON(sent, to: &json)
        var parts = ResponseParts.json(sent.isDuplicate ? .ok : .created, json)
        if sent.isDuplicate { parts.headers[.skiffDuplicate] = "true" }
        return parts
    }

    /// `{"id":…,"queue":…,"enqueuedAt":…}`, the answer to a send.
    static func writeSentJSON(_ sent: SentMessage, to buffer: inout ByteBuffer) {
        buffer.writeStaticString(#"{"id":"#)
        JSONText.writeQuoted(sent.id, to: &buffer)
        buffer.writeStaticString(#","queue":"#)
        JSONText.writeQuoted(sent.queue.rawValue, to: &buffer)
        buffer.writeStaticString(#","enqueuedAt":""#)
        JSONText.writeTimestamp(milliseconds: sent.enqueuedAtMilliseconds, to: &buffer)
        buffer.writeStaticString(#""}"#)
    }

    // MARK: Delivering

    /// Claims and fences messages for `request` (``QueueBackend/deliver(_:context:)``), counting
    /// its wait in the long-poll gauge. The caller cancels the task when its client leaves.
    func deliver(_ request: DeliveryRequest, logger: Logger) async throws -> DeliveryLease? {
        let context = DeliveryContext(observer: metrics, settlements: settlements, logger: logger)
        guard let tracing = settings.tracing else { return try await backend.deliver(request, context: context) }
        return try await tracing.receive(from: request.queue) { try await backend.deliver(request, context: context) }
    }

    /// The answer to a GET of one message: its body as stored, its facts in headers.
    static func messageResponse(_ lease: DeliveryLease) -> ResponseParts {
        let delivery = lease.deliveries[0]
        var headers = messageHeaders(for: delivery)
        // Asked for `payload=url`: the link to the offloaded body is the answer's body.
        let body = delivery.message.payloadLink.map(linkJSON) ?? delivery.message.body
        headers[.contentType] = "application/json"
        headers[.contentLength] = String(body.readableBytes)
        return ResponseParts(status: .ok, headers: headers, body: [body])
    }

    /// `{"url":…,"size":…,"sha256":…,"expiresAt":…}`: where an offloaded body is to be fetched.
    static func linkJSON(_ link: PayloadLink) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: link.url.utf8.count + 160)
        buffer.writeStaticString(#"{"url":"#)
        JSONText.writeQuoted(link.url, to: &buffer)
        buffer.writeStaticString(#","size":"#)
        buffer.writeString(String(link.size))
        buffer.writeStaticString(#","sha256":"#)
        JSONText.writeQuoted(link.sha256, to: &buffer)
        buffer.writeStaticString(#","expiresAt":""#)
        JSONText.writeTimestamp(milliseconds: link.expiresAtMilliseconds, to: &buffer)
        buffer.writeStaticString(#""}"#)
        return buffer
    }

    /// The answer to a batch GET: `[{"id":…,"body":<stored JSON>,…},…]`, the bodies written
    /// verbatim between the pieces.
    static func batchResponse(_ lease: DeliveryLease) -> ResponseParts {
        var chunks: [ByteBuffer] = []
        chunks.reserveCapacity(3 * lease.deliveries.count + 1)
        for (index, delivery) in lease.deliveries.enumerated() {
            let message = delivery.message
            var head = index == 0 ? "[" : ","
            head +=
                #"{"id":"# + JSONText.quoted(message.id) + #","enqueuedAt":"#
                + JSONText.quoted(JSONText.timestamp(milliseconds: message.enqueuedAtMilliseconds)) + #","receiveCount":"#
                + String(message.receiveCount) + #","priority":"# + String(message.priority)
            if delivery.isAcknowledgedMode { head += #","receipt":"# + JSONText.quoted(delivery.receipt.description) }
            if let lastError = message.lastError { head += #","lastError":"# + JSONText.quoted(lastError) }
            if MessageID.isOffloaded(message.id) { head += #","offloaded":true"# }
            if let trace = message.traceContext {
                head += #","traceparent":"# + JSONText.quoted(trace.traceparent)
                if let state = trace.tracestate { head += #","tracestate":"# + JSONText.quoted(state) }
            }
            if let link = message.payloadLink {
                head += #","payloadUrl":"#
                chunks.append(ByteBuffer(string: head))
                chunks.append(linkJSON(link))
                chunks.append(ByteBuffer(string: "}"))
                continue
            }
            head += #","body":"#
            chunks.append(ByteBuffer(string: head))
            chunks.append(message.body)
            chunks.append(ByteBuffer(string: "}"))
        }
        chunks.append(ByteBuffer(string: "]"))
        var parts = ResponseParts(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: chunks)
        parts.headers[.contentLength] = String(parts.bodyLength)
        if lease.stoppedAtByteLimit { parts.headers[.skiffBatchTruncated] = "bytes" }
        return parts
    }

    /// The whole response is in the client's socket: the messages count as delivered. Returns
    /// their settlement (auto-acknowledged ones are deleted), for the transport to run off the
    /// request, on the connection's loop where its Redis connection is: a delete retried through a
    /// Redis outage must not hold the connection, where a proxy's timeout would cut the next request.
    func written(_ lease: DeliveryLease) -> @Sendable () async -> Void {
        let (metrics, queue) = (self.metrics, lease.queue.rawValue)
        metrics.messageDelivered(queue: queue, count: lease.deliveries.count)
        return {
            let acknowledged = await lease.delivered()
            if acknowledged > 0 { metrics.messageAcked(queue: queue, count: acknowledged) }
        }
    }

    /// A message's facts as response headers.
    static func messageHeaders(for delivery: Delivery) -> HTTPFields {
        let message = delivery.message
        var headers: HTTPFields = [
            .skiffMessageID: message.id,
            .skiffEnqueuedAt: JSONText.timestamp(milliseconds: message.enqueuedAtMilliseconds),
            .skiffReceiveCount: String(message.receiveCount),
            .skiffPriority: String(message.priority),
        ]
        if delivery.isAcknowledgedMode { headers[.skiffReceipt] = delivery.receipt.description }
        // The producer's trace context, so that the consumer's work joins its trace.
        if let trace = message.traceContext {
            headers[.traceparent] = trace.traceparent
            if let state = trace.tracestate { headers[.tracestate] = state }
        }
        // The body was kept in the payload store (docs/payloads.md) and read back verified, or
        // (`payload=url`) the answer is a link to it.
        if MessageID.isOffloaded(message.id) { headers[.skiffPayload] = message.payloadLink == nil ? "offloaded" : "url" }
        if let lastError = message.lastError { headers[.skiffLastError] = headerSafe(lastError) }
        if let history = message.deadLetter {
            headers[.skiffDeadLetterSource] = history.sourceQueue.logical.rawValue
            headers[.skiffDeadLetterReceiveCount] = String(history.receiveCount)
            headers[.skiffFirstReceivedAt] = JSONText.timestamp(milliseconds: history.firstReceivedAtMilliseconds)
            headers[.skiffLastReceivedAt] = JSONText.timestamp(milliseconds: history.lastReceivedAtMilliseconds)
            if let reason = history.lastError, message.lastError == nil { headers[.skiffLastError] = headerSafe(reason) }
        }
        return headers
    }

    /// A reason as a header value: printable ASCII, anything else percent-encoded.
    static func headerSafe(_ text: String) -> String {
        var out = ""
        for byte in text.utf8.prefix(1024) {
            if byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "%") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// A request body of `size` bytes checked as one JSON value as it passes
/// (``StreamingJSONValidator``): the first invalid byte, or an end short of a value, throws the
/// 400 a whole body would get. The end is judged before the last byte is handed on, so a store
/// that commits on its last byte never commits a body that is not JSON.
struct ValidatedJSONBody<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let size: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let size: Int
        var seen = 0
        var validator = StreamingJSONValidator()

        mutating func next() async throws -> ByteBuffer? {
            guard let chunk = try await base.next() else {
                if seen < size, let error = validator.finish() { throw APIError(.badRequest, "body is not valid JSON: \(error)") }
                return nil
            }
            seen += chunk.readableBytes
            if let error = validator.feed(chunk) { throw APIError(.badRequest, "body is not valid JSON: \(error)") }
            if seen >= size, let error = validator.finish() { throw APIError(.badRequest, "body is not valid JSON: \(error)") }
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), size: size) }
}
