output "service_url" {
  description = "HTTPS URL of the Skiff service."
  value       = google_cloud_run_v2_service.skiff.uri
}

output "service_account_email" {
  description = "Identity the service runs as."
  value       = google_service_account.skiff.email
}

output "redis_backend" {
  description = "The Memorystore product the service uses (var.redis_backend)."
  value       = var.redis_backend
}

output "redis_url" {
  description = "Where the service connects, without credentials: rediss://host:port for Memorystore for Redis (AUTH string in the <name_prefix>-redis-auth secret), rediss+cluster://host:port for the cluster products (their discovery endpoint). Private addresses, reachable only from the VPC; TLS with the CA in the <name_prefix>-redis-ca secret."
  value = (local.redis_single
    ? "rediss://${google_redis_instance.main[0].host}:${google_redis_instance.main[0].port}"
    : "rediss+cluster://${join(",", local.redis_cluster_seeds)}"
  )
}

output "redis_host" {
  description = "Private IP of the Memorystore for Redis instance, or of the cluster's discovery endpoint (reachable only from the VPC)."
  value       = local.redis_single ? google_redis_instance.main[0].host : try(split(":", local.redis_cluster_seeds[0])[0], null)
}

output "redis_port" {
  description = "Port of the same: the instance's TLS port, or the discovery endpoint's."
  value       = local.redis_single ? google_redis_instance.main[0].port : try(tonumber(split(":", local.redis_cluster_seeds[0])[1]), null)
}

output "memorystore_psc_subnet" {
  description = "CIDR of the subnet holding the cluster's Private Service Connect endpoints (null with Memorystore for Redis)."
  value       = local.redis_psc ? var.psc_subnet_cidr : null
}

output "payload_bucket" {
  description = "Name of the payload store's Cloud Storage bucket (PAYLOADS_STORE=gs://<this>/); null without payload_store_enabled."
  value       = one(google_storage_bucket.payloads[*].name)
}

output "artifact_registry_repository" {
  description = "Docker repository to push images to: <this>/skiff:<tag>."
  value       = "${google_artifact_registry_repository.skiff.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.skiff.repository_id}"
}

output "vpc_connector" {
  description = "The Serverless VPC Access connector Cloud Run uses."
  value       = google_vpc_access_connector.connector.id
}

output "trace_console_url" {
  description = "Cloud Trace's Trace Explorer for the project, where Skiff's spans land (docs/operations.md, \"Traces\"); null without tracing_enabled."
  value       = var.tracing_enabled ? "https://console.cloud.google.com/traces/list?project=${var.project_id}" : null
}
