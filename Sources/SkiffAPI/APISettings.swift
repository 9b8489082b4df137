/// Limits and defaults of the HTTP API.
public struct APISettings: Sendable {
    /// Wait used when a GET has no `timeout` parameter.
    public var defaultTimeoutMilliseconds: Int
    /// Largest accepted `timeout`.
    public var maximumTimeoutMilliseconds: Int
    /// Largest accepted message body; larger ones get 413 and are not read past this size.
    public var maximumMessageBytes: Int

    public init(defaultTimeoutMilliseconds: Int = 10_000, maximumTimeoutMilliseconds: Int = 60_000, maximumMessageBytes: Int = 1_048_576) {
        self.defaultTimeoutMilliseconds = defaultTimeoutMilliseconds
        self.maximumTimeoutMilliseconds = maximumTimeoutMilliseconds
        self.maximumMessageBytes = maximumMessageBytes
    }
}
