import SkiffRedis
import SkiffSupport
import Synchronization

/// In-memory token buckets, one per (API key, queue) pair; see ``RateLimitSettings``.
///
/// Memory stays bounded: past ``maximumBuckets`` buckets, the ones that have refilled completely
/// (idle ones) are dropped, since a new bucket would be identical.
public final class RateLimiter: Sendable {
    struct BucketID: Hashable, Sendable {
        let key: String
        let queue: String
    }

    /// The outcome of ``take(key:queue:)``.
    public enum Decision: Equatable, Sendable {
        case allowed
        /// Refused; a token will be there after this many whole seconds (at least 1): `Retry-After`.
        case limited(retryAfterSeconds: Int)
    }

    public let settings: RateLimitSettings
    let maximumBuckets: Int
    private let buckets = Mutex<[BucketID: TokenBucket]>([:])
    private let now: @Sendable () -> UInt64

    /// - Parameter nowNanoseconds: a monotonic clock; tests pass their own.
    public init(
        settings: RateLimitSettings,
        maximumBuckets: Int = 10_000,
        nowNanoseconds: @escaping @Sendable () -> UInt64 = RateLimiter.monotonicNanoseconds
    ) {
        self.settings = settings
        self.maximumBuckets = maximumBuckets
        self.now = nowNanoseconds
    }

    /// Takes one token from the bucket of `key` (a key name, or `""` when the service runs open)
    /// and `queue` (`""` for requests about no single queue).
    public func take(key: String, queue: String) -> Decision {
        let id = BucketID(key: key, queue: queue)
        let now = self.now()
        let (rate, burst) = (settings.requestsPerSecond, settings.burst)
        let wait: Duration? = buckets.withLock { buckets in
            if buckets[id] == nil, buckets.count >= maximumBuckets {
                buckets = buckets.filter { !$0.value.isFull(nowNanoseconds: now, rate: rate, burst: burst) }
            }
            var bucket = buckets[id] ?? TokenBucket(burst: burst, nowNanoseconds: now)
            let wait = bucket.take(nowNanoseconds: now, rate: rate, burst: burst)
            buckets[id] = bucket
            return wait
        }
        guard let wait else { return .allowed }
        let (seconds, attoseconds) = wait.components
        return .limited(retryAfterSeconds: max(1, Int(seconds) + (attoseconds > 0 ? 1 : 0)))
    }

    var bucketCount: Int { buckets.withLock { $0.count } }

    public static let monotonicNanoseconds: @Sendable () -> UInt64 = {
        let start = ContinuousClock.now
        return { UInt64((ContinuousClock.now - start).nanoseconds) }
    }()
}
