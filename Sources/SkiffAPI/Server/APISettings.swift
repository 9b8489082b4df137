/// Limits and defaults of the HTTP API.
public struct APISettings: Sendable {
    /// Wait used when a GET has no `timeout` parameter.
    public var defaultTimeoutMilliseconds: Int
    /// Largest accepted `timeout`.
    public var maximumTimeoutMilliseconds: Int
    /// Largest accepted message body; larger ones get 413 and are not read past this size.
    public var maximumMessageBytes: Int
    /// Largest batch, both ways (`MAX_BATCH_BYTES`): a batch POST body over it gets 413; a batch
    /// receive stops claiming at it (at least one message) and says so in `Skiff-Batch-Truncated`.
    /// The default keeps a batch well inside Cloud Run's 32 MiB request and response limit.
    public var maximumBatchBytes: Int

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
