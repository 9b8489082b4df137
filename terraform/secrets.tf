# The Redis AUTH string and the Memorystore server CA certificate, handed to
# Cloud Run through Secret Manager: the AUTH string as the REDIS_PASSWORD
# environment variable, the CA certificate as a file (REDIS_TLS_CA_FILE).
# Both values also live in the Terraform state: keep the state bucket private.
#
# The AUTH string exists only with Memorystore for Redis (the cluster products
# have none, redis.tf); the CA certificates come from whichever backend is
# selected (local.redis_ca_certs).

# Were single resources before redis_backend existed.
moved {
  from = google_secret_manager_secret.redis_auth
  to   = google_secret_manager_secret.redis_auth[0]
}

moved {
  from = google_secret_manager_secret_version.redis_auth
  to   = google_secret_manager_secret_version.redis_auth[0]
}

moved {
  from = google_secret_manager_secret_iam_member.redis_auth
  to   = google_secret_manager_secret_iam_member.redis_auth[0]
}

resource "google_secret_manager_secret" "redis_auth" {
  count = local.redis_instance_exists ? 1 : 0

  secret_id = "${var.name_prefix}-redis-auth"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_version" "redis_auth" {
  count = local.redis_instance_exists ? 1 : 0

  secret      = google_secret_manager_secret.redis_auth[0].id
  secret_data = google_redis_instance.main[0].auth_string
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
  # Every CA certificate Memorystore currently lists for the selected backend
  # (redis.tf): a new one rolls out as a new version, and a new revision.
  secret_data = join("\n", local.redis_ca_certs)
}

# Only Skiff's own service account may read them.
resource "google_secret_manager_secret_iam_member" "redis_auth" {
  count = local.redis_instance_exists ? 1 : 0

  secret_id = google_secret_manager_secret.redis_auth[0].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.skiff.member
}

resource "google_secret_manager_secret_iam_member" "redis_ca" {
  secret_id = google_secret_manager_secret.redis_ca.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.skiff.member
}
