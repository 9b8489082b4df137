# Cloud Storage buckets (the payload store's), each breaking exactly one
# custom policy. Never applied: fixtures for scripts/check-infra.sh.
# Some leave versioning out altogether, which CKV2_SKIFF_19 must accept.

# CKV2_SKIFF_16: object ACLs allowed next to IAM.
resource "google_storage_bucket" "fine_grained_access" {
  name                        = "bad-uniform-access"
  location                    = "US-CENTRAL1"
  uniform_bucket_level_access = false
  public_access_prevention    = "enforced"
  versioning {
    enabled = false
  }
  lifecycle_rule {
    condition {
      age = 14
    }
    action {
      type = "Delete"
    }
  }
}

# CKV2_SKIFF_16: uniform_bucket_level_access not set (off by default).
resource "google_storage_bucket" "default_access" {
  name                     = "bad-uniform-access-default"
  location                 = "US-CENTRAL1"
  public_access_prevention = "enforced"
  lifecycle_rule {
    condition {
      age = 14
    }
    action {
      type = "Delete"
    }
  }
}

# CKV2_SKIFF_17: public access left to the organization policy.
resource "google_storage_bucket" "public_access_inherited" {
  name                        = "bad-public-access"
  location                    = "US-CENTRAL1"
  uniform_bucket_level_access = true
  public_access_prevention    = "inherited"
  versioning {
    enabled = false
  }
  lifecycle_rule {
    condition {
      age = 14
    }
    action {
      type = "Delete"
    }
  }
}

# CKV2_SKIFF_17: public_access_prevention not set ("inherited" by default).
resource "google_storage_bucket" "public_access_default" {
  name                        = "bad-public-access-default"
  location                    = "US-CENTRAL1"
  uniform_bucket_level_access = true
  lifecycle_rule {
    condition {
      age = 14
    }
    action {
      type = "Delete"
    }
  }
}

# CKV2_SKIFF_18: no lifecycle rule: orphaned payloads stay forever.
resource "google_storage_bucket" "no_lifecycle" {
  name                        = "bad-lifecycle"
  location                    = "US-CENTRAL1"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = false
  }
}

# CKV2_SKIFF_18: a lifecycle rule that only moves objects to a colder class.
resource "google_storage_bucket" "lifecycle_without_delete" {
  name                        = "bad-lifecycle-class"
  location                    = "US-CENTRAL1"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }
}

# CKV2_SKIFF_18: deletes, but not by age (only old versions).
resource "google_storage_bucket" "lifecycle_delete_without_age" {
  name                        = "bad-lifecycle-age"
  location                    = "US-CENTRAL1"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  lifecycle_rule {
    condition {
      num_newer_versions = 1
    }
    action {
      type = "Delete"
    }
  }
}

# CKV2_SKIFF_19: versioning keeps every deleted payload as a noncurrent version.
resource "google_storage_bucket" "versioned" {
  name                        = "bad-versioning"
  location                    = "US-CENTRAL1"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
  lifecycle_rule {
    condition {
      age = 14
    }
    action {
      type = "Delete"
    }
  }
}
