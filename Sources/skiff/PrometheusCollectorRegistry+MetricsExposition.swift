import Prometheus
public import SkiffAPI

/// `GET /metrics` renders the registry the executable bootstrapped swift-metrics with.
extension PrometheusCollectorRegistry: MetricsExposition {}
