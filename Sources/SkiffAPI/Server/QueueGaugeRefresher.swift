public import Logging
public import ServiceLifecycle
public import SkiffQueue
import SkiffSupport
import Synchronization

/// Refreshes the per-queue gauges of ``SkiffMetrics`` on an interval, so a scrape costs nothing
/// and a burst of scrapes cannot load Redis.
///
/// `buildApplication` adds one to the application's services with ``snapshots(of:limit:historyInterval:logger:)``:
/// one script listing the queues, then one O(1) stats script per queue (the first 1000 by name),
/// and one more that records those figures in the queue's history if its interval has none yet.
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
            // An interval after the start, not at once: a replica that starts serves first, and a
            // test's short-lived replica never reads every queue under its prefix. Then every
            // interval from there, not an interval after each round's end: rounds do not drift
            // past intervals of the history (one left behind is skipped, not made up).
            var next = ContinuousClock.now + interval
            while (try? await Task.sleep(until: next, clock: .continuous)) != nil, !Task.isCancelled {
                previous = await refresh(previous: previous)
                next += interval
                if next < .now { next = .now + interval }
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
            // Cancelled: the replica is stopping, nothing went wrong.
            if !(error is CancellationError) {
                logger.warning("could not refresh the queue gauges", metadata: ["error": "\(error)"])
            }
            return previous
        }
    }
}

/// When a replica records the queues' history: once per interval of its own clock, so the rounds
/// of a refresher that runs more often than the history's interval (gauges every 15 s, samples
/// every 30 s) do not each try, and lose, for every queue.
public final class HistoryRounds: Sendable {
    public let interval: Duration
    private let lastRound = Mutex<Int64>(-1)
    private let clock: @Sendable () -> Int64

    public init(interval: Duration, clock: @escaping @Sendable () -> Int64 = { MessageID.currentMilliseconds() }) {
        self.interval = interval
        self.clock = clock
    }

    /// `true` once in each interval, for the first round that asks.
    public func isDue() -> Bool {
        let round = clock() / max(interval.milliseconds, 1)
        return lastRound.withLock { last in
            defer { last = round }
            return last != round
        }
    }
}

extension QueueGaugeRefresher {
    /// The gauges and totals of the first `limit` queues of `backend`, by name; with
    /// `historyInterval`, each queue's figures are also recorded in its history
    /// (``QueueBackend/recordHistory(_:of:interval:)``), so the first `limit` queues have one.
    public static func snapshots(
        of backend: some QueueBackend,
        limit: Int = 1000,
        historyInterval: Duration? = nil,
        logger: Logger? = nil
    ) async throws -> [QueueGaugeSnapshot] {
        var snapshots: [QueueGaugeSnapshot] = []
        var historyFailure: (any Error)?
        defer {
            if let historyFailure, !(historyFailure is CancellationError) {
                logger?.warning("could not record the queues' history", metadata: ["error": "\(historyFailure)"])
            }
        }
        for summary in try await backend.queues().prefix(limit) {
            let stats = try await backend.stats(of: summary.name)
            if let historyInterval {
                do {
                    try await backend.recordHistory(QueueHistorySample(stats), of: summary.name, interval: historyInterval)
                } catch {
                    historyFailure = error
                }
            }
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
