# --- VPC ----------------------------------------------------------------------

resource "google_compute_network" "vpc" {
  count = var.network_name == null ? 1 : 0

  name                    = "${var.name_prefix}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.enabled]
}

data "google_compute_network" "existing" {
  count = var.network_name == null ? 0 : 1

  name = var.network_name
}

locals {
  network_id   = var.network_name == null ? google_compute_network.vpc[0].id : data.google_compute_network.existing[0].id
  network_name = var.network_name == null ? google_compute_network.vpc[0].name : data.google_compute_network.existing[0].name
}

# --- Serverless VPC Access connector -----------------------------------------------

# The connector's own /28. A named subnet (rather than the connector's
# ip_cidr_range) can carry flow logs and be addressed by firewall rules.
resource "google_compute_subnetwork" "connector" {
  name                     = "${var.name_prefix}-connector"
  region                   = var.region
  network                  = local.network_id
  ip_cidr_range            = var.connector_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_vpc_access_connector" "connector" {
  name          = "${var.name_prefix}-conn"
  region        = var.region
  machine_type  = var.connector_machine_type
  min_instances = var.connector_min_instances
  max_instances = max(var.connector_max_instances, var.connector_min_instances + 1)

  subnet {
    name = google_compute_subnetwork.connector.name
  }

  depends_on = [google_project_service.enabled]
}

# --- Private services access (Memorystore for Redis's private IP) -----------------------
# Only while a Memorystore for Redis instance exists (redis.tf): the cluster
# products are reached through Private Service Connect instead (below).

resource "google_compute_global_address" "redis" {
  count = local.redis_instance_exists && var.create_private_service_access ? 1 : 0

  name          = "${var.name_prefix}-redis-psa"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = var.psa_prefix_length
  network       = local.network_id
}

resource "google_service_networking_connection" "psa" {
  count = local.redis_instance_exists && var.create_private_service_access ? 1 : 0

  network                 = local.network_id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.redis[0].name]

  depends_on = [google_project_service.enabled]
}

locals {
  psa_range_name = var.create_private_service_access ? one(google_compute_global_address.redis[*].name) : var.psa_range_name
  psa_range_cidr = (var.create_private_service_access
    ? one([for range in google_compute_global_address.redis : "${range.address}/${range.prefix_length}"])
    : var.psa_range_cidr
  )
  # Network tag Serverless VPC Access puts on this connector's instances.
  connector_tag = "vpc-connector-${var.region}-${google_vpc_access_connector.connector.name}"
}

# --- Private Service Connect (Memorystore for Redis Cluster / for Valkey) ----------------
# Both products put their endpoints into the consumer VPC through service
# connectivity automation: a service connection policy for the product's
# service class names the subnet Memorystore may take addresses from, and
# Memorystore creates the endpoints (forwarding rules) there when the cluster
# is created. A VPC holds one policy per region and service class: with an
# existing one, set create_service_connection_policy = false.

locals {
  psc_service_class = local.redis_valkey ? "gcp-memorystore" : "gcp-memorystore-redis"
  create_psc        = local.redis_psc && var.create_service_connection_policy
}

resource "google_compute_subnetwork" "memorystore_psc" {
  count = local.create_psc ? 1 : 0

  name                     = "${var.name_prefix}-memorystore-psc"
  description              = "Skiff: Private Service Connect endpoints of the Memorystore cluster."
  region                   = var.region
  network                  = local.network_id
  ip_cidr_range            = var.psc_subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_network_connectivity_service_connection_policy" "memorystore" {
  count = local.create_psc ? 1 : 0

  name          = "${var.name_prefix}-${local.psc_service_class}"
  description   = "Skiff: lets Memorystore create the cluster's Private Service Connect endpoints in the ${var.name_prefix}-memorystore-psc subnet."
  location      = var.region
  service_class = local.psc_service_class
  network       = local.network_id
  labels        = local.labels

  psc_config {
    subnetworks = [google_compute_subnetwork.memorystore_psc[0].id]
  }

  depends_on = [google_project_service.enabled]
}

# --- Firewall ------------------------------------------------------------------------
# Serverless VPC Access creates the ingress rules its connector needs in the
# connector's own project (traffic from the serverless infrastructure,
# 35.199.224.0/19, and Google's health checkers). What it does not do is limit
# what the connector may reach: by default every Cloud Run instance could
# open connections to anything in the VPC. These rules allow the connector
# only Memorystore, plus the replies to the serverless infrastructure, and
# deny the rest.
#
# Memorystore for Redis: the private services access range, on the instance's
# TLS port. The cluster products: the Private Service Connect subnet, on the
# discovery port 6379 and the ports the nodes answer on, 11000-13047 (a
# cluster client reads the node addresses from the discovery endpoint, then
# connects to each node directly).

locals {
  redis_firewall_ranges = local.redis_single ? [local.psa_range_cidr] : [var.psc_subnet_cidr]
  redis_firewall_ports  = local.redis_single ? [tostring(one(google_redis_instance.main[*].port))] : ["6379", "11000-13047"]
}

resource "google_compute_firewall" "connector_to_redis" {
  count = var.restrict_connector_egress ? 1 : 0

  name        = "${var.name_prefix}-connector-to-redis"
  description = "Skiff: the VPC connector may reach Memorystore on its TLS ports."
  network     = var.network_name == null ? google_compute_network.vpc[0].id : var.network_name
  direction   = "EGRESS"
  priority    = 900

  target_tags        = [local.connector_tag]
  destination_ranges = local.redis_firewall_ranges

  allow {
    protocol = "tcp"
    ports    = local.redis_firewall_ports
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "connector_to_serverless" {
  count = var.restrict_connector_egress ? 1 : 0

  name        = "${var.name_prefix}-connector-to-serverless"
  description = "Skiff: the VPC connector must keep talking to the serverless infrastructure it forwards for."
  network     = var.network_name == null ? google_compute_network.vpc[0].id : var.network_name
  direction   = "EGRESS"
  priority    = 900

  target_tags        = [local.connector_tag]
  destination_ranges = ["35.199.224.0/19"]

  allow {
    protocol = "tcp"
    ports    = ["667"]
  }
  allow {
    protocol = "udp"
    ports    = ["665-666"]
  }
  allow {
    protocol = "icmp"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "connector_deny_other" {
  count = var.restrict_connector_egress ? 1 : 0

  name        = "${var.name_prefix}-connector-deny-other"
  description = "Skiff: the VPC connector may not reach anything else in the VPC."
  network     = var.network_name == null ? google_compute_network.vpc[0].id : var.network_name
  direction   = "EGRESS"
  # Lower priority (larger number) than the allow rules above.
  priority = 950

  target_tags        = [local.connector_tag]
  destination_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
