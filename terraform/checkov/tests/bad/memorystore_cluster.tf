# Memorystore for Redis Cluster (google_redis_cluster) and Memorystore for
# Valkey (google_memorystore_instance), each breaking exactly one custom policy.
# Never applied: fixtures for scripts/check-infra.sh.

# CKV2_SKIFF_10: plaintext Redis protocol.
resource "google_redis_cluster" "cluster_no_tls" {
  name                        = "bad-cluster-tls"
  shard_count                 = 3
  replica_count               = 1
  node_type                   = "REDIS_STANDARD_SMALL"
  transit_encryption_mode     = "TRANSIT_ENCRYPTION_MODE_DISABLED"
  authorization_mode          = "AUTH_MODE_IAM_AUTH"
  deletion_protection_enabled = true
  zone_distribution_config {
    mode = "MULTI_ZONE"
  }
  psc_configs {
    network = "projects/p/global/networks/n"
  }
  redis_configs = {
    "maxmemory-policy" = "noeviction"
  }
  persistence_config {
    mode = "AOF"
    aof_config {
      append_fsync = "EVERYSEC"
    }
  }
}

# CKV2_SKIFF_10: plaintext Valkey protocol.
resource "google_memorystore_instance" "valkey_no_tls" {
  instance_id                 = "bad-valkey-tls"
  location                    = "us-central1"
  mode                        = "CLUSTER"
  shard_count                 = 3
  replica_count               = 1
  node_type                   = "STANDARD_SMALL"
  transit_encryption_mode     = "TRANSIT_ENCRYPTION_DISABLED"
  authorization_mode          = "IAM_AUTH"
  deletion_protection_enabled = true
  zone_distribution_config {
    mode = "MULTI_ZONE"
  }
  desired_auto_created_endpoints {
    network    = "projects/p/global/networks/n"
    project_id = "p"
  }
  engine_configs = {
    "maxmemory-policy" = "noeviction"
  }
  persistence_config {
    mode = "AOF"
    aof_config {
      append_fsync = "EVERY_SEC"
    }
  }
}

# CKV2_SKIFF_11: deletion protection off.
resource "google_redis_cluster" "cluster_unprotected" {
  name                        = "bad-cluster-deletion"
  shard_count                 = 3
  replica_count               = 1
  node_type                   = "REDIS_STANDARD_SMALL"
  transit_encryption_mode     = "TRANSIT_ENCRYPTION_MODE_SERVER_AUTHENTICATION"
  authorization_mode          = "AUTH_MODE_IAM_AUTH"
  deletion_protection_enabled = false
  zone_distribution_config {
    mode = "MULTI_ZONE"
  }
  psc_configs {
    network = "projects/p/global/networks/n"
  }
  redis_configs = {
    "maxmemory-policy" = "noeviction"
  }
  persistence_config {
    mode = "AOF"
    aof_config {
      append_fsync = "EVERYSEC"
    }
  }
}

# CKV2_SKIFF_11: deletion protection not set (off by default).
resource "google_memorystore_instance" "valkey_unprotected" {
  instance_id             = "bad-valkey-deletion"
  location                = "us-central1"
  mode                    = "CLUSTER"
  shard_count             = 3
  replica_count           = 1
  node_type               = "STANDARD_SMALL"
  transit_encryption_mode = "SERVER_AUTHENTICATION"
  authorization_mode      = "IAM_AUTH"
  zone_distribution_config {
    mode = "MULTI_ZONE"
  }
  desired_auto_created_endpoints {
    network    = "projects/p/global/networks/n"
    project_id = "p"
  }
  engine_configs = {
    "maxmemory-policy" = "noeviction"
  }
  persistence_config {
    mode = "AOF"
    aof_config {
      append_fsync = "EVERY_SEC"
    }
  }
}

# CKV2_SKIFF_12: no replica: a node failure loses its shard's queues.
resource "google_redis_cluster" "cluster_no_replica" {
  name                        = "bad-cluster-replicas"
  shard_count                 = 3
  replica_count               = 0
  node_type                   = "REDIS_STANDARD_SMALL"
  transit_encryption_mode     = "TRANSIT_ENCRYPTION_MODE_SERVER_AUTHENTICATION"
  authorization_mode          = "AUTH_MODE_IAM_AUTH"
  deletion_protection_enabled = true
  zone_distribution_config {
    mode = "MULTI_ZONE"
  }
  psc_configs {
    network = "projects/p/global/networks/n"
  }
  redis_configs = {
    "maxmemory-policy" = "noeviction"
  }
  persistence_config {
    mode = "AOF"
    aof_config {
      append_fsync = "EVERYSEC"
    }
  }
}

# CKV2_SKIFF_12: every node in one zone.
resource "google_memorystore_instance" "valkey_single_zone" {
  instance_id                 = "bad-valkey-zone"
  location                    = "us-central1"
  mode                        = "CLUSTER"
  shard_count                 = 3
  replica_count               = 1
  node_type                   = "STANDARD_SMALL"
  transit_encryption_mode     = "SERVER_AUTHENTICATION"
  authorization_mode          = "IAM_AUTH"
  deletion_protection_enabled = true
  zone_distribution_config {
    mode = "SINGLE_ZONE"
  }
  desired_auto_created_endpoints {
    network    = "projects/p/global/networks/n"
    project_id = "p"
  }
  engine_configs = {
    "maxmemory-policy" = "noeviction"
  }
  persistence_config {
    mode = "AOF"
    aof_config {
      append_fsync = "EVERY_SEC"
    }
  }
}

# CKV2_SKIFF_13: no client authentication.
resource "google_redis_cluster" "cluster_no_auth" {
  name                        = "bad-cluster-auth"
  shard_count                 = 3
  replica_count               = 1
  node_type                   = "REDIS_STANDARD_SMALL"
  transit_encryption_mode     = "TRANSIT_ENCRYPTION_MODE_SERVER_AUTHENTICATION"
  authorization_mode          = "AUTH_MODE_DISABLED"
  deletion_protection_enabled = true
  zone_distribution_config {
    mode = "MULTI_ZONE"
  }
  psc_configs {
    network = "projects/p/global/networks/n"
  }
  redis_configs = {
    "maxmemory-policy" = "noeviction"
  }
  persistence_config {
    mode = "AOF"
    aof_config {
      append_fsync = "EVERYSEC"
    }
  }
}

# CKV2_SKIFF_13: no client authentication.
resource "google_memorystore_instance" "valkey_no_auth" {
  instance_id                 = "bad-valkey-auth"
  location                    = "us-central1"
  mode                        = "CLUSTER"
  shard_count                 = 3
  replica_count               = 1
  node_type                   = "STANDARD_SMALL"
  transit_encryption_mode     = "SERVER_AUTHENTICATION"
  authorization_mode          = "AUTH_DISABLED"
  deletion_protection_enabled = true
  zone_distribution_config {
    mode = "MULTI_ZONE"
  }
  desired_auto_created_endpoints {
    network    = "projects/p/global/networks/n"
    project_id = "p"
  }
  engine_configs = {
    "maxmemory-policy" = "noeviction"
  }
  persistence_config {
    mode = "AOF"
    aof_config {
      append_fsync = "EVERY_SEC"
    }
  }
}

# CKV2_SKIFF_14: persistence off.
resource "google_redis_cluster" "cluster_no_persistence" {
  name                        = "bad-cluster-persistence"
  shard_count                 = 3
  replica_count               = 1
  node_type                   = "REDIS_STANDARD_SMALL"
  transit_encryption_mode     = "TRANSIT_ENCRYPTION_MODE_SERVER_AUTHENTICATION"
  authorization_mode          = "AUTH_MODE_IAM_AUTH"
  deletion_protection_enabled = true
  zone_distribution_config {
    mode = "MULTI_ZONE"
  }
  psc_configs {
    network = "projects/p/global/networks/n"
  }
  redis_configs = {
    "maxmemory-policy" = "noeviction"
  }
  persistence_config {
    mode = "DISABLED"
  }
}

# CKV2_SKIFF_14: no persistence_config (off by default).
resource "google_memorystore_instance" "valkey_no_persistence" {
  instance_id                 = "bad-valkey-persistence"
  location                    = "us-central1"
  mode                        = "CLUSTER"
  shard_count                 = 3
  replica_count               = 1
  node_type                   = "STANDARD_SMALL"
  transit_encryption_mode     = "SERVER_AUTHENTICATION"
  authorization_mode          = "IAM_AUTH"
  deletion_protection_enabled = true
  zone_distribution_config {
    mode = "MULTI_ZONE"
  }
  desired_auto_created_endpoints {
    network    = "projects/p/global/networks/n"
    project_id = "p"
  }
  engine_configs = {
    "maxmemory-policy" = "noeviction"
  }
}

# CKV2_SKIFF_15: no maxmemory-policy: Memorystore's default evicts keys.
resource "google_redis_cluster" "cluster_default_eviction" {
  name                        = "bad-cluster-eviction"
  shard_count                 = 3
  replica_count               = 1
  node_type                   = "REDIS_STANDARD_SMALL"
  transit_encryption_mode     = "TRANSIT_ENCRYPTION_MODE_SERVER_AUTHENTICATION"
  authorization_mode          = "AUTH_MODE_IAM_AUTH"
  deletion_protection_enabled = true
  zone_distribution_config {
    mode = "MULTI_ZONE"
  }
  psc_configs {
    network = "projects/p/global/networks/n"
  }
  persistence_config {
    mode = "AOF"
    aof_config {
      append_fsync = "EVERYSEC"
    }
  }
}

# CKV2_SKIFF_15: evicts keys (queued messages) when memory is full.
resource "google_memorystore_instance" "valkey_evicting" {
  instance_id                 = "bad-valkey-eviction"
  location                    = "us-central1"
  mode                        = "CLUSTER"
  shard_count                 = 3
  replica_count               = 1
  node_type                   = "STANDARD_SMALL"
  transit_encryption_mode     = "SERVER_AUTHENTICATION"
  authorization_mode          = "IAM_AUTH"
  deletion_protection_enabled = true
  zone_distribution_config {
    mode = "MULTI_ZONE"
  }
  desired_auto_created_endpoints {
    network    = "projects/p/global/networks/n"
    project_id = "p"
  }
  engine_configs = {
    "maxmemory-policy" = "volatile-lru"
  }
  persistence_config {
    mode = "AOF"
    aof_config {
      append_fsync = "EVERY_SEC"
    }
  }
}
