terraform {
  # 1.9+: validation blocks in variables.tf refer to other variables.
  # 1.11 is what the project's CI has.
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.x: Cloud Run v2 deletion_protection, Redis persistence_config,
      # Artifact Registry cleanup policies; 6.43: managed_server_ca (the TLS
      # CA) of google_redis_cluster and google_memorystore_instance, and the
      # latter's desired_auto_created_endpoints. Bump the major deliberately.
      version = "~> 6.43"
    }
    time = {
      source = "hashicorp/time"
      # time_sleep: the restarts alert waits for its log-based metric (monitoring.tf).
      version = "~> 0.12"
    }
  }

  # State holds the Redis AUTH string and the connector/Redis addresses: keep
  # it in a private, versioned GCS bucket, never on a laptop or in git.
  # Configure at init time (docs/deploy.md):
  #   terraform init -backend-config="bucket=<state-bucket>" -backend-config="prefix=skiff"
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    app        = "skiff"
    managed-by = "terraform"
  }
}
