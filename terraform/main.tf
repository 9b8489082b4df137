# Skiff on Google Cloud: a Cloud Run v2 service reaching a Memorystore for
# Redis instance (STANDARD_HA, AUTH, TLS) over a Serverless VPC Access
# connector. See docs/deploy.md for the commands.
#
#   Cloud Run (skiff) --connector, private ranges only--> VPC --private services access--> Memorystore
#
# Files: network.tf (VPC, connector, firewall, private services access),
# redis.tf, secrets.tf (AUTH string and CA certificate in Secret Manager),
# run.tf (service, its service account, invoker IAM), registry.tf.

locals {
  labels = merge({ service = var.name_prefix }, var.labels)

  # The APIs this configuration uses.
  services = toset([
    "artifactregistry.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "redis.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "vpcaccess.googleapis.com",
  ])
}

resource "google_project_service" "enabled" {
  for_each = local.services

  project = var.project_id
  service = each.value
  # Other workloads in the project may use the same APIs: never turn them off
  # on destroy.
  disable_on_destroy = false
}
