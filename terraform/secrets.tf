# The Redis AUTH string and the Memorystore server CA certificate, handed to
# Cloud Run through Secret Manager: the AUTH string as the REDIS_PASSWORD
# environment variable, the CA certificate as a file (REDIS_TLS_CA_FILE).
# Both values also live in the Terraform state: keep the state bucket private.

resource "google_secret_manager_secret" "redis_auth" {
  secret_id = "${var.name_prefix}-redis-auth"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_version" "redis_auth" {
  secret      = google_secret_manager_secret.redis_auth.id
  secret_data = google_redis_instance.main.auth_string
}

resource "google_secret_manager_secret" "redis_ca" {
  secret_id = "${var.name_prefix}-redis-ca"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_version" "redis_ca" {
  secret = google_secret_manager_secret.redis_ca.id
  # Every CA Memorystore currently lists: during a certificate rotation the
  # old and the new one are both valid, and a PEM bundle may hold both.
  secret_data = join("\n", [for ca in google_redis_instance.main.server_ca_certs : trimspace(ca.cert)])
}

# Only Skiff's own service account may read them.
resource "google_secret_manager_secret_iam_member" "redis_auth" {
  secret_id = google_secret_manager_secret.redis_auth.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.skiff.member
}

resource "google_secret_manager_secret_iam_member" "redis_ca" {
  secret_id = google_secret_manager_secret.redis_ca.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.skiff.member
}
