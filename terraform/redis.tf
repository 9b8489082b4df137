# Memorystore for Redis: the queues' only state.
resource "google_redis_instance" "main" {
  name           = "${var.name_prefix}-redis"
  display_name   = "Skiff queues"
  region         = var.region
  redis_version  = var.redis_version
  memory_size_gb = var.redis_memory_size_gb

  # A primary and a replica in different zones with automatic failover: a
  # zone outage or maintenance is a failover of seconds, not an outage.
  tier = "STANDARD_HA"

  # Private IP only, through private services access (no public endpoint
  # exists for Memorystore; this also keeps it off the default network).
  authorized_network = local.network_id
  connect_mode       = "PRIVATE_SERVICE_ACCESS"
  reserved_ip_range  = local.psa_range_name

  # Clients must present the AUTH string (kept in Secret Manager, secrets.tf)
  # and talk TLS; the server's CA certificate is in Secret Manager too.
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"

  redis_configs = {
    # A queue must never lose messages to eviction: when memory is full,
    # writes fail and producers see an error they can retry.
    "maxmemory-policy" = "noeviction"
  }

  # Memorystore for Redis offers RDB snapshots only (no AOF; AOF exists in
  # Memorystore for Redis Cluster / Valkey). Durability between snapshots
  # comes from the in-memory replica; see docs/deploy.md for what that means
  # for acknowledged messages.
  persistence_config {
    persistence_mode    = "RDB"
    rdb_snapshot_period = var.redis_rdb_snapshot_period
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = var.redis_maintenance_day
      start_time {
        hours   = var.redis_maintenance_hour_utc
        minutes = 0
        seconds = 0
        nanos   = 0
      }
    }
  }

  labels = local.labels

  depends_on = [
    google_project_service.enabled,
    google_service_networking_connection.psa,
  ]
}
