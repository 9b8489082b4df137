# Operations as code (docs/operations.md): Skiff's Prometheus metrics reach
# Google Cloud Managed Service for Prometheus through the Managed Service for
# Prometheus sidecar on every instance, and a Cloud Monitoring dashboard and
# alert policies read them next to Cloud Run's and Memorystore's own metrics.
#
# Why the sidecar: Skiff exposes Prometheus text (/metrics) and its queue
# figures are gauges (depth, oldest age) that log-based metrics cannot carry;
# the sidecar is Google's collector for exactly that, runs in the instance, and
# scrapes Skiff's loopback-only metrics listener (METRICS_PORT), which needs no
# API key and is unreachable from outside the instance. Everything here is off
# with monitoring_enabled = false.

locals {
  monitoring = var.monitoring_enabled

  notification_channels = concat(
    var.alert_notification_channels,
    [for channel in google_monitoring_notification_channel.email : channel.id],
  )
}

# --- Collection ------------------------------------------------------------------

resource "google_secret_manager_secret" "run_monitoring" {
  count = local.monitoring ? 1 : 0

  secret_id = "${var.name_prefix}-run-monitoring"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_version" "run_monitoring" {
  count = local.monitoring ? 1 : 0

  secret      = google_secret_manager_secret.run_monitoring[0].id
  secret_data = local.run_monitoring_config
}

resource "google_secret_manager_secret_iam_member" "run_monitoring" {
  count = local.monitoring ? 1 : 0

  secret_id = google_secret_manager_secret.run_monitoring[0].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.skiff.member
}

# Writing time series has no narrower grant than the project: this is the one
# project-level role the service account gets for monitoring.
resource "google_project_iam_member" "metric_writer" {
  count = local.monitoring ? 1 : 0

  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = google_service_account.skiff.member
}

# --- Notification ----------------------------------------------------------------

resource "google_monitoring_notification_channel" "email" {
  for_each = local.monitoring ? toset(var.alert_emails) : toset([])

  display_name = "${var.name_prefix} alerts: ${each.value}"
  type         = "email"
  labels       = { email_address = each.value }

  depends_on = [google_project_service.enabled]
}

# --- Alert policies --------------------------------------------------------------
#
# Defaults (variables.tf) and what to do when each fires: docs/operations.md.

# The two conditions on Skiff's own metrics, in PromQL (monitoring_panels.tf).
locals {
  promql_alerts = {
    oldest_message_age = {
      name       = "a queue's oldest message is older than ${var.alert_oldest_message_age_seconds} s"
      condition  = "oldest ready message age by queue"
      duration   = "300s"
      auto_close = "1800s"
      content    = "A queue's oldest ready message has waited over ${var.alert_oldest_message_age_seconds} s for five minutes: consumers are down, too few, or failing on it. See docs/operations.md#oldest-message-age."
    }
    dead_letters = {
      name       = "messages were dead-lettered"
      condition  = "dead-lettered messages in the last ${var.alert_dead_letter_window_minutes} minutes, by queue"
      duration   = "0s"
      auto_close = "3600s"
      content    = "Messages exhausted their receives and went to a dead-letter queue. Peek it (GET /api/{dlq}/messages?peek=10), fix the consumer, redrive (POST /api/{queue}/redrive). See docs/operations.md#dead-letters."
    }
  }
}

resource "google_monitoring_alert_policy" "queues" {
  for_each = local.monitoring ? local.promql_alerts : {}

  display_name          = "${var.name_prefix}: ${each.value.name}"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "WARNING"

  conditions {
    display_name = each.value.condition
    condition_prometheus_query_language {
      query               = local.alert_queries[each.key]
      duration            = each.value.duration
      evaluation_interval = "60s"
      # Skiff's series exist only once the collector has written them (and a
      # queue's dead-letter total once a replica has read it): on a first
      # deploy none has, and validation would refuse the policy.
      disable_metric_validation = true
    }
  }

  documentation {
    content   = each.value.content
    mime_type = "text/markdown"
  }

  alert_strategy {
    auto_close = each.value.auto_close
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "server_errors" {
  count = local.monitoring ? 1 : 0

  display_name          = "${var.name_prefix}: over ${var.alert_5xx_ratio * 100} % of requests answered 5xx"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "ERROR"

  conditions {
    display_name = "5xx share of Cloud Run requests"
    condition_threshold {
      # Cloud Run's count, so that requests the instances never answered
      # (crashes, timeouts, no instance) are in it.
      filter             = "${local.run_filter} AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\""
      denominator_filter = "${local.run_filter} AND metric.type = \"run.googleapis.com/request_count\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alert_5xx_ratio
      duration           = "300s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }

      denominator_aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    content   = "Over ${var.alert_5xx_ratio * 100} % of requests failed with 5xx for five minutes. 503 is Redis or the payload store unreachable, 507 Redis full, 502 an unreadable payload object. See docs/operations.md#server-errors."
    mime_type = "text/markdown"
  }

  alert_strategy {
    auto_close = "1800s"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "redis_memory" {
  count = local.monitoring ? 1 : 0

  display_name          = "${var.name_prefix}: Redis memory over ${var.alert_redis_memory_ratio * 100} %"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "ERROR"

  conditions {
    display_name = "Memorystore memory use (${var.redis_backend})"
    condition_threshold {
      filter          = "resource.type = \"${local.redis_metric.resource}\" AND metric.type = \"${local.redis_metric.memory}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_redis_memory_ratio
      duration        = "300s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    content   = "Redis is filling up. Skiff's Redis never evicts (noeviction): when it is full, sends are refused with 507 and nothing stored is lost. Drain or purge queues, lower retention, turn on the payload store for large messages, or resize. See docs/operations.md#redis-memory."
    mime_type = "text/markdown"
  }

  alert_strategy {
    auto_close = "1800s"
  }

  depends_on = [google_project_service.enabled]
}

# Instances that stop without being asked to: Cloud Run's system log says so
# ("Container called exit(N)" for a crash, a failed liveness probe before a
# restart). Counted by a log-based metric, since no platform metric tells a
# restart from a scale-out.
resource "google_logging_metric" "restarts" {
  count = local.monitoring ? 1 : 0

  name        = "${var.name_prefix}/instance_restarts"
  description = "Skiff instances that exited or failed their liveness probe (Cloud Run system log)."
  # A crash exits non-zero (an instance Cloud Run stops on scale-in exits 0,
  # and the collector sidecars' exits are not Skiff's); a liveness probe that
  # fails is followed by a restart (a startup probe that fails is a failed
  # deployment, which Cloud Run reports on its own).
  filter = join(" AND ", [
    local.run_filter,
    "log_id(\"run.googleapis.com/varlog/system\")",
    "((textPayload:\"Container called exit(\" AND NOT textPayload:\"exit(0)\" AND NOT textPayload:\"metrics-collector\" AND NOT textPayload:\"trace-collector\") OR (textPayload:\"LIVENESS\" AND textPayload:\"probe failed\"))",
  ])

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.enabled]
}

# Cloud Logging takes minutes to make a new log-based metric known to Cloud
# Monitoring, and a policy on it is refused until then (hashicorp/
# terraform-provider-google#11102): the policy waits.
resource "time_sleep" "restarts_metric" {
  count = local.monitoring ? 1 : 0

  create_duration = "300s"
  triggers        = { metric = google_logging_metric.restarts[0].id }
}

resource "google_monitoring_alert_policy" "restarts" {
  count = local.monitoring ? 1 : 0

  display_name          = "${var.name_prefix}: instances restarting"
  combiner              = "OR"
  notification_channels = local.notification_channels
  severity              = "ERROR"

  conditions {
    display_name = "instance exits and failed liveness probes"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.restarts[0].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_restarts
      duration        = "0s"

      aggregations {
        alignment_period     = "${var.alert_restart_window_minutes * 60}s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    content   = "More than ${var.alert_restarts} Skiff instances exited or failed their liveness probe within ${var.alert_restart_window_minutes} minutes. A restart loses no acknowledged message (claims come back after CLAIM_LEASE_MS), but repeated ones mean a crash or an unreachable Redis. See docs/operations.md#restarts."
    mime_type = "text/markdown"
  }

  alert_strategy {
    auto_close = "1800s"
  }

  depends_on = [time_sleep.restarts_metric]
}

resource "google_monitoring_dashboard" "skiff" {
  count = local.monitoring ? 1 : 0

  dashboard_json = jsonencode(local.dashboard)

  depends_on = [google_project_service.enabled]
}
