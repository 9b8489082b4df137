# What monitoring.tf shows and alerts on, as values only (no resource here, so
# scripts/check-infra.sh can evaluate it without the provider and check every
# PromQL query with promtool): the collector's configuration, the metrics of
# each Memorystore product, the PromQL alert conditions and the dashboard.
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
