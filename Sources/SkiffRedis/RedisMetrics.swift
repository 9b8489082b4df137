import CoreMetrics
import Metrics
import SkiffSupport
import Synchronization

/// The Redis client's metrics, through swift-metrics only (the executable picks the backend):
///
/// - `skiff_redis_command_duration_seconds{command}`: histogram of each command's latency as the
///   caller sees it (waiting for a pooled connection included), whether it succeeded or not.
///   Blocking commands are labelled by their own name, so their waits do not skew the others.
/// - `skiff_redis_pool_connections`: gauge of open connections (shared and blocking), refreshed
///   by the client's one-second health check.
/// - `skiff_redis_reconnects_total`: counter of connections opened after a slot's first.
final class RedisMetrics: Sendable {
    static let commandDuration = "skiff_redis_command_duration_seconds"
    static let poolConnections = "skiff_redis_pool_connections"
    static let reconnectsTotal = "skiff_redis_reconnects_total"
    /// Distinct `command` labels before the rest are recorded as `OTHER`.
    static let commandLabelLimit = 64

    let reconnects: Counter
    let openConnections: Gauge
    private let factory: any MetricsFactory
    private let commandTimers = Mutex<[String: CoreMetrics.Timer]>([:])

    init(factory: any MetricsFactory) {
        self.factory = factory
        self.reconnects = Counter(label: Self.reconnectsTotal, factory: factory)
        self.openConnections = Gauge(label: Self.poolConnections, factory: factory)
    }

    /// Records the time since `start` for `command`.
    func recordCommand(_ command: String, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        timer(for: command).recordNanoseconds(elapsed.nanoseconds)
    }

    private func timer(for command: String) -> CoreMetrics.Timer {
        commandTimers.withLock { timers in
            let label = command.uppercased()
            if let timer = timers[label] { return timer }
            let bounded = timers.count < Self.commandLabelLimit ? label : "OTHER"
            if let timer = timers[bounded] { return timer }
            let timer = CoreMetrics.Timer(label: Self.commandDuration, dimensions: [("command", bounded)], factory: factory)
            timers[bounded] = timer
            return timer
        }
    }
}
