output "service_url" {
  description = "HTTPS URL of the Skiff service."
  value       = google_cloud_run_v2_service.skiff.uri
}

output "service_account_email" {
  description = "Identity the service runs as."
  value       = google_service_account.skiff.email
}

output "redis_host" {
  description = "Private IP of the Memorystore instance (reachable only from the VPC)."
  value       = google_redis_instance.main.host
}

output "redis_port" {
  description = "Memorystore port (the TLS port, since transit encryption is on)."
  value       = google_redis_instance.main.port
}

output "artifact_registry_repository" {
  description = "Docker repository to push images to: <this>/skiff:<tag>."
  value       = "${google_artifact_registry_repository.skiff.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.skiff.repository_id}"
}

output "vpc_connector" {
  description = "The Serverless VPC Access connector Cloud Run uses."
  value       = google_vpc_access_connector.connector.id
}
