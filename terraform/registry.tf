# Where docs/deploy.md pushes the image.
resource "google_artifact_registry_repository" "skiff" {
  #checkov:skip=CKV_GCP_84:Images hold no secrets (built from this repository, configuration comes from env and Secret Manager); Google-managed encryption at rest suffices, and a CMEK key adds a KMS dependency that locks Cloud Run out of its images if the key is disabled.
  location      = var.region
  repository_id = var.artifact_repository_id
  description   = "Skiff container images"
  format        = "DOCKER"
  labels        = local.labels

  docker_config {
    # A tag, once pushed, always names the same image: what a revision says it
    # runs is what it runs.
    immutable_tags = true
  }

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "7776000s" # 90 days
    }
  }

  depends_on = [google_project_service.enabled]
}
