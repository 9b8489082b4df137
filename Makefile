# Skiff: `make up` starts the local cluster, `make test` runs everything CI runs.
REPLICAS ?= 3

.PHONY: build release run test up down status logs check-infra clean

build:
	swift build

release:
	swift build -c release --product skiff

# One self-contained in-memory replica on :8080.
run:
	swift run skiff serve

# Installs what is missing, starts throwaway Redis servers, runs every test suite.
test:
	scripts/test.sh

# The local cluster: Redis, $(REPLICAS) replicas on 8081.., HAProxy on 8080.
up:
	REPLICAS=$(REPLICAS) scripts/cluster.sh up

down:
	scripts/cluster.sh down

status:
	scripts/cluster.sh status

logs:
	scripts/cluster.sh logs

check-infra:
	scripts/check-infra.sh

clean:
	rm -rf .build .cluster
