# The queues' only state: one of three Memorystore products, chosen by
# var.redis_backend (docs/deploy.md, "Choosing a Redis backend").
#
#   memorystore-redis          google_redis_instance: a primary and a replica
#                              (STANDARD_HA), AUTH + TLS, private services
#                              access. Skiff's single-Redis layout.
#   memorystore-redis-cluster  google_redis_cluster: shards of a primary and
#                              replicas, TLS, Private Service Connect. Skiff's
#                              cluster layout (REDIS_URL=rediss+cluster://...).
#   memorystore-valkey         google_memorystore_instance in cluster mode: the
#                              same on Valkey.
#
# Exactly one of them backs the service (run.tf). Switching creates the new
# one empty: nothing is copied (docs/deploy.md, "Migrating").

locals {
  redis_single  = var.redis_backend == "memorystore-redis"
  redis_cluster = var.redis_backend == "memorystore-redis-cluster"
  redis_valkey  = var.redis_backend == "memorystore-valkey"
  # The products reached through Private Service Connect (network.tf).
  redis_psc = !local.redis_single
  # The Memorystore for Redis instance stays while it is the backend, or while
  # a migration away from it keeps it (var.keep_memorystore_redis_instance).
  redis_instance_exists = local.redis_single || var.keep_memorystore_redis_instance

  redis_maintenance_start = {
    hours   = var.redis_maintenance_hour_utc
    minutes = 0
    seconds = 0
    nanos   = 0
  }
}

# --- Memorystore for Redis -------------------------------------------------------------

# Was a single resource before redis_backend existed; keep the instance (and
# its data) where it is in the state.
moved {
  from = google_redis_instance.main
  to   = google_redis_instance.main[0]
}

resource "google_redis_instance" "main" {
  count = local.redis_instance_exists ? 1 : 0

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
  # Memorystore for Redis Cluster / Valkey, below). Durability between
  # snapshots comes from the in-memory replica; see docs/deploy.md for what
  # that means for acknowledged messages.
  persistence_config {
    persistence_mode    = "RDB"
    rdb_snapshot_period = var.redis_rdb_snapshot_period
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = var.redis_maintenance_day
      start_time {
        hours   = local.redis_maintenance_start.hours
        minutes = local.redis_maintenance_start.minutes
        seconds = local.redis_maintenance_start.seconds
        nanos   = local.redis_maintenance_start.nanos
      }
    }
  }

  labels = local.labels

  depends_on = [
    google_project_service.enabled,
    google_service_networking_connection.psa,
  ]
}

# --- Memorystore for Redis Cluster -------------------------------------------------------

resource "google_redis_cluster" "main" {
  count = local.redis_cluster ? 1 : 0

  name   = "${var.name_prefix}-redis-cluster"
  region = var.region

  shard_count   = var.redis_shard_count
  replica_count = var.redis_replica_count
  node_type     = "REDIS_${var.redis_node_type}"

  # Every node's replicas in other zones than its primary.
  zone_distribution_config {
    mode = "MULTI_ZONE"
  }

  # Endpoints in the VPC through the service connection policy (network.tf).
  psc_configs {
    network = local.network_id
  }

  # TLS; the CA (managed_server_ca) goes to Cloud Run through Secret Manager.
  transit_encryption_mode = "TRANSIT_ENCRYPTION_MODE_SERVER_AUTHENTICATION"
  authorization_mode      = var.redis_cluster_auth_mode == "iam" ? "AUTH_MODE_IAM_AUTH" : "AUTH_MODE_DISABLED"

  deletion_protection_enabled = var.redis_deletion_protection

  redis_configs = {
    # As above: refuse writes when full rather than evict queued messages.
    "maxmemory-policy" = "noeviction"
  }

  persistence_config {
    mode = var.redis_cluster_persistence_mode

    dynamic "aof_config" {
      for_each = var.redis_cluster_persistence_mode == "AOF" ? [1] : []
      content {
        append_fsync = var.redis_aof_fsync
      }
    }

    dynamic "rdb_config" {
      for_each = var.redis_cluster_persistence_mode == "RDB" ? [1] : []
      content {
        rdb_snapshot_period = var.redis_rdb_snapshot_period
      }
    }
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = var.redis_maintenance_day
      start_time {
        hours   = local.redis_maintenance_start.hours
        minutes = local.redis_maintenance_start.minutes
        seconds = local.redis_maintenance_start.seconds
        nanos   = local.redis_maintenance_start.nanos
      }
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_network_connectivity_service_connection_policy.memorystore,
  ]
}

# --- Memorystore for Valkey ---------------------------------------------------------------

resource "google_memorystore_instance" "main" {
  count = local.redis_valkey ? 1 : 0

  instance_id    = "${var.name_prefix}-valkey"
  location       = var.region
  engine_version = var.valkey_version
  # Cluster mode: Skiff's cluster layout, sharded like Memorystore for Redis Cluster.
  mode = "CLUSTER"

  shard_count   = var.redis_shard_count
  replica_count = var.redis_replica_count
  node_type     = var.redis_node_type

  zone_distribution_config {
    mode = "MULTI_ZONE"
  }

  # Endpoints in the VPC through the service connection policy (network.tf).
  desired_auto_created_endpoints {
    network    = local.network_id
    project_id = var.project_id
  }

  transit_encryption_mode = "SERVER_AUTHENTICATION"
  authorization_mode      = var.redis_cluster_auth_mode == "iam" ? "IAM_AUTH" : "AUTH_DISABLED"

  deletion_protection_enabled = var.redis_deletion_protection

  engine_configs = {
    "maxmemory-policy" = "noeviction"
  }

  persistence_config {
    mode = var.redis_cluster_persistence_mode

    dynamic "aof_config" {
      for_each = var.redis_cluster_persistence_mode == "AOF" ? [1] : []
      content {
        # Valkey's spelling of the same two modes.
        append_fsync = var.redis_aof_fsync == "EVERYSEC" ? "EVERY_SEC" : "ALWAYS"
      }
    }

    dynamic "rdb_config" {
      for_each = var.redis_cluster_persistence_mode == "RDB" ? [1] : []
      content {
        rdb_snapshot_period = var.redis_rdb_snapshot_period
      }
    }
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = var.redis_maintenance_day
      start_time {
        hours   = local.redis_maintenance_start.hours
        minutes = local.redis_maintenance_start.minutes
        seconds = local.redis_maintenance_start.seconds
        nanos   = local.redis_maintenance_start.nanos
      }
    }
  }

  labels = local.labels

  depends_on = [
    google_project_service.enabled,
    google_network_connectivity_service_connection_policy.memorystore,
  ]
}

# --- IAM authentication (redis_cluster_auth_mode = "iam", the default) -------------------

# Skiff's identity may connect (REDIS_AUTH=iam in run.tf: each new connection
# sends the service account's access token from the metadata server as its AUTH
# password). Project-wide: the role covers every cluster of the product in the
# project.
resource "google_project_iam_member" "redis_connect" {
  count = local.redis_psc && var.redis_cluster_auth_mode == "iam" ? 1 : 0

  project = var.project_id
  role    = local.redis_valkey ? "roles/memorystore.dbConnectionUser" : "roles/redis.dbConnectionUser"
  member  = google_service_account.skiff.member
}

# --- What the service connects to --------------------------------------------------------

locals {
  # The cluster products' discovery endpoints as host:port (one each today).
  # Skiff reads the slot map from them and then connects to every node.
  redis_cluster_seeds = concat(
    flatten([for cluster in google_redis_cluster.main : [
      for endpoint in cluster.discovery_endpoints : "${endpoint.address}:${endpoint.port}"
    ]]),
    # Valkey lists its Private Service Connect connections by type; its
    # deprecated discovery_endpoints stays empty with desired_auto_created_endpoints.
    flatten([for instance in google_memorystore_instance.main : [
      for endpoint in instance.endpoints : [
        for connection in endpoint.connections : [
          for psc in connection.psc_auto_connection : "${psc.ip_address}:${psc.port}"
          if psc.connection_type == "CONNECTION_TYPE_DISCOVERY"
        ]
      ]
    ]]),
  )

  # Every CA certificate Memorystore currently lists for the backend: during a
  # certificate rotation the old and the new one are both valid, and a PEM
  # bundle may hold both. The cluster products give each chain leaf to root.
  redis_ca_certs = local.redis_single ? flatten([
    for instance in google_redis_instance.main : [for ca in instance.server_ca_certs : trimspace(ca.cert)]
    ]) : flatten([
    for ca in concat(
      flatten(google_redis_cluster.main[*].managed_server_ca),
      flatten(google_memorystore_instance.main[*].managed_server_ca),
    ) : [for chain in ca.ca_certs : [for certificate in chain.certificates : trimspace(certificate)]]
  ])
}
