# What monitoring.tf shows and alerts on, as values only (no resource here, so
# scripts/check-infra.sh can evaluate it without the provider and check every
# PromQL query with promtool): the collectors' configurations (the metrics
# sidecar's, and the trace sidecar's of tracing.tf), the metrics of each
# Memorystore product, the PromQL alert conditions and the dashboard.
# docs/operations.md says where each number comes from.

locals {
  metrics_port = 9464

  # The RunMonitoring document the sidecar reads from /etc/rungmp/config.yaml.
  run_monitoring_config = yamlencode({
    apiVersion = "monitoring.googleapis.com/v1beta"
    kind       = "RunMonitoring"
    metadata   = { name = var.name_prefix }
    spec = {
      endpoints = [{
        port     = local.metrics_port
        path     = "/metrics"
        interval = "${var.metrics_scrape_interval_seconds}s"
      }]
    }
  })

  # The trace sidecar (tracing.tf): Skiff exports OTLP/HTTP to this port on the
  # instance's loopback (OTEL_EXPORTER_OTLP_ENDPOINT), and Cloud Run probes the
  # collector's health_check extension on the other. Not 13133, the extension's
  # usual port: the metrics sidecar answers its own probe there from 1.2.0 on,
  # and the instance's containers share one network.
  otlp_port                   = 4318
  trace_collector_health_port = 13134
  # The sidecar's memory limit (run.tf); the memory_limiter refuses spans before
  # the collector reaches it.
  trace_collector_memory_mib = 256

  # The Google-Built OpenTelemetry Collector's configuration, which the sidecar
  # reads from /etc/otelcol-google/config.yaml: traces only, from Skiff over
  # OTLP/HTTP on 127.0.0.1 (nothing outside the instance reaches it), to Cloud
  # Trace as Skiff's service account. The collector's own metrics are off, so
  # that it listens on these two ports only.
  trace_collector_config = yamlencode({
    receivers = {
      otlp = {
        protocols = {
          http = { endpoint = "127.0.0.1:${local.otlp_port}" }
        }
      }
    }
    processors = {
      # First in the pipeline: past the soft limit (limit less spike) spans are
      # refused, so that a burst costs spans, never the sidecar (killed at its
      # memory limit) or Skiff's requests.
      memory_limiter = {
        check_interval  = "1s"
        limit_mib       = floor(local.trace_collector_memory_mib * 0.8)
        spike_limit_mib = floor(local.trace_collector_memory_mib * 0.2)
      }
      # The Cloud Run service, revision, region and instance, from the metadata
      # server; Skiff's own resource attributes (service.name,
      # service.instance.id) win where both set one.
      resourcedetection = {
        detectors = ["gcp"]
        timeout   = "10s"
        override  = false
      }
      # Skiff already batches every 5 s; this bounds the writes to Cloud Trace.
      batch = {
        send_batch_size     = 200
        send_batch_max_size = 200
        timeout             = "5s"
      }
    }
    exporters = {
      # Cloud Trace, in the project the service runs in (from the metadata
      # server), as Skiff's service account.
      googlecloud = {}
    }
    extensions = {
      # Cloud Run's startup probe (run.tf) asks it whether the pipeline is up,
      # before Skiff starts. Cloud Run sends nothing from outside the instance
      # to a sidecar's port.
      health_check = { endpoint = "0.0.0.0:${local.trace_collector_health_port}" }
    }
    service = {
      extensions = ["health_check"]
      pipelines = {
        traces = {
          receivers  = ["otlp"]
          processors = ["memory_limiter", "resourcedetection", "batch"]
          exporters  = ["googlecloud"]
        }
      }
      telemetry = {
        metrics = { level = "none" }
      }
    }
  })

  # Memorystore's own metrics, by product (redis.tf): memory use as a ratio of
  # the limit (the fullest node for the cluster products) and client connections.
  redis_metrics = {
    memorystore-redis = {
      resource    = "redis_instance"
      id_label    = "instance_id"
      id          = "${var.name_prefix}-redis"
      memory      = "redis.googleapis.com/stats/memory/usage_ratio"
      connections = "redis.googleapis.com/clients/connected"
    }
    memorystore-redis-cluster = {
      resource    = "redis.googleapis.com/Cluster"
      id_label    = "cluster_id"
      id          = "${var.name_prefix}-redis-cluster"
      memory      = "redis.googleapis.com/cluster/memory/maximum_utilization"
      connections = "redis.googleapis.com/cluster/clients/total_connected_clients"
    }
    memorystore-valkey = {
      resource    = "memorystore.googleapis.com/Instance"
      id_label    = "instance_id"
      id          = "${var.name_prefix}-valkey"
      memory      = "memorystore.googleapis.com/instance/memory/maximum_utilization"
      connections = "memorystore.googleapis.com/instance/clients/total_connected_clients"
    }
  }
  redis_metric = local.redis_metrics[var.redis_backend]
  # This deployment's instance or cluster only (redis.tf names it after name_prefix), not every
  # Memorystore of the project; the label holds its id, or its full resource name.
  redis_filter = "resource.type = \"${local.redis_metric.resource}\" AND resource.labels.${local.redis_metric.id_label} = monitoring.regex.full_match(\"(.*/)?${local.redis_metric.id}\")"

  run_filter = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${var.name_prefix}\""
}

locals {
  # The PromQL conditions of the alert policies (monitoring.tf), the same as
  # deploy/prometheus/alerts.yml's for the local cluster. Queue figures are
  # queue-wide and the same on every replica: max, never sum. A dead-letter
  # queue may have any name, so the total of the queue the messages left is
  # what is watched; it is the queue's total since it was made, which a new
  # replica reports whole from its first sample, so growth is the total now
  # less the least any replica reported within the window (increase() would
  # count a new replica's first sample as growth where the collector keeps it,
  # as Managed Service for Prometheus does).
  alert_queries = {
    oldest_message_age = "max by (queue) (skiff_queue_oldest_message_age_seconds) > ${var.alert_oldest_message_age_seconds}"
    dead_letters       = "max by (queue) (skiff_messages_dead_lettered_total) - min by (queue) (min_over_time(skiff_messages_dead_lettered_total[${var.alert_dead_letter_window_minutes}m])) > 0"
  }
}

locals {
  # A PromQL time series chart over Managed Service for Prometheus.
  promql_chart = {
    requests_by_route = {
      title = "Requests per second by route (Skiff)"
      query = "sum by (route, method) (rate(skiff_http_requests_total[5m]))"
      unit  = "1/s"
    }
    server_errors_by_route = {
      title = "5xx per second by route (Skiff)"
      query = "sum by (route, status) (rate(skiff_http_requests_total{status=~\"5..\"}[5m]))"
      unit  = "1/s"
    }
    latency_by_route = {
      title = "Latency p99 by route (Skiff; a long poll's wait included)"
      query = "histogram_quantile(0.99, sum by (le, route) (rate(skiff_http_request_duration_seconds_bucket[5m])))"
      unit  = "s"
    }
    latency_percentiles = {
      title = "Latency p50 / p95 / p99, every route but the long-polling GET (Skiff)"
      query = join(" or ", [for q in ["0.5", "0.95", "0.99"] : "label_replace(histogram_quantile(${q}, sum by (le) (rate(skiff_http_request_duration_seconds_bucket{method!=\"GET\"}[5m]))), \"quantile\", \"${q}\", \"\", \"\")"])
      unit  = "s"
    }
    queue_depth = {
      title = "Ready messages by queue"
      query = "max by (queue) (skiff_queue_depth)"
      unit  = "1"
    }
    in_flight = {
      title = "In flight by queue"
      query = "max by (queue) (skiff_queue_in_flight)"
      unit  = "1"
    }
    oldest_age = {
      title = "Oldest ready message age by queue"
      query = "max by (queue) (skiff_queue_oldest_message_age_seconds)"
      unit  = "s"
    }
    dead_letters = {
      title = "Dead-lettered per hour by queue"
      query = "max by (queue) (skiff_messages_dead_lettered_total) - min by (queue) (min_over_time(skiff_messages_dead_lettered_total[1h]))"
      unit  = "1"
    }
    throughput = {
      title = "Enqueued, delivered, acked per second"
      query = "label_replace(sum(rate(skiff_messages_enqueued_total[5m])), \"what\", \"enqueued\", \"\", \"\") or label_replace(sum(rate(skiff_messages_delivered_total[5m])), \"what\", \"delivered\", \"\", \"\") or label_replace(sum(rate(skiff_messages_acked_total[5m])), \"what\", \"acked\", \"\", \"\")"
      unit  = "1/s"
    }
  }

  # A chart of a Cloud Monitoring metric (Cloud Run's, Memorystore's).
  metric_chart = {
    cloud_run_requests = {
      title   = "Cloud Run requests per second by response class"
      filter  = "${local.run_filter} AND metric.type = \"run.googleapis.com/request_count\""
      aligner = "ALIGN_RATE"
      reducer = "REDUCE_SUM"
      group   = ["metric.label.\"response_code_class\""]
    }
    cloud_run_latency = {
      title   = "Cloud Run request latency p99 (long polls included)"
      filter  = "${local.run_filter} AND metric.type = \"run.googleapis.com/request_latencies\""
      aligner = "ALIGN_DELTA"
      reducer = "REDUCE_PERCENTILE_99"
      group   = []
    }
    instances = {
      title   = "Instances"
      filter  = "${local.run_filter} AND metric.type = \"run.googleapis.com/container/instance_count\""
      aligner = "ALIGN_MAX"
      reducer = "REDUCE_SUM"
      group   = ["metric.label.\"state\""]
    }
    redis_memory = {
      title   = "Redis memory used (ratio of the limit, ${var.redis_backend})"
      filter  = "${local.redis_filter} AND metric.type = \"${local.redis_metric.memory}\""
      aligner = "ALIGN_MAX"
      reducer = "REDUCE_MAX"
      group   = []
    }
    redis_connections = {
      title   = "Redis client connections"
      filter  = "${local.redis_filter} AND metric.type = \"${local.redis_metric.connections}\""
      aligner = "ALIGN_MAX"
      reducer = "REDUCE_SUM"
      group   = []
    }
  }

  # Order on the dashboard, two tiles a row (24 columns, rows of 16).
  dashboard_order = [
    "cloud_run_requests", "requests_by_route",
    "server_errors_by_route", "latency_by_route",
    "latency_percentiles", "cloud_run_latency",
    "queue_depth", "oldest_age",
    "in_flight", "dead_letters",
    "throughput", "instances",
    "redis_memory", "redis_connections",
  ]

  # What each tile charts: a PromQL query, or a Cloud Monitoring metric.
  dashboard_queries = merge(
    { for key, chart in local.promql_chart : key => { prometheusQuery = chart.query, unitOverride = chart.unit } },
    {
      for key, chart in local.metric_chart : key => {
        timeSeriesFilter = {
          filter = chart.filter
          aggregation = {
            alignmentPeriod    = "60s"
            perSeriesAligner   = chart.aligner
            crossSeriesReducer = chart.reducer
            groupByFields      = chart.group
          }
        }
      }
    },
  )
  dashboard_titles = merge({ for key, chart in local.promql_chart : key => chart.title }, { for key, chart in local.metric_chart : key => chart.title })

  dashboard = {
    displayName = "Skiff (${var.name_prefix})"
    mosaicLayout = {
      columns = 48
      tiles = [for index, key in local.dashboard_order : {
        xPos   = (index % 2) * 24
        yPos   = floor(index / 2) * 16
        width  = 24
        height = 16
        widget = {
          title = local.dashboard_titles[key]
          xyChart = {
            dataSets = [{ plotType = "LINE", targetAxis = "Y1", timeSeriesQuery = local.dashboard_queries[key] }]
            yAxis    = { scale = "LINEAR" }
          }
        }
      }]
    }
  }
}
