import CoreMetrics
public import Metrics
public import SkiffQueue
import Synchronization

/// The queue metrics of a replica, through swift-metrics (Prometheus when the executable
/// bootstraps it):
///
/// | metric | type | labels |
/// |---|---|---|
/// | `skiff_messages_enqueued_total` | counter | `queue` |
/// | `skiff_messages_delivered_total` | counter | `queue` |
/// | `skiff_messages_acked_total` | counter | `queue` |
/// | `skiff_messages_retried_total` | counter | `queue` |
/// | `skiff_messages_dead_lettered_total` | counter | `queue` |
/// | `skiff_queue_depth` | gauge | `queue` |
/// | `skiff_queue_in_flight` | gauge | `queue` |
/// | `skiff_queue_oldest_message_age_seconds` | gauge | `queue` |
/// | `skiff_long_poll_waiters` | gauge | none |
/// | `skiff_fast_path_handovers_total` | counter | none |
/// | `skiff_topic_published_total` | counter | `topic` |
/// | `skiff_topic_copies_total` | counter | `topic` (messages stored in subscriber queues) |
///
/// Enqueued, delivered and acked are counted by the queue routes of this replica as things happen
/// (sum them over replicas). Retries and dead letters mostly happen inside Redis (sweeps, the
/// failed-receive rule), so those two counters follow the queue's exact totals from the backend,
/// read by the ``QueueGaugeRefresher`` with the three gauges on an interval, never per scrape:
/// they are queue-wide, every replica reports the same value, so aggregate them with `max`.
///
/// A handover is a connection whose remaining requests all go to the HTTP decoder and the routes,
/// because one of them was outside the fast path's strict HTTP/1.1 subset (another HTTP version,
/// a `Transfer-Encoding` other than `chunked`, chunk extensions or trailers, odd syntax): behind a
/// proxy that reuses its connections, a rising count means requests lose the fast path.
///
/// Cardinality: the first ``queueLabelLimit`` distinct queue names this process sees get their
/// own `queue` label; later ones are counted under `queue="other"`, so a client creating queues
/// without end cannot grow the series without end.
public final class SkiffMetrics: DeliveryObserver, Sendable {
    public static let enqueuedTotal = "skiff_messages_enqueued_total"
    public static let deliveredTotal = "skiff_messages_delivered_total"
    public static let ackedTotal = "skiff_messages_acked_total"
    public static let retriedTotal = "skiff_messages_retried_total"
    public static let deadLetteredTotal = "skiff_messages_dead_lettered_total"
    public static let queueDepth = "skiff_queue_depth"
    public static let queueInFlight = "skiff_queue_in_flight"
    public static let queueOldestAge = "skiff_queue_oldest_message_age_seconds"
    public static let longPollWaiters = "skiff_long_poll_waiters"
    public static let fastPathHandoversTotal = "skiff_fast_path_handovers_total"
    public static let streamsOpen = "skiff_streams_open"
    public static let topicPublishedTotal = "skiff_topic_published_total"
    public static let topicCopiesTotal = "skiff_topic_copies_total"
    /// The `queue` label of every queue past ``queueLabelLimit``.
    public static let overflowQueueLabel = "other"

    public let queueLabelLimit: Int
    private let factory: any MetricsFactory
    private let waiters: Meter
    private let handovers: Counter
    private let streams: Meter

    private struct HandleKey: Hashable {
        let metric: String
        let queueLabel: String
        var dimension = "queue"
    }

    private struct State {
        var labelledQueues: Set<String> = []
        var counters: [HandleKey: Counter] = [:]
        var gauges: [HandleKey: Gauge] = [:]
        /// The backend totals last seen per queue, to turn them into counter increments.
        var lastTotals: [String: (retried: Int64, deadLettered: Int64)] = [:]
    }

    private let state = Mutex(State())

    public init(factory: any MetricsFactory = MetricsSystem.factory, queueLabelLimit: Int = 1000) {
        self.factory = factory
        self.queueLabelLimit = queueLabelLimit
        self.waiters = Meter(label: Self.longPollWaiters, factory: factory)
        self.handovers = Counter(label: Self.fastPathHandoversTotal, dimensions: [], factory: factory)
        self.streams = Meter(label: Self.streamsOpen, factory: factory)
    }

    /// A publish to a topic: `count` messages, stored `copies` times in subscriber queues in all.
    public func topicPublished(topic: String, count: Int, copies: Int) {
        counter(Self.topicPublishedTotal, queue: topic, dimension: "topic").increment(by: count)
        if copies > 0 { counter(Self.topicCopiesTotal, queue: topic, dimension: "topic").increment(by: copies) }
    }

    public func messageEnqueued(queue: String, count: Int = 1) { counter(Self.enqueuedTotal, queue: queue).increment(by: count) }
    public func messageDelivered(queue: String, count: Int = 1) { counter(Self.deliveredTotal, queue: queue).increment(by: count) }
    public func messageAcked(queue: String, count: Int = 1) { counter(Self.ackedTotal, queue: queue).increment(by: count) }
    /// A message went back to its queue for another attempt (nack, expired visibility, released claim).
    public func messageRetried(queue: String, count: Int = 1) { counter(Self.retriedTotal, queue: queue).increment(by: count) }
    public func messageDeadLettered(queue: String, count: Int = 1) { counter(Self.deadLetteredTotal, queue: queue).increment(by: count) }

    /// A long-poll started waiting; pair with ``waitFinished()``.
    public func waitStarted() { waiters.increment() }
    public func waitFinished() { waiters.decrement() }

    /// A WebSocket stream opened; pair with ``streamClosed()``.
    public func streamOpened() { streams.increment() }
    public func streamClosed() { streams.decrement() }

    /// A connection went to the HTTP decoder for good (see the type's notes).
    public func fastPathHandedOver() { handovers.increment() }

    /// Sets the per-queue gauges; called by ``QueueGaugeRefresher``. Queues past the label limit
    /// are summed (depth, in-flight) or maxed (oldest age) into `queue="other"`.
    public func recordQueueGauges(_ snapshots: [QueueGaugeSnapshot]) {
        var byLabel: [String: (depth: Int, inFlight: Int, oldestAge: Double)] = [:]
        for snapshot in snapshots {
            let label = queueLabel(snapshot.queue)
            var entry = byLabel[label] ?? (0, 0, 0)
            entry.depth += snapshot.depth
            entry.inFlight += snapshot.inFlight
            entry.oldestAge = max(entry.oldestAge, snapshot.oldestMessageAgeSeconds)
            byLabel[label] = entry
        }
        for snapshot in snapshots {
            guard let totals = snapshot.totals else { continue }
            let previous = state.withLock { state in
                defer { state.lastTotals[snapshot.queue] = totals }
                return state.lastTotals[snapshot.queue] ?? (0, 0)
            }
            // A total that went down was reset (the queue was deleted): count from zero again.
            let retried = totals.retried >= previous.retried ? totals.retried - previous.retried : totals.retried
            let deadLettered = totals.deadLettered >= previous.deadLettered ? totals.deadLettered - previous.deadLettered : totals.deadLettered
            if retried > 0 { messageRetried(queue: snapshot.queue, count: Int(retried)) }
            if deadLettered > 0 { messageDeadLettered(queue: snapshot.queue, count: Int(deadLettered)) }
        }
        for (label, entry) in byLabel {
            gauge(Self.queueDepth, label: label).record(entry.depth)
            gauge(Self.queueInFlight, label: label).record(entry.inFlight)
            gauge(Self.queueOldestAge, label: label).record(entry.oldestAge)
        }
    }

    /// The `queue` label for `queue`: its name while fewer than ``queueLabelLimit`` names have
    /// been labelled, `other` after that.
    public func queueLabel(_ queue: String) -> String {
        state.withLock { state in Self.label(for: queue, in: &state, limit: queueLabelLimit) }
    }

    private static func label(for queue: String, in state: inout State, limit: Int) -> String {
        if state.labelledQueues.contains(queue) { return queue }
        guard state.labelledQueues.count < limit else { return overflowQueueLabel }
        state.labelledQueues.insert(queue)
        return queue
    }

    /// `dimension`: the label's name; topics share the queue names' label limit.
    private func counter(_ metric: String, queue: String, dimension: String = "queue") -> Counter {
        state.withLock { state in
            let key = HandleKey(metric: metric, queueLabel: Self.label(for: queue, in: &state, limit: queueLabelLimit), dimension: dimension)
            if let counter = state.counters[key] { return counter }
            let counter = Counter(label: metric, dimensions: [(dimension, key.queueLabel)], factory: factory)
            state.counters[key] = counter
            return counter
        }
    }

    private func gauge(_ metric: String, label: String) -> Gauge {
        state.withLock { state in
            let key = HandleKey(metric: metric, queueLabel: label)
            if let gauge = state.gauges[key] { return gauge }
            let gauge = Gauge(label: metric, dimensions: [("queue", label)], factory: factory)
            state.gauges[key] = gauge
            return gauge
        }
    }
}

/// One queue's state at one moment, for the queue gauges.
public struct QueueGaugeSnapshot: Sendable, Equatable {
    public var queue: String
    /// Messages waiting to be delivered.
    public var depth: Int
    /// Messages delivered and not yet acknowledged (or claimed and not yet handed over).
    public var inFlight: Int
    /// Age of the oldest waiting message; 0 when the queue is empty.
    public var oldestMessageAgeSeconds: Double

    /// The queue's exact retry and dead-letter totals, when the snapshot has them.
    public var totals: (retried: Int64, deadLettered: Int64)?

    public init(
        queue: String,
        depth: Int,
        inFlight: Int,
        oldestMessageAgeSeconds: Double,
        totals: (retried: Int64, deadLettered: Int64)? = nil
    ) {
        self.queue = queue
        self.depth = depth
        self.inFlight = inFlight
        self.oldestMessageAgeSeconds = oldestMessageAgeSeconds
        self.totals = totals
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.queue == rhs.queue && lhs.depth == rhs.depth && lhs.inFlight == rhs.inFlight
            && lhs.oldestMessageAgeSeconds == rhs.oldestMessageAgeSeconds && lhs.totals?.retried == rhs.totals?.retried
            && lhs.totals?.deadLettered == rhs.totals?.deadLettered
    }
}
