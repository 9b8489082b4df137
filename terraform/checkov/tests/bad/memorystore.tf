# Memorystore instances, each breaking exactly one custom policy.
# Never applied: fixtures for scripts/check-infra.sh.

# CKV2_SKIFF_5: BASIC tier, no replica.
resource "google_redis_instance" "basic_tier" {
  name                    = "bad-tier"
  tier                    = "BASIC"
  memory_size_gb          = 1
  connect_mode            = "PRIVATE_SERVICE_ACCESS"
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"
  redis_configs = {
    "maxmemory-policy" = "noeviction"
  }
  persistence_config {
    persistence_mode    = "RDB"
    rdb_snapshot_period = "ONE_HOUR"
  }
}

# CKV2_SKIFF_6: no persistence.
resource "google_redis_instance" "no_persistence" {
  name                    = "bad-persistence"
  tier                    = "STANDARD_HA"
  memory_size_gb          = 1
  connect_mode            = "PRIVATE_SERVICE_ACCESS"
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"
  redis_configs = {
    "maxmemory-policy" = "noeviction"
  }
}

# CKV2_SKIFF_7: direct peering (the provider's default connect_mode).
resource "google_redis_instance" "direct_peering" {
  name                    = "bad-peering"
  tier                    = "STANDARD_HA"
  memory_size_gb          = 1
  connect_mode            = "DIRECT_PEERING"
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"
  redis_configs = {
    "maxmemory-policy" = "noeviction"
  }
  persistence_config {
    persistence_mode    = "RDB"
    rdb_snapshot_period = "ONE_HOUR"
  }
}

# CKV2_SKIFF_8: no AUTH.
resource "google_redis_instance" "no_auth" {
  name                    = "bad-auth"
  tier                    = "STANDARD_HA"
  memory_size_gb          = 1
  connect_mode            = "PRIVATE_SERVICE_ACCESS"
  auth_enabled            = false
  transit_encryption_mode = "SERVER_AUTHENTICATION"
  redis_configs = {
    "maxmemory-policy" = "noeviction"
  }
  persistence_config {
    persistence_mode    = "RDB"
    rdb_snapshot_period = "ONE_HOUR"
  }
}

# CKV2_SKIFF_9: plaintext Redis protocol.
resource "google_redis_instance" "no_tls" {
  name                    = "bad-tls"
  tier                    = "STANDARD_HA"
  memory_size_gb          = 1
  connect_mode            = "PRIVATE_SERVICE_ACCESS"
  auth_enabled            = true
  transit_encryption_mode = "DISABLED"
  redis_configs = {
    "maxmemory-policy" = "noeviction"
  }
  persistence_config {
    persistence_mode    = "RDB"
    rdb_snapshot_period = "ONE_HOUR"
  }
}

# CKV2_SKIFF_15: evicts keys (queued messages) when memory is full.
resource "google_redis_instance" "evicting" {
  name                    = "bad-eviction"
  tier                    = "STANDARD_HA"
  memory_size_gb          = 1
  connect_mode            = "PRIVATE_SERVICE_ACCESS"
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"
  redis_configs = {
    "maxmemory-policy" = "allkeys-lru"
  }
  persistence_config {
    persistence_mode    = "RDB"
    rdb_snapshot_period = "ONE_HOUR"
  }
}
