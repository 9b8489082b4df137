# The payload store (var.payload_store_enabled, off by default): message bodies
# over payload_offload_threshold_bytes are kept as objects m/<message id> in
# this bucket, and Redis holds a pointer (docs/payloads.md). Skiff deletes an
# object after its message; the lifecycle rule deletes whatever is left behind
# (docs/deploy.md, "The payload bucket").

locals {
  payload_bucket_name = coalesce(var.payload_bucket_name, "${var.project_id}-${var.name_prefix}-payloads")
  payload_cmek        = var.payload_store_enabled && var.payload_kms_key_name != null
  payload_signed_urls = var.payload_store_enabled && var.payload_signed_urls_enabled
}

resource "google_storage_bucket" "payloads" {
  #checkov:skip=CKV_GCP_62:Usage logs would need a second bucket and record object names only; the one principal with object access is Skiff's service account, and Cloud Audit Logs (Data Access logs for storage.googleapis.com, enabled per project) record who read or wrote what.
  #checkov:skip=CKV_GCP_78:Versioning would keep every body Skiff deletes after its message as a noncurrent version, billed and readable: a deleted payload must be gone. Redis, not this bucket, is the record of what is queued; CKV2_SKIFF_19 requires versioning off.
  count = var.payload_store_enabled ? 1 : 0

  name     = local.payload_bucket_name
  location = upper(coalesce(var.payload_bucket_location, var.region))
  # Objects live as long as their messages: minutes to days. The colder classes
  # bill a minimum storage duration (30 days and more) for every object.
  storage_class = "STANDARD"
  labels        = local.labels

  # Access by IAM only (no object ACLs), and never to allUsers or
  # allAuthenticatedUsers, whatever a later binding says.
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  # A destroy (or payload_store_enabled = false) fails while objects remain:
  # they are the bodies of queued messages.
  force_destroy = false

  # A delete is final: no noncurrent versions, and no soft-deleted copies
  # (Cloud Storage keeps deleted objects 7 days by default, billed, for every
  # message settled).
  versioning {
    enabled = false
  }

  soft_delete_policy {
    retention_duration_seconds = 0
  }

  # The backstop for orphans: bodies whose message was never sent or whose
  # delete was lost. Must outlive every message (var.payload_retention_days).
  lifecycle_rule {
    condition {
      age = var.payload_retention_days
    }
    action {
      type = "Delete"
    }
  }

  # CMEK when payload_kms_key_name is set; Google-managed keys otherwise.
  dynamic "encryption" {
    for_each = local.payload_cmek ? [var.payload_kms_key_name] : []
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [
    google_project_service.enabled,
    # With CMEK, creating the bucket already checks that Cloud Storage may use the key.
    google_kms_crypto_key_iam_member.payloads_storage_agent,
  ]
}

# Skiff's service account may create, read, list and delete objects in this
# bucket and nowhere else: no project-level storage role.
resource "google_storage_bucket_iam_member" "payloads" {
  count = var.payload_store_enabled ? 1 : 0

  bucket = google_storage_bucket.payloads[0].name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.skiff.member
}

# payload=url receives (docs/payloads.md, "Signed URLs"): the replicas sign V4
# URLs with IAM Credentials' signBlob as their own service account, which
# needs iam.serviceAccounts.signBlob on that one account (Cloud Run holds no
# private key). A role of that one permission (roles/iam.serviceAccountTokenCreator
# would add access tokens, JWTs and ID tokens), granted on the account itself,
# not the project: it can sign as nothing else.
resource "google_project_iam_custom_role" "payload_url_signer" {
  count = local.payload_signed_urls ? 1 : 0

  project     = var.project_id
  role_id     = replace("${var.name_prefix}_payload_url_signer", "-", "_")
  title       = "Skiff payload URL signer"
  description = "signBlob as Skiff's own service account, for V4 signed URLs of offloaded message bodies."
  permissions = ["iam.serviceAccounts.signBlob"]
}

resource "google_service_account_iam_member" "payload_url_signer" {
  count = local.payload_signed_urls ? 1 : 0

  service_account_id = google_service_account.skiff.name
  role               = google_project_iam_custom_role.payload_url_signer[0].id
  member             = google_service_account.skiff.member
}

# --- CMEK (payload_kms_key_name) -------------------------------------------------------
# Cloud Storage encrypts with the key as the project's Cloud Storage service
# agent, not as the caller: the agent needs the key, Skiff does not.

data "google_storage_project_service_account" "storage_agent" {
  count = local.payload_cmek ? 1 : 0

  depends_on = [google_project_service.enabled]
}

resource "google_kms_crypto_key_iam_member" "payloads_storage_agent" {
  count = local.payload_cmek ? 1 : 0

  crypto_key_id = var.payload_kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.storage_agent[0].email_address}"
}
