import HTTPTypes
import SkiffQueue
public import Tracing

/// Where a replica's spans go, named and attributed after the OpenTelemetry messaging semantic
/// conventions (docs/tracing.md): `send {queue}` (producer), `receive {queue}` (consumer, linked
/// to the span that sent each message), `settle {queue}` (an ack, nack or visibility change), and a
/// server span per routed request. `nil` in ``APISettings/tracing`` when tracing is off: the
/// transports then test one optional and do nothing else.
public struct MessageTracing: Sendable {
    let tracer: any Tracer

    public init(tracer: any Tracer) {
        self.tracer = tracer
    }

    /// The value of `messaging.system`: no registered name covers Skiff.
    static let system = "skiff"

    // MARK: Propagation

    /// The parent a request's `traceparent`/`tracestate` names, or the top level.
    func context(of headers: HTTPFields) -> ServiceContext {
        var context = ServiceContext.topLevel
        tracer.extract(headers, into: &context, using: HTTPFieldsExtractor())
        return context
    }

    /// The span a stored trace context names, as a link target.
    func context(of message: MessageTraceContext) -> ServiceContext {
        var context = ServiceContext.topLevel
        tracer.extract(message, into: &context, using: MessageTraceContextCarrier())
        return context
    }

    /// What a message sent under `context` stores.
    func messageTraceContext(for context: ServiceContext) -> MessageTraceContext? {
        var carrier: [String: String] = [:]
        tracer.inject(context, into: &carrier, using: DictionaryInjector())
        guard let parent = carrier["traceparent"] else { return nil }
        return MessageTraceContext(traceparent: parent, tracestate: carrier["tracestate"])
    }

    // MARK: Messaging spans

    /// Runs a send of `count` messages under a `send {queue}` span, and gives it the trace context
    /// the messages store: the span's own when it is sampled (their receives link to it), else the
    /// one the producer sent; none when `storing` is off (STORE_TRACE_CONTEXT).
    func send<Result>(
        to queue: QueueName,
        count: Int,
        bodyBytes: Int?,
        options: SendOptions,
        storing: Bool,
        _ operation: (SendOptions) async throws -> Result,
        ids: (Result) -> [String]
    ) async throws -> Result {
        // Under the request's server span; a stream's publish has none, and its own context is the parent.
        let parent = ServiceContext.current ?? options.traceContext.map { context(of: $0) } ?? .topLevel
        let span = tracer.startSpan("send \(queue.logical.rawValue)", context: parent, ofKind: .producer)
        defer { span.end() }
        span.attributes = Self.attributes(queue: queue, operation: "send", type: "send", count: count)
        if let bodyBytes { span.attributes["messaging.message.body.size"] = bodyBytes }
        // The messages keep this span's context when it is recorded, so their receives link to it;
        // otherwise what the producer sent. (A send with a context is never merged with others in
        // Redis: storing an unsampled span's context would cost every send its merging.)
        var options = options
        if storing, let own = messageTraceContext(for: span.context), own.isSampled { options.traceContext = own }
        do {
            let result = try await ServiceContext.withValue(span.context) { try await operation(options) }
            let sent = ids(result)
            if sent.count == 1 { span.attributes["messaging.message.id"] = sent[0] }
            return result
        } catch {
            span.recordError(error)
            span.attributes["error.type"] = String(describing: type(of: error))
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    /// Runs a receive under a `receive {queue}` span linked to the span that sent each message
    /// it hands out (a consumer's trace joins the producer's through these links).
    func receive(from queue: QueueName, _ operation: () async throws -> DeliveryLease?) async throws -> DeliveryLease? {
        let span = tracer.startSpan("receive \(queue.logical.rawValue)", context: ServiceContext.current ?? .topLevel, ofKind: .consumer)
        defer { span.end() }
        span.attributes = Self.attributes(queue: queue, operation: "receive", type: "receive", count: nil)
        do {
            let lease = try await ServiceContext.withValue(span.context) { try await operation() }
            let deliveries = lease?.deliveries ?? []
            span.attributes["messaging.batch.message_count"] = deliveries.count
            if deliveries.count == 1 {
                span.attributes["messaging.message.id"] = deliveries[0].message.id
                span.attributes["messaging.message.body.size"] = deliveries[0].message.body.readableBytes
            }
            for delivery in deliveries {
                guard let trace = delivery.message.traceContext else { continue }
                span.addLink(SpanLink(context: context(of: trace), attributes: ["messaging.message.id": .string(delivery.message.id)]))
            }
            return lease
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    /// Runs an ack, nack or visibility change of `count` receipts under a `settle {queue}` span.
    func settle<Result>(_ operation: String, in queue: QueueName, count: Int, _ body: () async throws -> Result) async throws -> Result {
        let span = tracer.startSpan("settle \(queue.logical.rawValue)", context: ServiceContext.current ?? .topLevel, ofKind: .client)
        defer { span.end() }
        span.attributes = Self.attributes(queue: queue, operation: operation, type: "settle", count: count)
        do {
            return try await ServiceContext.withValue(span.context) { try await body() }
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    static func attributes(queue: QueueName, operation: String, type: String, count: Int?) -> SpanAttributes {
        var attributes: SpanAttributes = [
            "messaging.system": .string(system),
            "messaging.destination.name": .string(queue.logical.rawValue),
            "messaging.operation.name": .string(operation),
            "messaging.operation.type": .string(type),
        ]
        if let count, count != 1 { attributes["messaging.batch.message_count"] = count }
        return attributes
    }
}

/// Reads `traceparent`/`tracestate` (or any propagator's header) from a request.
struct HTTPFieldsExtractor: Extractor {
    func extract(key: String, from carrier: HTTPFields) -> String? {
        guard let name = HTTPField.Name(key) else { return nil }
        return carrier[name]
    }
}

/// Reads a stored message trace context as the W3C propagator asks for it.
struct MessageTraceContextCarrier: Extractor {
    func extract(key: String, from carrier: MessageTraceContext) -> String? {
        switch key {
        case "traceparent": carrier.traceparent
        case "tracestate": carrier.tracestate
        default: nil
        }
    }
}

/// Collects what a propagator writes (`traceparent`, `tracestate`).
struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }
}
