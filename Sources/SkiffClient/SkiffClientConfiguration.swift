/// Where a ``SkiffClient`` talks to and how it retries.
public struct SkiffClientConfiguration: Sendable {
    /// The service's base URL, `http://host:port` or `https://...` (no path).
    public var url: String
    /// Sent as `Authorization: Bearer <key>` when set.
    public var apiKey: String?
    /// How long one HTTP request may take, beyond any long-poll `timeout` it asks the server for.
    public var requestTimeout: Duration
    public var retry: RetryPolicy

    public init(url: String, apiKey: String? = nil, requestTimeout: Duration = .seconds(10), retry: RetryPolicy = RetryPolicy()) {
        var url = url
        while url.hasSuffix("/") { url.removeLast() }
        self.url = url
        self.apiKey = apiKey
        self.requestTimeout = requestTimeout
        self.retry = retry
    }

    /// `SKIFF_URL` (default `http://localhost:8080`) and `SKIFF_API_KEY` from `environment`.
    public static func fromEnvironment(_ environment: [String: String]) -> SkiffClientConfiguration {
        let url = environment["SKIFF_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://localhost:8080"
        let key = environment["SKIFF_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        return SkiffClientConfiguration(url: url, apiKey: key)
    }
}

/// Retries with exponential backoff and full jitter, on `503`, `429` (waiting at least its
/// `Retry-After`) and connection failures, within ``maxAttempts``.
///
/// What may be retried depends on the call (``SkiffClient`` says so for each): a send always
/// carries an `Idempotency-Key`, so a retry after a timeout stores nothing twice; a plain receive
/// is retried only when its request never reached the server (it may have taken a message).
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts at most, the first included (1: never retry).
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration

    public init(maxAttempts: Int = 5, baseDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(5)) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// No retries.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// The wait before attempt `attempt + 1` (`attempt` from 1): a random share of
    /// `min(maxDelay, baseDelay · 2^(attempt-1))`, and never less than the server's `Retry-After`.
    public func delay(after attempt: Int, retryAfter: Duration?, jitter: Double = Double.random(in: 0...1)) -> Duration {
        let doublings = min(max(attempt - 1, 0), 30)
        let ceiling = min(maxDelay, baseDelay * (1 << doublings))
        let jittered = ceiling * min(max(jitter, 0), 1)
        guard let retryAfter else { return jittered }
        return max(jittered, retryAfter)
    }
}
