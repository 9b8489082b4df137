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

# --- Private services access (Memorystore's private IP) ---------------------------------

resource "google_compute_global_address" "redis" {
  count = var.create_private_service_access ? 1 : 0

  name          = "${var.name_prefix}-redis-psa"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = var.psa_prefix_length
  network       = local.network_id
}

resource "google_service_networking_connection" "psa" {
  count = var.create_private_service_access ? 1 : 0

  network                 = local.network_id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.redis[0].name]

  depends_on = [google_project_service.enabled]
}

locals {
  psa_range_name = var.create_private_service_access ? google_compute_global_address.redis[0].name : var.psa_range_name
  psa_range_cidr = (var.create_private_service_access
    ? "${google_compute_global_address.redis[0].address}/${google_compute_global_address.redis[0].prefix_length}"
    : var.psa_range_cidr
  )
  # Network tag Serverless VPC Access puts on this connector's instances.
  connector_tag = "vpc-connector-${var.region}-${google_vpc_access_connector.connector.name}"
}

# --- Firewall ------------------------------------------------------------------------
# Serverless VPC Access creates the ingress rules its connector needs in the
# connector's own project (traffic from the serverless infrastructure,
# 35.199.224.0/19, and Google's health checkers). What it does not do is limit
# what the connector may reach: by default every Cloud Run instance could
# open connections to anything in the VPC. These rules allow the connector
# only the Memorystore range on the Redis port, plus the replies to the
# serverless infrastructure, and deny the rest.

resource "google_compute_firewall" "connector_to_redis" {
  count = var.restrict_connector_egress ? 1 : 0

  name        = "${var.name_prefix}-connector-to-redis"
  description = "Skiff: the VPC connector may reach Memorystore on its TLS port."
  network     = var.network_name == null ? google_compute_network.vpc[0].id : var.network_name
  direction   = "EGRESS"
  priority    = 900

  target_tags        = [local.connector_tag]
  destination_ranges = [local.psa_range_cidr]

  allow {
    protocol = "tcp"
    ports    = [tostring(google_redis_instance.main.port)]
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
