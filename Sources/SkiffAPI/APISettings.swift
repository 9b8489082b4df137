/// Limits and defaults of the HTTP API.
public struct APISettings: Sendable {
    /// Wait used when a GET has no `timeout` parameter.
    public var defaultTimeoutMilliseconds: Int
    /// Largest accepted `timeout`.
    public var maximumTimeoutMilliseconds: Int
    /// Largest accepted message body; larger ones get 413 and are not read past this size.
    public var maximumMessageBytes: Int
    /// Whether the fast path sits in front of the routes and marks a GET it found no message for
    /// (``FastPathHandler``), so the route waits at once instead of claiming again. Set by
    /// ``buildApplication(configuration:backend:services:logger:metricsFactory:metricsExposition:)``.
    var fastPathMarksEmptyChecks = false

    public init(defaultTimeoutMilliseconds: Int = 10_000, maximumTimeoutMilliseconds: Int = 60_000, maximumMessageBytes: Int = 1_048_576) {
        self.defaultTimeoutMilliseconds = defaultTimeoutMilliseconds
        self.maximumTimeoutMilliseconds = maximumTimeoutMilliseconds
        self.maximumMessageBytes = maximumMessageBytes
    }
}
