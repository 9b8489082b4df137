# --- Identity ------------------------------------------------------------------------

# Skiff's own identity. Its only permissions are reading its secrets
# (secrets.tf, and the collectors' configurations, monitoring.tf and
# tracing.tf) and, with the payload store, the objects of its one bucket
# (payloads.tf): not the default compute service account's Editor. Three
# project-level roles, each only when its feature is on: with
# redis_cluster_auth_mode = "iam", the default for the cluster products, the
# product's connection role (redis.tf); with monitoring_enabled,
# monitoring.metricWriter for the metrics sidecar (monitoring.tf); with
# tracing_enabled, cloudtrace.agent for the trace sidecar (tracing.tf). Logs
# written to stdout reach Cloud Logging without any role.
resource "google_service_account" "skiff" {
  account_id   = "${var.name_prefix}-run"
  display_name = "Skiff Cloud Run service"
  description  = "Runs the Skiff queue service; reads the Redis AUTH string and CA certificate, and uses the objects of its payload bucket when there is one."

  depends_on = [google_project_service.enabled]
}

# --- Service ---------------------------------------------------------------------

locals {
  redis_ca_dir  = "/etc/skiff/redis-ca"
  redis_ca_file = "ca.pem"

  # Where Redis is, by backend (redis.tf). Both verify the server against the
  # CA Memorystore lists for it (secrets.tf) but not the host name: Memorystore
  # for Redis certificates do not name the IP the service dials, and the
  # cluster products' are not documented to name their PSC addresses.
  redis_environment = local.redis_single ? tomap({
    # Memorystore for Redis: one TLS endpoint; the AUTH string is added as a
    # secret below.
    REDIS_HOST = google_redis_instance.main[0].host
    REDIS_PORT = tostring(google_redis_instance.main[0].port)
    REDIS_TLS  = "true"
    }) : tomap({
    # The cluster products: Skiff's cluster client, seeded with the discovery
    # endpoint, TLS (rediss+).
    REDIS_URL = "rediss+cluster://${join(",", local.redis_cluster_seeds)}"
  })

  # IAM authentication of the cluster products (var.redis_cluster_auth_mode,
  # default "iam"): every new connection sends the service account's access
  # token, from the metadata server, as its AUTH password.
  redis_auth_environment = local.redis_psc && var.redis_cluster_auth_mode == "iam" ? tomap({ REDIS_AUTH = "iam" }) : tomap({})

  # The payload store (payloads.tf): objects m/<message id> at the bucket's
  # root, credentials from the metadata server. Messages (sent or published)
  # may then reach PAYLOADS_MAX_MESSAGE_BYTES; MAX_MESSAGE_BYTES still bounds
  # what Redis keeps whole. Without the store, no PAYLOADS_* variable: the
  # server refuses them without PAYLOADS_STORE.
  payload_environment = var.payload_store_enabled ? tomap({
    PAYLOADS_STORE                   = "gs://${google_storage_bucket.payloads[0].name}/"
    PAYLOADS_OFFLOAD_THRESHOLD_BYTES = tostring(var.payload_offload_threshold_bytes)
    PAYLOADS_MAX_MESSAGE_BYTES       = tostring(var.payload_max_message_bytes)
    # The replicas' sweep deletes what the lifecycle rule would, at the same age.
    PAYLOADS_RETENTION_MS = tostring(var.payload_retention_days * 86400000)
  }) : tomap({})
  # payload=url receives get V4 signed URLs, signed by IAM's signBlob as the
  # service account itself (payloads.tf grants it that on itself only).
  payload_signing_environment = local.payload_signed_urls ? tomap({
    PAYLOADS_GCS_SIGNING_ACCOUNT = google_service_account.skiff.email
  }) : tomap({})

  # Plain settings; the AUTH string (Memorystore for Redis only) is added as a
  # secret below.
  # With monitoring (monitoring.tf), /metrics is also served, without a key,
  # on a port bound to 127.0.0.1 that only the metrics sidecar reaches.
  metrics_environment = var.monitoring_enabled ? tomap({ METRICS_PORT = tostring(local.metrics_port) }) : tomap({})

  # With tracing (tracing.tf), spans go over OTLP/HTTP to the trace sidecar on
  # the instance's loopback (<endpoint>/v1/traces), sampled at the root: a
  # trace_sample_ratio share of the traces that start here, and whatever a
  # caller's traceparent decided for the rest.
  tracing_environment = var.tracing_enabled ? tomap({
    OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:${local.otlp_port}"
    OTEL_TRACES_SAMPLER         = "parentbased_traceidratio"
    OTEL_TRACES_SAMPLER_ARG     = tostring(var.trace_sample_ratio)
  }) : tomap({})

  environment = merge(local.redis_environment, local.redis_auth_environment, local.payload_environment, local.payload_signing_environment, local.metrics_environment, local.tracing_environment, {
    REDIS_TLS_CA_FILE                    = "${local.redis_ca_dir}/${local.redis_ca_file}"
    REDIS_TLS_SKIP_HOSTNAME_VERIFICATION = "true"
    DEFAULT_TIMEOUT                      = tostring(var.default_timeout_ms)
    STORE_TRACE_CONTEXT                  = tostring(var.store_trace_context)
    MAX_MESSAGE_BYTES                    = tostring(var.max_message_bytes)
    CLAIM_LEASE_MS                       = tostring(var.claim_lease_ms)
    REDIS_WAIT_REPLICAS                  = tostring(var.redis_wait_replicas)
    REDIS_WAIT_TIMEOUT_MS                = tostring(var.redis_wait_timeout_ms)
    LOG_LEVEL                            = var.log_level
    LOG_FORMAT                           = "json"
    PUSH_ENABLED                         = tostring(var.push_enabled)
    }, var.push_allowed_networks == "" ? tomap({}) : tomap({
      PUSH_ALLOWED_NETWORKS = var.push_allowed_networks
  }))
}

resource "google_cloud_run_v2_service" "skiff" {
  #checkov:skip=CKV2_SKIFF_1:Served straight from its run.app URL, with no load balancer in this stack, so ingress must be ALL by default; every call still needs run.invoker (authenticated unless allow_unauthenticated). var.ingress switches to INTERNAL_* behind a load balancer.
  name                = var.name_prefix
  location            = var.region
  description         = "Skiff: HTTP message queue on Memorystore."
  ingress             = var.ingress
  deletion_protection = var.deletion_protection
  labels              = local.labels

  template {
    service_account = google_service_account.skiff.email
    labels          = local.labels

    # A GET long-polls for up to 60 s. The request timeout must comfortably
    # exceed that, or Cloud Run would cut a poll that is just returning a
    # message it already popped. Streams (WebSocket, event feed) live until it:
    # 3600 s by default, the most Cloud Run allows; clients reconnect.
    timeout                          = "${var.request_timeout_seconds}s"
    session_affinity                 = var.session_affinity
    max_instance_request_concurrency = var.concurrency
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"

    scaling {
      # Push delivery runs on the instances, between requests: one stays up while it is on.
      min_instance_count = var.push_enabled ? max(var.min_instances, 1) : var.min_instances
      max_instance_count = var.max_instances
    }

    # Memorystore has only a private address: reach it through the connector.
    # Only private ranges go that way; anything public goes out directly.
    vpc_access {
      connector = google_vpc_access_connector.connector.id
      egress    = "PRIVATE_RANGES_ONLY"
    }

    volumes {
      name = "redis-ca"
      secret {
        secret       = google_secret_manager_secret.redis_ca.secret_id
        default_mode = 292 # 0444
        items {
          # Pinned: a new CA version rolls out as a new revision.
          version = google_secret_manager_secret_version.redis_ca.version
          path    = local.redis_ca_file
          mode    = 292
        }
      }
    }

    # The collector's RunMonitoring document (monitoring.tf).
    dynamic "volumes" {
      for_each = var.monitoring_enabled ? [1] : []
      content {
        name = "run-monitoring"
        secret {
          secret       = google_secret_manager_secret.run_monitoring[0].secret_id
          default_mode = 292 # 0444
          items {
            version = google_secret_manager_secret_version.run_monitoring[0].version
            path    = "config.yaml"
            mode    = 292
          }
        }
      }
    }

    # The trace collector's configuration (tracing.tf).
    dynamic "volumes" {
      for_each = var.tracing_enabled ? [1] : []
      content {
        name = "trace-collector"
        secret {
          secret       = google_secret_manager_secret.trace_collector[0].secret_id
          default_mode = 292 # 0444
          items {
            version = google_secret_manager_secret_version.trace_collector[0].version
            path    = "config.yaml"
            mode    = 292
          }
        }
      }
    }

    containers {
      name  = "skiff"
      image = var.image
      args  = ["serve"]
      # With tracing, started once the trace sidecar takes spans, so that the
      # first requests' spans are not lost.
      depends_on = var.tracing_enabled ? ["trace-collector"] : null

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        cpu_idle          = var.cpu_idle
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.environment
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.redis_single ? [1] : []
        content {
          name = "REDIS_PASSWORD"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.redis_auth[0].secret_id
              version = google_secret_manager_secret_version.redis_auth[0].version
            }
          }
        }
      }

      volume_mounts {
        name       = "redis-ca"
        mount_path = local.redis_ca_dir
      }

      # Up to 30 s to start (2 s x 15) before the instance is given up on.
      startup_probe {
        http_get {
          path = "/health"
          port = 8080
        }
        initial_delay_seconds = 0
        period_seconds        = 2
        timeout_seconds       = 2
        failure_threshold     = 15
      }

      # Restart an instance only after a minute of failed checks: long
      # enough to ride out a Memorystore failover (STANDARD_HA) without
      # restarting every instance at once.
      liveness_probe {
        http_get {
          path = "/health"
          port = 8080
        }
        period_seconds    = 10
        timeout_seconds   = 3
        failure_threshold = 6
      }
    }

    # Managed Service for Prometheus: scrapes METRICS_PORT on the instance's
    # loopback and writes to Cloud Monitoring. Started once Skiff is up.
    dynamic "containers" {
      for_each = var.monitoring_enabled ? [1] : []
      content {
        name       = "metrics-collector"
        image      = var.metrics_sidecar_image
        depends_on = ["skiff"]

        resources {
          # Counted in the instance's total, beside Skiff's own (cpu, memory):
          # enough for a scrape of a few thousand series every 30 s.
          limits = {
            cpu    = "500m"
            memory = "256Mi"
          }
          # Billed as Skiff's container is: only while requests run, unless
          # cpu_idle is false.
          cpu_idle = var.cpu_idle
        }

        volume_mounts {
          name       = "run-monitoring"
          mount_path = "/etc/rungmp"
        }
      }
    }

    # The Google-Built OpenTelemetry Collector: receives Skiff's spans over
    # OTLP/HTTP on the instance's loopback and writes them to Cloud Trace
    # (tracing.tf). Started first: Skiff waits for its startup probe.
    dynamic "containers" {
      for_each = var.tracing_enabled ? [1] : []
      content {
        name  = "trace-collector"
        image = var.trace_collector_image
        # The image's own default, named: the mounted secret replaces its
        # example configuration.
        args = ["--config=/etc/otelcol-google/config.yaml"]

        resources {
          # Counted in the instance's total, beside Skiff's own (cpu, memory)
          # and the metrics sidecar's; the collector's memory_limiter keeps it
          # under this memory (monitoring_panels.tf).
          limits = {
            cpu    = "500m"
            memory = "${local.trace_collector_memory_mib}Mi"
          }
          # Billed as Skiff's container is: only while requests run, unless
          # cpu_idle is false.
          cpu_idle = var.cpu_idle
        }

        volume_mounts {
          name       = "trace-collector"
          mount_path = "/etc/otelcol-google"
        }

        # The health_check extension answers once the pipeline runs: up to
        # 30 s (1 s x 30), usually about one.
        startup_probe {
          http_get {
            path = "/"
            port = local.trace_collector_health_port
          }
          initial_delay_seconds = 0
          period_seconds        = 1
          timeout_seconds       = 1
          failure_threshold     = 30
        }
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  lifecycle {
    precondition {
      condition     = local.redis_single || length(local.redis_cluster_seeds) > 0
      error_message = "Memorystore reports no discovery endpoint for the ${var.redis_backend} backend, so REDIS_URL would name no node. Check the cluster's Private Service Connect endpoints and the service connection policy (network.tf)."
    }

    # As var.cpu's validation does for the metrics sidecar: the trace sidecar
    # takes half a vCPU more, and an instance has at most 8.
    precondition {
      condition     = !(var.tracing_enabled && var.cpu == "8")
      error_message = "cpu = 8 leaves no room for the trace collector sidecar (tracing_enabled): an instance has at most 8 vCPUs. Use 6, or tracing_enabled = false."
    }
  }

  depends_on = [
    google_project_service.enabled,
    # The first revision reads both secrets at start.
    google_secret_manager_secret_iam_member.redis_auth,
    google_secret_manager_secret_iam_member.redis_ca,
    # With REDIS_AUTH=iam the first revision's connections need the role.
    google_project_iam_member.redis_connect,
    # With PAYLOADS_STORE the first revision's large messages need the bucket.
    google_storage_bucket_iam_member.payloads,
    # The collectors read their configurations at start and write metrics
    # and spans.
    google_secret_manager_secret_iam_member.run_monitoring,
    google_project_iam_member.metric_writer,
    google_secret_manager_secret_iam_member.trace_collector,
    google_project_iam_member.trace_agent,
  ]
}

# --- Who may call it ----------------------------------------------------------------

locals {
  invokers = toset(concat(var.allow_unauthenticated ? ["allUsers"] : [], var.invoker_members))
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = local.invokers

  name     = google_cloud_run_v2_service.skiff.name
  location = google_cloud_run_v2_service.skiff.location
  role     = "roles/run.invoker"
  member   = each.value
}
