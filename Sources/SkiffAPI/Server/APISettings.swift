/// Limits and defaults of the HTTP API.
public struct APISettings: Sendable {
    /// Wait used when a GET has no `timeout` parameter.
    public var defaultTimeoutMilliseconds: Int
    /// Largest accepted `timeout`.
    public var maximumTimeoutMilliseconds: Int
    /// Largest accepted message body; larger ones get 413 and are not read past this size. With a
    /// payload store, `PAYLOADS_MAX_MESSAGE_BYTES` (bodies over the threshold are offloaded).
    public var maximumMessageBytes: Int
    /// With a payload store, the largest body kept in Redis (`MAX_MESSAGE_BYTES`): no queue's
    /// `offloadThresholdBytes` may pass it. `nil`: ``maximumMessageBytes``.
    public var inlineMessageBytes: Int?
    /// The largest body kept whole in the queue's storage.
    public var largestInlineMessageBytes: Int { inlineMessageBytes ?? maximumMessageBytes }
    /// With a payload store, queue message bodies larger than this are streamed to it as they
    /// arrive, never held whole (`PAYLOADS_OFFLOAD_THRESHOLD_BYTES`); `nil`: no store.
    public var offloadThresholdBytes: Int?
    /// The largest message body the fast path holds whole: the route streams larger sends to the
    /// payload store and collects larger publishes.
    public var largestBufferedMessageBytes: Int { min(offloadThresholdBytes ?? maximumMessageBytes, maximumMessageBytes) }

    /// The settings behind the limits, for a 413's message.
    var messageLimitSource: String {
        inlineMessageBytes == nil ? "MAX_MESSAGE_BYTES is \(maximumMessageBytes)" : "PAYLOADS_MAX_MESSAGE_BYTES is \(maximumMessageBytes)"
    }
    /// Largest batch, both ways (`MAX_BATCH_BYTES`): a batch POST body over it gets 413; a batch
    /// receive stops claiming at it (at least one message) and says so in `Skiff-Batch-Truncated`.
    /// The default keeps a batch well inside Cloud Run's 32 MiB request and response limit.
    public var maximumBatchBytes: Int
    /// Where spans go (`OTEL_EXPORTER_OTLP_ENDPOINT`, docs/tracing.md); `nil`: tracing is off.
    public var tracing: MessageTracing?
    /// Messages keep the trace context they were sent with (`STORE_TRACE_CONTEXT`). Off for the
    /// first step of an upgrade from a release that cannot read such messages (docs/tracing.md).
    public var storesTraceContext = true

    public init(
        defaultTimeoutMilliseconds: Int = 10_000,
        maximumTimeoutMilliseconds: Int = 60_000,
        maximumMessageBytes: Int = 1_048_576,
        maximumBatchBytes: Int = 16 << 20
    ) {
        self.defaultTimeoutMilliseconds = defaultTimeoutMilliseconds
        self.maximumTimeoutMilliseconds = maximumTimeoutMilliseconds
        self.maximumMessageBytes = maximumMessageBytes
        self.maximumBatchBytes = maximumBatchBytes
    }
}
