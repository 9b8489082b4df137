/// A token bucket: holds up to `burst` tokens, refills at `rate` tokens per second, and each
/// request takes one. Times are nanoseconds on a monotonic clock, passed in so tests control them.
struct TokenBucket: Sendable, Equatable {
    private(set) var tokens: Double
    private(set) var updatedNanoseconds: UInt64

    init(burst: Int, nowNanoseconds: UInt64) {
        self.tokens = Double(burst)
        self.updatedNanoseconds = nowNanoseconds
    }

    /// Takes a token if there is one.
    ///
    /// - Returns: `nil` when a token was taken, else how long until one will be there.
    mutating func take(nowNanoseconds: UInt64, rate: Double, burst: Int) -> Duration? {
        refill(nowNanoseconds: nowNanoseconds, rate: rate, burst: burst)
        if tokens >= 1 {
            tokens -= 1
            return nil
        }
        let seconds = (1 - tokens) / rate
        return .nanoseconds(Int64((seconds * 1_000_000_000).rounded(.up)))
    }

    /// Whether the bucket has refilled completely by `nowNanoseconds`: it can be forgotten, since
    /// a new bucket would be the same.
    func isFull(nowNanoseconds: UInt64, rate: Double, burst: Int) -> Bool {
        var copy = self
        copy.refill(nowNanoseconds: nowNanoseconds, rate: rate, burst: burst)
        return copy.tokens >= Double(burst)
    }

    private mutating func refill(nowNanoseconds: UInt64, rate: Double, burst: Int) {
        guard nowNanoseconds > updatedNanoseconds else { return }
        let elapsedSeconds = Double(nowNanoseconds - updatedNanoseconds) / 1_000_000_000
        tokens = min(Double(burst), tokens + elapsedSeconds * rate)
        updatedNanoseconds = nowNanoseconds
    }
}
