public import Metrics

/// A worker's metrics (swift-metrics), labelled with its `queue`:
///
/// | metric | type |
/// |---|---|
/// | `skiff_worker_processed_total` | counter: handlers that returned, their messages acked |
/// | `skiff_worker_failed_total` | counter: handlers that threw (nacked) or lost their lease |
/// | `skiff_worker_handler_duration_seconds` | timer |
/// | `skiff_worker_in_flight` | meter: handlers running |
public struct WorkerMetrics: Sendable {
    public static let processedTotal = "skiff_worker_processed_total"
    public static let failedTotal = "skiff_worker_failed_total"
    public static let handlerDuration = "skiff_worker_handler_duration_seconds"
    public static let inFlight = "skiff_worker_in_flight"

    let processed: Counter
    let failed: Counter
    let duration: Timer
    let running: Meter

    public init(queue: String, factory: any MetricsFactory = MetricsSystem.factory) {
        let labels = [("queue", queue)]
        processed = Counter(label: Self.processedTotal, dimensions: labels, factory: factory)
        failed = Counter(label: Self.failedTotal, dimensions: labels, factory: factory)
        duration = Timer(label: Self.handlerDuration, dimensions: labels, factory: factory)
        running = Meter(label: Self.inFlight, dimensions: labels, factory: factory)
    }
}
