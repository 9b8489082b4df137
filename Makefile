# Skiff: `make up` starts the local cluster, `make test` runs everything CI runs.
REPLICAS ?= 3

.PHONY: build release run test up down status logs check-infra chaos chaos-ci chaos-cluster-ci soak soak-ci bench bench-smoke loadtest console-test clean

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

# The local cluster: Redis, $(REPLICAS) replicas on 8081.., HAProxy on 8080. `make up REDIS_MODE=cluster`:
# a Redis Cluster (3 primaries, 3 replicas) instead of the single Redis (see scripts/cluster.sh).
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

# Fault injection against its own cluster (issue 7): CHAOS_SECONDS (300), CHAOS_SEED to replay;
# `make chaos REDIS_MODE=cluster` runs it on a Redis Cluster (chaos/rediscluster.py).
chaos:
	chaos/run.sh

# The bounded run CI makes after `make test`: every fault kind at least once, about 2.5 minutes;
# a failure prints the seed and the command that replays it.
chaos-ci:
	CHAOS_SECONDS=120 chaos/run.sh

# The bounded run on a Redis Cluster CI makes after chaos-ci (issue 18): a short strict phase, then a
# primary killed and 1000 slots migrated under load, each with and without REDIS_WAIT_REPLICAS=1
# (about 3 min).
chaos-cluster-ci:
	REDIS_MODE=cluster CHAOS_SECONDS=150 chaos/run.sh

# Mixed load for SOAK_SECONDS (1800) against its own cluster, a replica restarted every few
# minutes; fails if RSS, descriptors, Redis memory or p99 keep growing after warm-up, or if the
# checker finds a message lost or duplicated (RELIABILITY.md, "Soak").
soak:
	chaos/run.sh --soak

# The 3-minute soak CI runs after chaos-ci, sampling every 15 s.
soak-ci:
	SOAK_SECONDS=180 SOAK_SAMPLE_SECONDS=15 chaos/run.sh --soak

# Skiff against webdis, redis-benchmark and Redis on this machine; writes BENCHMARKS.md.
bench:
	bench/run.sh

# libFuzzer on the fast path's request-head parser, its chunked framing and the JSON validator,
# FUZZ_SECONDS (60) each over Fuzz/corpus; `scripts/fuzz.sh --merge` keeps what found new code.
.PHONY: fuzz
fuzz:
	scripts/fuzz.sh

# Locust (bench/locust/locustfile.py) headless against the running `make up` cluster for
# LOADTEST_SECONDS (60); CSV and HTML report in bench/out/locust.
loadtest:
	scripts/loadtest.sh

# The console's browser tests (Playwright on Debian's Chromium) against a debug replica in memory.
console-test: build
	scripts/console-test.sh .build/debug/skiff

# Every benchmark scenario very briefly, to prove the harness works.
bench-smoke:
	bench/run.sh --smoke

clean:
	rm -rf .build .cluster
