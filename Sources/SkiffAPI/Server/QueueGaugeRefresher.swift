public import Logging
public import ServiceLifecycle
public import SkiffQueue

/// Refreshes the per-queue gauges of ``SkiffMetrics`` on an interval, so a scrape costs nothing
/// and a burst of scrapes cannot load Redis.
///
/// `buildApplication` adds one to the application's services with ``snapshots(of:limit:)``: one
/// script listing the queues, then one O(1) stats script per queue (the first 1000 by name).
/// Every replica exports the same queue-wide values, so dashboards aggregate them with `max`, not
/// `sum`. A queue that disappears from the snapshot is set to 0 rather than left at its last value.
public struct QueueGaugeRefresher: Service {
    let metrics: SkiffMetrics
    let interval: Duration
    let logger: Logger
    let snapshot: @Sendable () async throws -> [QueueGaugeSnapshot]

    public init(
        metrics: SkiffMetrics,
        interval: Duration = .seconds(15),
        logger: Logger,
        snapshot: @escaping @Sendable () async throws -> [QueueGaugeSnapshot]
    ) {
        self.metrics = metrics
        self.interval = interval
        self.logger = logger
        self.snapshot = snapshot
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var previous: Set<String> = []
            while !Task.isCancelled {
                previous = await refresh(previous: previous)
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// Takes one snapshot and records it; queues in `previous` but not in this snapshot are
    /// recorded as empty.
    ///
    /// - Returns: the queues of this snapshot (or `previous` if the snapshot failed).
    @discardableResult
    public func refresh(previous: Set<String> = []) async -> Set<String> {
        do {
            var snapshots = try await snapshot()
            let current = Set(snapshots.map(\.queue))
            for gone in previous.subtracting(current) {
                snapshots.append(QueueGaugeSnapshot(queue: gone, depth: 0, inFlight: 0, oldestMessageAgeSeconds: 0))
            }
            metrics.recordQueueGauges(snapshots)
            return current
        } catch {
            logger.warning("could not refresh the queue gauges", metadata: ["error": "\(error)"])
            return previous
        }
    }
}

extension QueueGaugeRefresher {
    /// The gauges and totals of the first `limit` queues of `backend`, by name.
    public static func snapshots(of backend: some QueueBackend, limit: Int = 1000) async throws -> [QueueGaugeSnapshot] {
        var snapshots: [QueueGaugeSnapshot] = []
        for summary in try await backend.queues().prefix(limit) {
            let stats = try await backend.stats(of: summary.name)
            snapshots.append(
                QueueGaugeSnapshot(
                    queue: summary.name.rawValue,
                    depth: stats.ready,
                    inFlight: stats.inFlight,
                    oldestMessageAgeSeconds: Double(stats.oldestReadyAgeMilliseconds ?? 0) / 1000,
                    totals: (stats.totals.retried, stats.totals.deadLettered)
                )
            )
        }
        return snapshots
    }
}
