# Skiff on Google Cloud: a Cloud Run v2 service reaching Memorystore over a
# Serverless VPC Access connector. See docs/deploy.md for the commands.
#
# var.redis_backend chooses the Memorystore product (redis.tf):
#
#   Cloud Run (skiff) --connector, private ranges only--> VPC --private services access--> Memorystore for Redis (STANDARD_HA, AUTH, TLS)
#                                                             --Private Service Connect-->  Memorystore for Redis Cluster / for Valkey (TLS)
#
# Files: network.tf (VPC, connector, firewall, private services access or the
# Private Service Connect subnet and service connection policy), redis.tf,
# secrets.tf (AUTH string and CA certificate in Secret Manager), run.tf
# (service, its service account, invoker IAM), registry.tf, payloads.tf (the
# Cloud Storage bucket of the payload store, when payload_store_enabled),
# monitoring.tf and monitoring_panels.tf (metrics collection, alert
# policies, the dashboard, when monitoring_enabled), tracing.tf (traces to
# Cloud Trace, when tracing_enabled).

locals {
  labels = merge({ service = var.name_prefix }, var.labels)

  # The APIs this configuration uses: the ones every backend needs, plus
  # Private Service Connect automation for the cluster products (Memorystore
  # for Redis Cluster is served by redis.googleapis.com, Memorystore for Valkey
  # by memorystore.googleapis.com), Cloud Storage for the payload store,
  # Cloud Monitoring and Logging for monitoring.tf, and Cloud Trace for
  # tracing.tf.
  services = setunion(
    [
      "artifactregistry.googleapis.com",
      "compute.googleapis.com",
      "iam.googleapis.com",
      "redis.googleapis.com",
      "run.googleapis.com",
      "secretmanager.googleapis.com",
      "servicenetworking.googleapis.com",
      "vpcaccess.googleapis.com",
    ],
    var.redis_backend == "memorystore-redis" ? [] : [
      "networkconnectivity.googleapis.com",
      "serviceconsumermanagement.googleapis.com",
    ],
    var.redis_backend == "memorystore-valkey" ? ["memorystore.googleapis.com"] : [],
    var.payload_store_enabled ? ["storage.googleapis.com"] : [],
    local.payload_signed_urls ? ["iam.googleapis.com", "iamcredentials.googleapis.com"] : [],
    var.monitoring_enabled ? ["logging.googleapis.com", "monitoring.googleapis.com"] : [],
    var.tracing_enabled ? ["cloudtrace.googleapis.com"] : [],
  )
}

resource "google_project_service" "enabled" {
  for_each = local.services

  project = var.project_id
  service = each.value
  # Other workloads in the project may use the same APIs: never turn them off
  # on destroy.
  disable_on_destroy = false
}
