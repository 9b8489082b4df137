# Cloud Run v2 services, each breaking exactly one custom policy.
# Never applied: fixtures for scripts/check-infra.sh.

locals {
  fixture_image = "us-docker.pkg.dev/cloudrun/container/hello:latest"
}

# CKV2_SKIFF_1: open to all traffic, no justification.
resource "google_cloud_run_v2_service" "ingress_all" {
  name     = "bad-ingress"
  location = "us-central1"
  ingress  = "INGRESS_TRAFFIC_ALL"

  template {
    timeout = "300s"
    scaling {
      max_instance_count = 10
    }
    vpc_access {
      connector = "projects/p/locations/us-central1/connectors/c"
      egress    = "PRIVATE_RANGES_ONLY"
    }
    containers {
      image = local.fixture_image
    }
  }
}

# CKV2_SKIFF_2: no VPC access at all (cannot reach a private Memorystore).
resource "google_cloud_run_v2_service" "no_vpc_egress" {
  name     = "bad-egress"
  location = "us-central1"
  ingress  = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  template {
    timeout = "300s"
    scaling {
      max_instance_count = 10
    }
    containers {
      image = local.fixture_image
    }
  }
}

# CKV2_SKIFF_3: a 60 s request timeout cuts a 60 s long-poll.
resource "google_cloud_run_v2_service" "short_timeout" {
  name     = "bad-timeout"
  location = "us-central1"
  ingress  = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  template {
    timeout = "60s"
    scaling {
      max_instance_count = 10
    }
    vpc_access {
      connector = "projects/p/locations/us-central1/connectors/c"
      egress    = "PRIVATE_RANGES_ONLY"
    }
    containers {
      image = local.fixture_image
    }
  }
}

# CKV2_SKIFF_4: unbounded scaling (no max_instance_count).
resource "google_cloud_run_v2_service" "unbounded" {
  name     = "bad-unbounded"
  location = "us-central1"
  ingress  = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  template {
    timeout = "300s"
    vpc_access {
      connector = "projects/p/locations/us-central1/connectors/c"
      egress    = "PRIVATE_RANGES_ONLY"
    }
    containers {
      image = local.fixture_image
    }
  }
}

# CKV2_SKIFF_4: bounded, but far above 100.
resource "google_cloud_run_v2_service" "too_many" {
  name     = "bad-too-many"
  location = "us-central1"
  ingress  = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  template {
    timeout = "300s"
    scaling {
      max_instance_count = 1000
    }
    vpc_access {
      connector = "projects/p/locations/us-central1/connectors/c"
      egress    = "PRIVATE_RANGES_ONLY"
    }
    containers {
      image = local.fixture_image
    }
  }
}
