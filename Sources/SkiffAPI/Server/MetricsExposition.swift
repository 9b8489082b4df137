/// Renders the current metrics in the Prometheus text format for `GET /metrics`.
///
/// The executable makes its `PrometheusCollectorRegistry` conform, so this target does not
/// depend on Prometheus: libraries record through swift-metrics only.
public protocol MetricsExposition: Sendable {
    /// Appends the text exposition of every metric to `buffer`.
    func emit(into buffer: inout [UInt8])
}
