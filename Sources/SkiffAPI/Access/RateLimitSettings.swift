/// Token-bucket rate limiting, per API key and queue, kept in this replica's memory.
///
/// Each (key, queue) pair has its own bucket of `burst` tokens refilled at `requestsPerSecond`;
/// a request takes one token or gets 429. Replicas do not share buckets, so behind a load
/// balancer of N replicas a client can get up to N times the rate.
public struct RateLimitSettings: Sendable, Equatable {
    public var requestsPerSecond: Double
    public var burst: Int

    public init(requestsPerSecond: Double, burst: Int? = nil) {
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst ?? max(1, Int(requestsPerSecond.rounded(.up)))
    }
}
