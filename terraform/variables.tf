# --- Project and naming ---------------------------------------------------------

variable "project_id" {
  description = "GCP project to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Region of every regional resource (Cloud Run, Memorystore, the connector, Artifact Registry). Cloud Run and the connector must share it."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must look like a GCP region, e.g. us-central1 or europe-west1."
  }
}

variable "name_prefix" {
  description = "Prefix of resource names (service, Memorystore instance or cluster, network, connector, secrets)."
  type        = string
  default     = "skiff"

  validation {
    # The connector name (\"<prefix>-conn\") must stay within 25 characters.
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-16 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "labels" {
  description = "Extra labels on every resource that supports them."
  type        = map(string)
  default     = {}
}

# --- Network --------------------------------------------------------------------

variable "network_name" {
  description = "Existing VPC network to use. null creates a dedicated VPC named \"<name_prefix>-vpc\"."
  type        = string
  default     = null
}

variable "create_private_service_access" {
  description = "Create the private services access peering (an allocated range plus the servicenetworking connection) that Memorystore lives behind. Set false when the existing network already has one; then set psa_range_name and psa_range_cidr."
  type        = bool
  default     = true
}

variable "psa_range_name" {
  description = "Name of an existing allocated range (purpose VPC_PEERING) for Memorystore, used when create_private_service_access is false."
  type        = string
  default     = null

  validation {
    condition     = var.create_private_service_access || var.psa_range_name != null
    error_message = "psa_range_name is required when create_private_service_access is false."
  }
}

variable "psa_range_cidr" {
  description = "CIDR of that existing allocated range (e.g. 10.20.0.0/24), for the connector's firewall rule, used when create_private_service_access is false."
  type        = string
  default     = null

  validation {
    condition     = var.create_private_service_access || (var.psa_range_cidr != null && can(cidrhost(coalesce(var.psa_range_cidr, "invalid"), 0)))
    error_message = "psa_range_cidr must be a valid CIDR block when create_private_service_access is false."
  }
}

variable "psa_prefix_length" {
  description = "Prefix length of the private services access range created for Memorystore."
  type        = number
  default     = 24

  validation {
    condition     = var.psa_prefix_length >= 16 && var.psa_prefix_length <= 29
    error_message = "psa_prefix_length must be between 16 and 29 (Memorystore needs at least a /29)."
  }
}

variable "connector_cidr" {
  description = "Unused /28 for the Serverless VPC Access connector's own subnet."
  type        = string
  default     = "10.8.0.0/28"

  validation {
    condition     = can(cidrhost(var.connector_cidr, 0)) && endswith(var.connector_cidr, "/28")
    error_message = "connector_cidr must be a valid /28 CIDR block."
  }
}

variable "connector_machine_type" {
  description = "Machine type of the connector's instances. e2-micro is cheapest; Google recommends e2-standard-4 for high request rates (many small requests exhaust e2-micro's CPU credits)."
  type        = string
  default     = "e2-micro"

  validation {
    condition     = contains(["f1-micro", "e2-micro", "e2-standard-4"], var.connector_machine_type)
    error_message = "connector_machine_type must be f1-micro, e2-micro or e2-standard-4."
  }
}

variable "connector_min_instances" {
  description = "Minimum connector instances (at least 2)."
  type        = number
  default     = 2

  validation {
    condition     = var.connector_min_instances >= 2 && var.connector_min_instances <= 9
    error_message = "connector_min_instances must be between 2 and 9."
  }
}

variable "connector_max_instances" {
  description = "Maximum connector instances (at most 10, more than connector_min_instances). The connector never scales back down."
  type        = number
  default     = 3

  validation {
    condition     = var.connector_max_instances >= 3 && var.connector_max_instances <= 10
    error_message = "connector_max_instances must be between 3 and 10."
  }
}

variable "create_service_connection_policy" {
  description = "For the cluster products (redis_backend other than memorystore-redis): create a subnet for Memorystore's Private Service Connect endpoints (psc_subnet_cidr) and the service connection policy that lets Memorystore create them there. A VPC holds one policy per region and service class (gcp-memorystore-redis, gcp-memorystore): set false when the existing network already has it, and set psc_subnet_cidr to that policy's subnet."
  type        = bool
  default     = true
}

variable "psc_subnet_cidr" {
  description = "For the cluster products: the subnet Memorystore's Private Service Connect endpoints take their addresses from (a few per cluster). Created when create_service_connection_policy is true; otherwise the CIDR of the existing policy's subnet, for the connector's firewall rule."
  type        = string
  default     = "10.9.0.0/28"

  validation {
    condition     = can(cidrhost(var.psc_subnet_cidr, 0)) && can(regex("/([0-9]|1[0-9]|2[0-9])$", var.psc_subnet_cidr))
    error_message = "psc_subnet_cidr must be a valid CIDR block of at least a /29."
  }
}

variable "restrict_connector_egress" {
  description = "Firewall the connector so that it can reach only Memorystore (the private services access range on the Redis port, or the Private Service Connect subnet on the cluster products' ports) plus the serverless infrastructure it must answer, instead of the whole VPC."
  type        = bool
  default     = true
}

# --- Memorystore ----------------------------------------------------------------

variable "redis_backend" {
  description = "Which Memorystore product holds the queues (docs/deploy.md, \"Choosing a Redis backend\"): \"memorystore-redis\" (one primary and a replica, STANDARD_HA, AUTH + TLS; Skiff's single-Redis layout), \"memorystore-redis-cluster\" (Memorystore for Redis Cluster) or \"memorystore-valkey\" (Memorystore for Valkey in cluster mode), both sharded, reached over Private Service Connect and used through Skiff's cluster layout (rediss+cluster://). Changing it on a running deployment creates an empty new backend: data is not copied (see \"Migrating\" in docs/deploy.md)."
  type        = string
  default     = "memorystore-redis"

  validation {
    condition     = contains(["memorystore-redis", "memorystore-redis-cluster", "memorystore-valkey"], var.redis_backend)
    error_message = "redis_backend must be memorystore-redis, memorystore-redis-cluster or memorystore-valkey."
  }
}

variable "keep_memorystore_redis_instance" {
  description = "Keep the Memorystore for Redis instance (and its private services access and AUTH secret) when redis_backend names another product, so that switching does not destroy it and the messages still in it. For the drain-and-switch migration in docs/deploy.md; Cloud Run uses only the selected backend. Set false once the old instance is drained."
  type        = bool
  default     = false
}

# Memorystore for Redis (redis_backend = "memorystore-redis").

variable "redis_memory_size_gb" {
  description = "Memorystore capacity in GiB. With maxmemory-policy noeviction, writes fail (Skiff answers 5xx) when it is full: size for the largest backlog you expect, ~1 KB per message plus overhead."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_memory_size_gb >= 1 && var.redis_memory_size_gb <= 300
    error_message = "redis_memory_size_gb must be between 1 and 300."
  }
}

variable "redis_version" {
  description = "Memorystore Redis version. Skiff needs Redis 7."
  type        = string
  default     = "REDIS_7_2"

  validation {
    condition     = contains(["REDIS_7_0", "REDIS_7_2"], var.redis_version)
    error_message = "redis_version must be REDIS_7_0 or REDIS_7_2."
  }
}

# Memorystore for Redis Cluster and Memorystore for Valkey (the other two
# redis_backend values). Ignored with "memorystore-redis".

variable "redis_shard_count" {
  description = "Shards (primaries) of the cluster. Each holds a share of the 16384 hash slots; Skiff keeps a queue and its dead-letter queues in one slot, so one queue family never spans shards. Capacity is shard_count x the node type's writable memory."
  type        = number
  default     = 3

  validation {
    condition     = var.redis_shard_count >= 1 && var.redis_shard_count <= 250
    error_message = "redis_shard_count must be between 1 and 250."
  }
}

variable "redis_replica_count" {
  description = "Replicas per shard, placed in other zones, promoted when their primary fails. At least 1 (a shard without a replica loses its queues with its node); at most 2 for Memorystore for Redis Cluster, 5 for Memorystore for Valkey. Replication is asynchronous: see redis_wait_replicas."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_replica_count >= 1 && var.redis_replica_count <= (var.redis_backend == "memorystore-valkey" ? 5 : 2)
    error_message = "redis_replica_count must be at least 1, and at most 2 for memorystore-redis-cluster or 5 for memorystore-valkey."
  }
}

variable "redis_node_type" {
  description = "Node type of every node of the cluster (the REDIS_ prefix is added for Memorystore for Redis Cluster). SHARED_CORE_NANO is for trials only; STANDARD_SMALL (about 6.5 GB per node) is the smallest for production; HIGHMEM_MEDIUM and HIGHMEM_XLARGE hold more per node."
  type        = string
  default     = "STANDARD_SMALL"

  validation {
    condition     = contains(["SHARED_CORE_NANO", "STANDARD_SMALL", "HIGHMEM_MEDIUM", "HIGHMEM_XLARGE"], var.redis_node_type)
    error_message = "redis_node_type must be SHARED_CORE_NANO, STANDARD_SMALL, HIGHMEM_MEDIUM or HIGHMEM_XLARGE."
  }
}

variable "valkey_version" {
  description = "Engine version of Memorystore for Valkey. (Memorystore for Redis Cluster has no version setting: it runs Redis 7.x.)"
  type        = string
  default     = "VALKEY_8_0"

  validation {
    condition     = contains(["VALKEY_7_2", "VALKEY_8_0", "VALKEY_9_0"], var.valkey_version)
    error_message = "valkey_version must be VALKEY_7_2, VALKEY_8_0 or VALKEY_9_0."
  }
}

variable "redis_cluster_auth_mode" {
  description = "Client authentication of the cluster products. \"iam\" (default): IAM authentication; Skiff runs with REDIS_AUTH=iam and sends its service account's access token (from the metadata server, renewed before its hour ends) as the AUTH password of every new connection, and the service account gets the product's connection role. \"disabled\": no AUTH; only what can reach the Private Service Connect endpoints in the VPC can connect (the connector, firewalled to them), over TLS. See docs/deploy.md."
  type        = string
  default     = "iam"

  validation {
    condition     = contains(["disabled", "iam"], var.redis_cluster_auth_mode)
    error_message = "redis_cluster_auth_mode must be disabled or iam."
  }
}

variable "redis_cluster_persistence_mode" {
  description = "Persistence of the cluster products: \"AOF\" (default: every write is appended to a log, fsynced as redis_aof_fsync says) or \"RDB\" (snapshots every redis_rdb_snapshot_period). There is no option to turn persistence off here."
  type        = string
  default     = "AOF"

  validation {
    condition     = contains(["AOF", "RDB"], var.redis_cluster_persistence_mode)
    error_message = "redis_cluster_persistence_mode must be AOF or RDB."
  }
}

variable "redis_aof_fsync" {
  description = "With AOF persistence: \"EVERYSEC\" (fsync once a second; a node crash can lose about the last second of writes that its replica does not hold) or \"ALWAYS\" (fsync every write; slower)."
  type        = string
  default     = "EVERYSEC"

  validation {
    condition     = contains(["EVERYSEC", "ALWAYS"], var.redis_aof_fsync)
    error_message = "redis_aof_fsync must be EVERYSEC or ALWAYS."
  }
}

variable "redis_deletion_protection" {
  description = "deletion_protection_enabled of the cluster products: Memorystore refuses to delete the cluster, whatever Terraform plans. Apply false before destroying it (docs/deploy.md). Memorystore for Redis instances have no such setting."
  type        = bool
  default     = true
}

# Shared by the three products.

variable "redis_rdb_snapshot_period" {
  description = "How often Memorystore writes an RDB snapshot: the only persistence mode of Memorystore for Redis, and the cluster products' with redis_cluster_persistence_mode = \"RDB\" (see docs/deploy.md on durability)."
  type        = string
  default     = "ONE_HOUR"

  validation {
    condition     = contains(["ONE_HOUR", "SIX_HOURS", "TWELVE_HOURS", "TWENTY_FOUR_HOURS"], var.redis_rdb_snapshot_period)
    error_message = "redis_rdb_snapshot_period must be ONE_HOUR, SIX_HOURS, TWELVE_HOURS or TWENTY_FOUR_HOURS."
  }
}

variable "redis_maintenance_day" {
  description = "Day of the weekly Memorystore maintenance window (failover to the replica happens then)."
  type        = string
  default     = "SUNDAY"

  validation {
    condition     = contains(["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"], var.redis_maintenance_day)
    error_message = "redis_maintenance_day must be a weekday name in capitals, e.g. SUNDAY."
  }
}

variable "redis_maintenance_hour_utc" {
  description = "Start hour (UTC) of the weekly maintenance window."
  type        = number
  default     = 3

  validation {
    condition     = var.redis_maintenance_hour_utc >= 0 && var.redis_maintenance_hour_utc <= 23
    error_message = "redis_maintenance_hour_utc must be between 0 and 23."
  }
}

# --- Artifact Registry ------------------------------------------------------------

variable "artifact_repository_id" {
  description = "Artifact Registry Docker repository for the Skiff image."
  type        = string
  default     = "skiff"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,61}[a-z0-9]$", var.artifact_repository_id))
    error_message = "artifact_repository_id must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

# --- Cloud Run --------------------------------------------------------------------

variable "image" {
  description = "Container image to run, by tag or digest, e.g. us-central1-docker.pkg.dev/PROJECT/skiff/skiff:1a2b3c4 (see docs/deploy.md). Not \":latest\": a revision must name what it runs."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[a-f0-9]{64})$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image must be a full image reference with an explicit tag (not latest) or a sha256 digest."
  }
}

variable "ingress" {
  description = "Who may reach the service over the network. INGRESS_TRAFFIC_ALL serves the API directly from its run.app URL (access is still controlled by IAM, see allow_unauthenticated); INTERNAL_ONLY / INTERNAL_LOAD_BALANCER when it sits behind a load balancer or is used only from inside the VPC."
  type        = string
  default     = "INGRESS_TRAFFIC_ALL"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], var.ingress)
    error_message = "ingress must be INGRESS_TRAFFIC_ALL, INGRESS_TRAFFIC_INTERNAL_ONLY or INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER."
  }
}

variable "allow_unauthenticated" {
  description = "Grant roles/run.invoker to allUsers, making the queue API public. false (default): callers need an identity token of a member listed in invoker_members."
  type        = bool
  default     = false
}

variable "invoker_members" {
  description = "IAM members allowed to call the service (roles/run.invoker), e.g. [\"serviceAccount:producer@PROJECT.iam.gserviceaccount.com\", \"group:queue-users@example.com\"]."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.invoker_members : can(regex("^(user|serviceAccount|group|domain|principal|principalSet):.+$", m))])
    error_message = "Each invoker member must be prefixed with user:, serviceAccount:, group:, domain:, principal: or principalSet:. Use allow_unauthenticated for allUsers."
  }
}

variable "min_instances" {
  description = "Minimum Cloud Run instances. 0 scales to zero when idle (cold starts on the next request)."
  type        = number
  default     = 0

  validation {
    condition     = var.min_instances >= 0 && var.min_instances <= 100
    error_message = "min_instances must be between 0 and 100."
  }
}

variable "max_instances" {
  description = "Maximum Cloud Run instances. Bounds cost and the number of Redis connections (every instance keeps its own pool)."
  type        = number
  default     = 100

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 100
    error_message = "max_instances must be between 1 and 100."
  }
}

variable "concurrency" {
  description = "Maximum concurrent requests per instance. Every waiting long-poll holds one slot for up to 60 s and every open stream (WebSocket or event feed) one for its whole life, so this is also how many consumers one instance can hold before Cloud Run adds instances."
  type        = number
  default     = 80

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "concurrency must be between 1 and 1000."
  }
}

variable "request_timeout_seconds" {
  description = "Cloud Run request timeout: how long a WebSocket stream or an event feed may stay open before Cloud Run ends it (clients reconnect; whatever the stream held is released). Must stay well above the longest long-poll (60 s) so Cloud Run never cuts a GET that is about to return a message."
  type        = number
  default     = 3600

  validation {
    condition     = var.request_timeout_seconds >= 65 && var.request_timeout_seconds <= 3600
    error_message = "request_timeout_seconds must be between 65 (60 s long-poll plus margin) and 3600."
  }
}

variable "session_affinity" {
  description = "Cloud Run session affinity: a client that reconnects a stream (after the request timeout, say) goes back to the same instance when it can. Skiff does not need it for correctness (any replica serves any queue); it keeps a reconnecting stream's wake-ups local."
  type        = bool
  default     = true
}

variable "cpu" {
  description = "vCPUs of Skiff's container. Each collector sidecar (monitoring_enabled, tracing_enabled) takes half a vCPU more in the instance."
  type        = string
  default     = "1"

  validation {
    condition     = contains(["1", "2", "4", "6", "8"], var.cpu)
    error_message = "cpu must be 1, 2, 4, 6 or 8."
  }

  # The metrics collector sidecar takes half a vCPU more, and an instance has at most 8.
  validation {
    condition     = !(var.monitoring_enabled && var.cpu == "8")
    error_message = "cpu = 8 leaves no room for the metrics collector sidecar (monitoring_enabled): an instance has at most 8 vCPUs. Use 6, or monitoring_enabled = false."
  }
}

variable "memory" {
  description = "Memory per instance, e.g. 512Mi or 1Gi."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.memory))
    error_message = "memory must be a quantity in Mi or Gi, e.g. 512Mi."
  }
}

variable "cpu_idle" {
  description = "false (default): CPU stays allocated, so the work Skiff does after a response has left runs at once: deleting a delivered message once its bytes are in the socket, returning a crashed instance's claims, waking long-polls, delivering push subscriptions. true: CPU only while requests are in flight (cheaper); a delete after a response may then stall until the next request, and the message may be delivered again after its lease (never lost). Needs push_enabled = false. See docs/deploy.md."
  type        = bool
  default     = false

  validation {
    condition     = !(var.cpu_idle && var.push_enabled)
    error_message = "Push delivery runs between requests, which cpu_idle = true would starve: set push_enabled = false to use cpu_idle, or keep cpu_idle = false."
  }
}

variable "push_enabled" {
  description = "PUSH_ENABLED: the instances POST topic messages to push subscriptions' endpoints. Push runs in the background, so it needs CPU allocated outside requests (cpu_idle = false) and at least one instance up (min_instances is raised to 1 while it is on). false: push subscriptions' messages wait in their queues. See docs/deploy.md."
  type        = bool
  default     = true
}

variable "push_allowed_networks" {
  description = "PUSH_ALLOWED_NETWORKS: comma-separated CIDR ranges push URLs may resolve to besides public addresses (and reach over plain http), e.g. a VPC range of internal receivers. Empty (default): public https endpoints only."
  type        = string
  default     = ""

  validation {
    condition     = alltrue([for range in compact(split(",", replace(var.push_allowed_networks, " ", ""))) : can(cidrhost(range, 0))])
    error_message = "push_allowed_networks must be comma-separated CIDR ranges, e.g. 10.8.0.0/16,fd00::/8."
  }
}

variable "redis_wait_replicas" {
  description = "REDIS_WAIT_REPLICAS: Redis replicas that must hold a message (WAIT) before a POST answers 201. 1 (default) with the STANDARD_HA tier's replica (or a shard's first replica on the cluster products) makes an acknowledged message survive a Memorystore failover; 0 saves the WAIT round trip and accepts losing the messages of the replication lag on failover (RELIABILITY.md, fault 7). At most the replicas there are: 1 on Memorystore for Redis, redis_replica_count on the cluster products."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_wait_replicas >= 0 && var.redis_wait_replicas <= (var.redis_backend == "memorystore-redis" ? 1 : var.redis_replica_count)
    error_message = "redis_wait_replicas must be between 0 and the replicas each primary has: 1 on memorystore-redis (STANDARD_HA), redis_replica_count on the cluster products."
  }
}

variable "redis_wait_timeout_ms" {
  description = "REDIS_WAIT_TIMEOUT_MS: how long a POST waits for that replica before answering 503 (stored on the primary, outcome unknown)."
  type        = number
  default     = 1000

  validation {
    condition     = var.redis_wait_timeout_ms >= 1 && var.redis_wait_timeout_ms <= 60000
    error_message = "redis_wait_timeout_ms must be between 1 and 60000."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy the Cloud Run service. Set false before `terraform destroy`."
  type        = bool
  default     = true
}

# --- Payload store (large messages) ----------------------------------------------------

variable "payload_store_enabled" {
  description = "Keep message bodies over payload_offload_threshold_bytes in a Cloud Storage bucket (payloads.tf), Redis holding a pointer in their place: PAYLOADS_STORE=gs://<bucket>/, and messages (sent or published to topics) up to payload_max_message_bytes (32 MiB). Off by default: turning it on raises the message size limit producers and consumers must be ready for, and needs an image that reads PAYLOADS_STORE. Turning it off again strands the bodies of messages still queued with a pointer: drain first (docs/deploy.md, \"The payload bucket\")."
  type        = bool
  default     = false
}

variable "payload_signed_urls_enabled" {
  description = "With the payload store, receives may ask for payload=url: a V4 signed URL of an offloaded body, valid for the visibility timeout, instead of the bytes (docs/payloads.md). Creates a custom role of iam.serviceAccounts.signBlob alone, grants it to the service account on itself only (it signs as nothing else), and sets PAYLOADS_GCS_SIGNING_ACCOUNT. false: such receives answer 400."
  type        = bool
  default     = true
}

variable "payload_bucket_name" {
  description = "Name of the payload bucket (globally unique). null: \"<project_id>-<name_prefix>-payloads\". Changing it creates a new, empty bucket: the bodies in the old one become unreadable."
  type        = string
  default     = null

  validation {
    # No dots: a dotted name must be a domain verified to the project.
    condition     = var.payload_bucket_name == null ? true : can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.payload_bucket_name)) && !can(regex("^goog|google", var.payload_bucket_name))
    error_message = "payload_bucket_name must be 3-63 lowercase letters, digits, hyphens or underscores, start and end with a letter or digit, and neither start with \"goog\" nor contain \"google\"."
  }
}

variable "payload_bucket_location" {
  description = "Location of the payload bucket: a region (null: var.region, next to Cloud Run, so reads and writes stay in the region and cost no egress), or a dual- or multi-region such as NAM4 or EU for a copy in a second region. A CMEK key (payload_kms_key_name) must be in the same location. Changing it recreates the bucket."
  type        = string
  default     = null

  validation {
    condition     = var.payload_bucket_location == null ? true : can(regex("^[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]$", var.payload_bucket_location))
    error_message = "payload_bucket_location must be a Cloud Storage location such as us-central1, NAM4 or EU."
  }
}

variable "payload_retention_days" {
  description = "Age in days at which the bucket's lifecycle rule deletes an object, whatever became of its message: the backstop for orphans (a body whose message was never sent, or whose delete was lost). It must be longer than any message can live, or a message still queued loses its body: more than the longest retentionMs of a queue plus that of its dead-letter queue, and of each further one in a chain (dead-letter retention restarts at the move; a redrive keeps the object, which counts from the original send). Default 30 covers the longest queue settings (14 days + 14 days), and matches the replicas' own sweep (PAYLOADS_RETENTION_MS)."
  type        = number
  default     = 30

  validation {
    condition     = var.payload_retention_days >= 1 && var.payload_retention_days <= 3650 && floor(var.payload_retention_days) == var.payload_retention_days
    error_message = "payload_retention_days must be a whole number of days between 1 and 3650."
  }
}

variable "payload_kms_key_name" {
  description = "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) that encrypts the payload objects (CMEK), in the bucket's location. null (default): Google-managed encryption. The project's Cloud Storage service agent is granted cryptoKeyEncrypterDecrypter on the key; Skiff's own service account needs nothing on it. Disabling or destroying the key makes every stored body unreadable."
  type        = string
  default     = null

  validation {
    condition     = var.payload_kms_key_name == null ? true : can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.payload_kms_key_name))
    error_message = "payload_kms_key_name must be a key's full name: projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY."
  }
}

variable "payload_offload_threshold_bytes" {
  description = "PAYLOADS_OFFLOAD_THRESHOLD_BYTES: with the payload store, message bodies (sent or published) larger than this go to the bucket, smaller ones stay in Redis. 262144 (256 KiB) by default, where SQS's Extended Client offloads; at most max_message_bytes (a body kept in Redis must be one it allows)."
  type        = number
  default     = 262144

  validation {
    condition     = var.payload_offload_threshold_bytes >= 0 && var.payload_offload_threshold_bytes <= var.max_message_bytes && floor(var.payload_offload_threshold_bytes) == var.payload_offload_threshold_bytes
    error_message = "payload_offload_threshold_bytes must be a whole number of bytes between 0 and max_message_bytes, the largest body Redis keeps."
  }
}

variable "payload_max_message_bytes" {
  description = "PAYLOADS_MAX_MESSAGE_BYTES: with the payload store, the largest message body, sent or published. 33554432 (32 MiB) by default, the most Cloud Run accepts in an HTTP/1 request. A replica holds a body in memory while it sends or delivers it: size memory and concurrency for it (docs/deploy.md, \"The payload bucket\")."
  type        = number
  default     = 33554432

  validation {
    condition     = var.payload_max_message_bytes >= 1 && var.payload_max_message_bytes <= 33554432 && floor(var.payload_max_message_bytes) == var.payload_max_message_bytes
    error_message = "payload_max_message_bytes must be between 1 and 33554432 (Cloud Run's 32 MiB request limit)."
  }
}

# --- Skiff settings ------------------------------------------------------------------

variable "default_timeout_ms" {
  description = "DEFAULT_TIMEOUT: long-poll wait of GET /api/{queue} without ?timeout=, in milliseconds."
  type        = number
  default     = 10000

  validation {
    condition     = var.default_timeout_ms >= 0 && var.default_timeout_ms <= 60000
    error_message = "default_timeout_ms must be between 0 and 60000."
  }
}

variable "max_message_bytes" {
  description = "MAX_MESSAGE_BYTES: largest body Redis keeps whole. Without the payload store that is every message; with it, the most payload_offload_threshold_bytes may be, while messages may reach payload_max_message_bytes."
  type        = number
  default     = 1048576

  validation {
    # Cloud Run caps HTTP/1 request bodies at 32 MiB.
    condition     = var.max_message_bytes >= 1 && var.max_message_bytes <= 33554432
    error_message = "max_message_bytes must be between 1 and 33554432 (Cloud Run's 32 MiB request limit)."
  }
}

variable "claim_lease_ms" {
  description = "CLAIM_LEASE_MS: how long a message claimed by an instance stays invisible before another instance may recover it (after a crash)."
  type        = number
  default     = 30000

  validation {
    condition     = var.claim_lease_ms >= 1000
    error_message = "claim_lease_ms must be at least 1000."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of the service."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["trace", "debug", "info", "notice", "warning", "error", "critical"], var.log_level)
    error_message = "log_level must be one of trace, debug, info, notice, warning, error, critical."
  }
}

# --- Operations (monitoring.tf, monitoring_panels.tf, tracing.tf) -------------------

variable "monitoring_enabled" {
  description = "Collect Skiff's Prometheus metrics into Managed Service for Prometheus (a collector sidecar on every instance, scraping the loopback-only METRICS_PORT), and create the Cloud Monitoring dashboard and alert policies (docs/operations.md)."
  type        = bool
  default     = true
}

variable "metrics_sidecar_image" {
  description = "The Managed Service for Prometheus sidecar for Cloud Run. Pinned: bump it deliberately (its release notes are in GoogleCloudPlatform/run-gmp-sidecar)."
  type        = string
  default     = "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.1.1"
}

variable "metrics_scrape_interval_seconds" {
  description = "How often the sidecar scrapes /metrics. Skiff refreshes its queue gauges every few seconds; each scrape is a written sample, billed by Managed Service for Prometheus."
  type        = number
  default     = 30

  validation {
    condition     = var.metrics_scrape_interval_seconds >= 5 && var.metrics_scrape_interval_seconds <= 300
    error_message = "metrics_scrape_interval_seconds must be between 5 and 300."
  }
}

variable "alert_notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) every alert policy notifies: PagerDuty, Slack, a webhook, made outside this configuration."
  type        = list(string)
  default     = []
}

variable "alert_emails" {
  description = "Email addresses to notify: an email notification channel is created for each, in addition to alert_notification_channels."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for email in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+$", email))])
    error_message = "alert_emails must be email addresses."
  }
}

variable "alert_oldest_message_age_seconds" {
  description = "Alert when a queue's oldest ready message has waited longer than this for five minutes. 300 s by default: well past a healthy consumer's lag, well inside the default 4-day retention."
  type        = number
  default     = 300

  validation {
    condition     = var.alert_oldest_message_age_seconds >= 1
    error_message = "alert_oldest_message_age_seconds must be at least 1."
  }
}

variable "alert_dead_letter_window_minutes" {
  description = "Alert when any message was dead-lettered within this many minutes (any dead letter is worth a look; the window is how long the alert stays open after the last one)."
  type        = number
  default     = 10

  validation {
    condition     = var.alert_dead_letter_window_minutes >= 1 && var.alert_dead_letter_window_minutes <= 1440
    error_message = "alert_dead_letter_window_minutes must be between 1 and 1440."
  }
}

variable "alert_5xx_ratio" {
  description = "Alert when more than this share of Cloud Run requests answers 5xx for five minutes. 0.01 (1 %) by default."
  type        = number
  default     = 0.01

  validation {
    condition     = var.alert_5xx_ratio > 0 && var.alert_5xx_ratio < 1
    error_message = "alert_5xx_ratio must be between 0 and 1."
  }
}

variable "alert_redis_memory_ratio" {
  description = "Alert when Memorystore's memory use passes this share of its limit for five minutes (the fullest node for the cluster products). 0.8 by default: Skiff's Redis never evicts, and refuses sends (507) when full."
  type        = number
  default     = 0.8

  validation {
    condition     = var.alert_redis_memory_ratio > 0 && var.alert_redis_memory_ratio < 1
    error_message = "alert_redis_memory_ratio must be between 0 and 1."
  }
}

variable "alert_restarts" {
  description = "Alert when more than this many instances exit or fail their liveness probe within alert_restart_window_minutes. 0 by default: every crash is worth a look."
  type        = number
  default     = 0

  validation {
    condition     = var.alert_restarts >= 0
    error_message = "alert_restarts must be at least 0."
  }
}

variable "alert_restart_window_minutes" {
  description = "The window alert_restarts counts over."
  type        = number
  default     = 15

  validation {
    condition     = var.alert_restart_window_minutes >= 1 && var.alert_restart_window_minutes <= 1440
    error_message = "alert_restart_window_minutes must be between 1 and 1440."
  }
}

# Traces (tracing.tf).

variable "tracing_enabled" {
  description = "Export Skiff's OpenTelemetry traces to Cloud Trace (tracing.tf): a collector sidecar on every instance (trace_collector_image) receives them over OTLP/HTTP on the instance's loopback, and Skiff gets OTEL_EXPORTER_OTLP_ENDPOINT. Off by default: with it every request goes through Skiff's routes (the fast path is off while tracing is on), which make bench measured at 0.36x the plain POST's throughput and 0.56x the GET's with 10 % sampling (BENCHMARKS.md, \"Tracing\"). A message's traceparent is kept and handed back either way. See docs/operations.md, \"Traces\"."
  type        = bool
  default     = false
}

variable "store_trace_context" {
  description = "STORE_TRACE_CONTEXT: messages keep the traceparent/tracestate they were sent with. Set false for the first apply when upgrading from a release that cannot read such messages, then true once its instances are gone (docs/tracing.md, \"Upgrading\")."
  type        = bool
  default     = true
}

variable "trace_sample_ratio" {
  description = "OTEL_TRACES_SAMPLER_ARG of the parentbased_traceidratio sampler: the share of traces that start at Skiff (requests without a traceparent) that are recorded. A request whose caller sent a traceparent follows the caller's sampling decision instead. 0.1 by default; Cloud Trace bills per span ingested."
  type        = number
  default     = 0.1

  validation {
    condition     = var.trace_sample_ratio >= 0 && var.trace_sample_ratio <= 1
    error_message = "trace_sample_ratio must be between 0 and 1."
  }
}

variable "trace_collector_image" {
  description = "The Google-Built OpenTelemetry Collector, the trace sidecar for Cloud Run. Pinned: bump it deliberately (its release notes are in GoogleCloudPlatform/opentelemetry-operations-collector)."
  type        = string
  default     = "us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:0.156.1"
}
