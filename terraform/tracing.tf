# Traces (docs/operations.md, "Traces"): Skiff's OpenTelemetry spans reach
# Cloud Trace through the Google-Built OpenTelemetry Collector, a sidecar on
# every instance (run.tf), as its metrics reach Managed Service for Prometheus
# through the metrics sidecar (monitoring.tf).
#
# Why a sidecar: Skiff exports OTLP over HTTP and nothing else, and Cloud Trace
# takes its own API; the collector receives OTLP on the instance's loopback
# (no key, unreachable from outside the instance), batches, and writes to
# Cloud Trace with the instance's identity, so that Skiff needs no Google
# credentials or client for it and a slow Cloud Trace never holds a request.
# Its configuration is trace_collector_config (monitoring_panels.tf).
# Everything here is off with tracing_enabled = false, and Skiff then gets no
# OTEL_EXPORTER_OTLP_ENDPOINT and traces nothing.

locals {
  tracing = var.tracing_enabled
}

resource "google_secret_manager_secret" "trace_collector" {
  count = local.tracing ? 1 : 0

  secret_id = "${var.name_prefix}-trace-collector"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_version" "trace_collector" {
  count = local.tracing ? 1 : 0

  secret      = google_secret_manager_secret.trace_collector[0].id
  secret_data = local.trace_collector_config
}

resource "google_secret_manager_secret_iam_member" "trace_collector" {
  count = local.tracing ? 1 : 0

  secret_id = google_secret_manager_secret.trace_collector[0].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.skiff.member
}

# Writing spans has no narrower grant than the project: this is the one
# project-level role the service account gets for tracing.
resource "google_project_iam_member" "trace_agent" {
  count = local.tracing ? 1 : 0

  project = var.project_id
  role    = "roles/cloudtrace.agent"
  member  = google_service_account.skiff.member
}
