public import Metrics

/// One push subscription's metrics on this replica (swift-metrics):
///
/// | metric | type | labels |
/// |---|---|---|
/// | `skiff_push_attempts_total` | counter | `topic`, `subscription`, `outcome` (`delivered` or `failed`) |
/// | `skiff_push_dead_lettered_total` | counter | `topic`, `subscription` |
/// | `skiff_push_duration_seconds` | timer | `topic`, `subscription` |
///
/// A service holds at most ``SkiffQueue/PushEndpoint/maximumSubscriptions`` push
/// subscriptions, which bounds the series.
public struct PushMetrics: Sendable {
    public static let attemptsTotal = "skiff_push_attempts_total"
    public static let deadLetteredTotal = "skiff_push_dead_lettered_total"
    public static let duration = "skiff_push_duration_seconds"

    private let delivered: Counter
    private let failed: Counter
    private let deadLetters: Counter
    private let timer: Timer

    public init(topic: some CustomStringConvertible, subscription: some CustomStringConvertible, factory: any MetricsFactory) {
        let labels = [("topic", topic.description), ("subscription", subscription.description)]
        delivered = Counter(label: Self.attemptsTotal, dimensions: labels + [("outcome", "delivered")], factory: factory)
        failed = Counter(label: Self.attemptsTotal, dimensions: labels + [("outcome", "failed")], factory: factory)
        deadLetters = Counter(label: Self.deadLetteredTotal, dimensions: labels, factory: factory)
        timer = Timer(label: Self.duration, dimensions: labels, factory: factory)
    }

    func recordAttempt(duration: Duration, succeeded: Bool) {
        (succeeded ? delivered : failed).increment()
        timer.recordNanoseconds(Int64(duration.components.seconds) * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    func deadLettered() { deadLetters.increment() }

    /// Removes the series (the subscription is gone).
    func destroy() {
        delivered.destroy()
        failed.destroy()
        deadLetters.destroy()
        timer.destroy()
    }
}
