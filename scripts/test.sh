#!/usr/bin/env bash
# `make test`: installs what the tests need, starts throwaway Redis servers on free loopback
# ports (plain, password-protected, TLS, and a Redis Cluster of 3 primaries and 3 replicas) and a
# Cloud Storage emulator, runs every Swift test against them, runs the offline
# infrastructure checks, then stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

ensure_packages() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    pkg-config --exists hiredis 2>/dev/null || missing+=(libhiredis-dev)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    command -v curl >/dev/null || missing+=(curl)
    command -v pip >/dev/null || missing+=(python3-pip)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# A base port P with P..P+5 and their cluster-bus ports P+10000.. all free (a Redis Cluster of 6).
free_cluster_base() {
    python3 - <<'PY'
import socket, random
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    base = random.randrange(17000, 21000)
    if all(free(p) and free(p + 10000) for p in range(base, base + 6)):
        print(base)
        break
else:
    raise SystemExit("no free port range for the Redis Cluster")
PY
}

WORK=$(mktemp -d /tmp/skiff-test.XXXXXX)
PIDS=()
CLUSTER_UP=0
cleanup() {
    if [ "$CLUSTER_UP" = 1 ]; then
        echo "== cluster logs (last lines)"; scripts/cluster.sh logs 2>&1 | tail -40 || true
        scripts/cluster.sh down || true
    fi
    if [ -n "${REDIS_CLUSTER_BASE:-}" ]; then
        scripts/redis-cluster.sh stop --base-port "$REDIS_CLUSTER_BASE" --dir "$WORK/redis-cluster" >/dev/null 2>&1 || true
    fi
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

start_redis() { # name port extra-args...
    local name=$1 port=$2
    shift 2
    mkdir -p "$WORK/$name"
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$WORK/$name" \
        --logfile "$WORK/$name/redis.log" "$@" &
    PIDS+=($!)
}

wait_redis() { # port [redis-cli args]
    local port=$1
    shift
    for _ in $(seq 1 100); do
        if redis-cli -h 127.0.0.1 -p "$port" "$@" ping 2>/dev/null | grep -q PONG; then return 0; fi
        sleep 0.05
    done
    echo "redis on port $port did not start" >&2
    exit 1
}

make_tls_material() {
    local dir=$WORK/tls
    mkdir -p "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Skiff Test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
        -extfile "$dir/san.ext" -out "$dir/server.crt" 2>/dev/null
}

ensure_packages

log "starting throwaway Redis servers"
PLAIN_PORT=$(free_port)
PASSWORD_PORT=$(free_port)
TLS_PORT=$(free_port)
start_redis plain "$PLAIN_PORT"
start_redis password "$PASSWORD_PORT" --requirepass "skiff-test-password"
make_tls_material
start_redis tls 0 --tls-port "$TLS_PORT" --tls-cert-file "$WORK/tls/server.crt" --tls-key-file "$WORK/tls/server.key" \
    --tls-ca-cert-file "$WORK/tls/ca.crt" --tls-auth-clients no
wait_redis "$PLAIN_PORT"
wait_redis "$PASSWORD_PORT" -a skiff-test-password --no-auth-warning
wait_redis "$TLS_PORT" --tls --cacert "$WORK/tls/ca.crt"

export SKIFF_TEST_REDIS_URL="redis://127.0.0.1:$PLAIN_PORT"
export SKIFF_TEST_REDIS_PASSWORD_URL="redis://:skiff-test-password@127.0.0.1:$PASSWORD_PORT"
export SKIFF_TEST_REDIS_TLS_URL="rediss://127.0.0.1:$TLS_PORT"
export SKIFF_TEST_REDIS_TLS_CA_FILE="$WORK/tls/ca.crt"

log "starting a Cloud Storage emulator (gcp-storage-emulator, in memory) for the payload store tests"
if ! command -v gcp-storage-emulator >/dev/null; then
    # Debian 12's system Python refuses a global pip install without --break-system-packages.
    pip install --quiet gcp-storage-emulator 2>/dev/null || pip install --quiet --break-system-packages gcp-storage-emulator
fi
GCS_PORT=$(free_port)
mkdir -p "$WORK/gcs"
gcp-storage-emulator start --host=127.0.0.1 --port="$GCS_PORT" --in-memory --default-bucket=skiff-test \
    >"$WORK/gcs/emulator.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$GCS_PORT/storage/v1/b/skiff-test/o" 2>/dev/null; then break; fi
    sleep 0.05
done
curl -fsS -o /dev/null "http://127.0.0.1:$GCS_PORT/storage/v1/b/skiff-test/o" || {
    echo "the Cloud Storage emulator on port $GCS_PORT did not start" >&2
    cat "$WORK/gcs/emulator.log" >&2
    exit 1
}
export SKIFF_TEST_GCS_URL="http://127.0.0.1:$GCS_PORT" SKIFF_TEST_GCS_BUCKET=skiff-test

log "starting a throwaway Redis Cluster (3 primaries, 3 replicas, scripts/redis-cluster.sh)"
REDIS_CLUSTER_BASE=$(free_cluster_base)
scripts/redis-cluster.sh start --base-port "$REDIS_CLUSTER_BASE" --dir "$WORK/redis-cluster"
SKIFF_TEST_REDIS_CLUSTER_URL=$(scripts/redis-cluster.sh url --base-port "$REDIS_CLUSTER_BASE" --dir "$WORK/redis-cluster")
export SKIFF_TEST_REDIS_CLUSTER_URL SKIFF_TEST_REDIS_CLUSTER_DIR="$WORK/redis-cluster"

log "format: swift format lint --strict (.swift-format; fix with: swift format format -i -r Sources Tests Package.swift)"
swift format lint --strict -r Sources Tests Package.swift

log "building"
swift build --build-tests

# At most 6 tests at once: with all 300 started together, the first seconds starve two cores and
# tests with deadlines or leases (the fence, delays, the cluster client's first map read) failed,
# and at 12 a 16 MiB message's Redis commands still passed their 5 s deadline now and then.
PARALLEL=(--experimental-maximum-parallelization-width 6)

log "unit, contract and HTTP tests (memory and Redis)"
SKIFF_TEST_BACKENDS=memory,redis swift test --skip-build --skip SkiffClusterTests "${PARALLEL[@]}"

log "the queue and HTTP suites again on the Redis Cluster backend"
SKIFF_TEST_BACKENDS=redisCluster swift test --skip-build --filter 'SkiffQueueTests|SkiffAPITests' "${PARALLEL[@]}"

log "Redis Cluster failover under the client and the subscriber (a primary SIGKILLed, its replica promoted)"
# One at a time (--no-parallel): each kills a primary of the same small cluster, and two kills on
# one shard at once leave the second with no live replica to promote.
SKIFF_TEST_REDIS_CLUSTER_FAULTS=1 swift test --skip-build --no-parallel --filter 'aKilledPrimaryIsReplacedByItsReplicaAndTheClientFollows|theSubscriberFollowsItsChannelsWhenTheirPrimaryDies|aWaiterIsWokenAfterItsQueuesPrimaryFailedOver'

log "fuzzing the fast path's request heads and chunked bodies and the JSON validator (libFuzzer, scripts/fuzz.sh)"
FUZZ_SECONDS=${FUZZ_SECONDS:-20} scripts/fuzz.sh

log "cluster suite: Redis (AOF, fsync always) + 3 release replicas + HAProxy, via scripts/cluster.sh"
swift build -c release --product skiff
# Its own ports and state directory, so a cluster from `make up` is never touched.
export CLUSTER_STATE_DIR="$WORK/cluster" CLUSTER_MODE=native
PROXY_PORT=$(free_port)
REDIS_PORT_HOST=$(free_port)
PROXY_STATS_PORT=$(free_port)
export REPLICAS=3 PROXY_PORT REPLICA_BASE_PORT=28080 REDIS_PORT_HOST PROXY_STATS_PORT
export REDIS_APPENDFSYNC=always CLAIM_LEASE_MS=3000 SKIFF_BIN="$PWD/.build/release/skiff"
# Redis fsyncs every write here, and this machine's disk has held single fsyncs for over a second
# (Redis's latency monitor, aof-fsync-always: 1 131 ms): longer than the 800 ms command deadline,
# which then answers 503. The suite proves delivery guarantees, not latency, so its deadline is longer.
export REDIS_COMMAND_TIMEOUT_MS=5000
# With Prometheus (installed with apt if missing) on a port of its own: checked after Locust.
PROMETHEUS_PORT=$(free_port)
export MONITORING=on PROMETHEUS_PORT
CLUSTER_UP=1
scripts/cluster.sh up
export SKIFF_CLUSTER_PROXY_PORT=$PROXY_PORT SKIFF_CLUSTER_REPLICA_PORTS=28081,28082,28083
export SKIFF_CLUSTER_CLAIM_LEASE_MS=$CLAIM_LEASE_MS SKIFF_CLUSTER_SCRIPT="$PWD/scripts/cluster.sh"
export SKIFF_CLUSTER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT_HOST"
swift test --skip-build --filter SkiffClusterTests
log "Locust load test, briefly, through the same cluster's proxy (scripts/loadtest.sh)"
LOCUST_HOST="http://127.0.0.1:$PROXY_PORT" LOADTEST_SECONDS=10 LOADTEST_USERS=12 LOADTEST_OUT="$WORK/locust" scripts/loadtest.sh
log "the cluster's Prometheus: every replica scraped, the Locust traffic seen, the alert rules loaded; down stops it"
check_prometheus() {
    python3 - "http://127.0.0.1:$PROMETHEUS_PORT" "$REPLICAS" <<'EOF'
import json, sys, time, urllib.parse, urllib.request
base, replicas = sys.argv[1], int(sys.argv[2])
def get(path, **query):
    with urllib.request.urlopen(f"{base}{path}?{urllib.parse.urlencode(query)}", timeout=5) as response:
        return json.load(response)["data"]
# A scrape every 5 s, targets found within about 10 s of the start; a replica the cluster suite
# restarted is up again at its next scrape.
deadline = time.monotonic() + 60
while True:
    targets = get("/api/v1/targets")["activeTargets"]
    up = sorted(t["labels"]["instance"] for t in targets if t["health"] == "up")
    result = get("/api/v1/query", query="sum(skiff_messages_enqueued_total)")["result"]
    enqueued = float(result[0]["value"][1]) if result else 0
    if len(up) == replicas and enqueued > 0:
        break
    if time.monotonic() > deadline:
        sys.exit(f"after 60 s: {len(up)} of {replicas} replicas up ({targets}), {enqueued} messages enqueued seen")
    time.sleep(1)
rules = sorted(r["name"] for g in get("/api/v1/rules")["groups"] for r in g["rules"])
assert rules == ["SkiffDeadLetters", "SkiffOldestMessageAge", "SkiffReplicaDown", "SkiffServerErrors"], rules
print(f"prometheus: {len(up)} replicas up, {len(rules)} alert rules loaded, {enqueued:.0f} messages enqueued seen")
EOF
}
check_prometheus
scripts/cluster.sh down
CLUSTER_UP=0
if curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" 2>/dev/null; then
    echo "Prometheus still answers after scripts/cluster.sh down" >&2
    exit 1
fi
export MONITORING=off

log "cluster suite again on a Redis Cluster: the same replicas and HAProxy over 3 primaries and 3 replicas (REDIS_MODE=cluster)"
# A state directory of its own. The Redis restart test is for a single Redis; a primary killed on
# a cluster is make chaos-cluster-ci's.
export CLUSTER_STATE_DIR="$WORK/cluster-on-redis-cluster" REDIS_MODE=cluster
REDIS_CLUSTER_PORT=$(free_cluster_base)
export REDIS_CLUSTER_PORT
CLUSTER_UP=1
scripts/cluster.sh up
SKIFF_CLUSTER_REDIS_URL=$(scripts/redis-cluster.sh url --base-port "$REDIS_CLUSTER_PORT" --dir "$CLUSTER_STATE_DIR/redis-cluster")
swift test --skip-build --filter SkiffClusterTests
scripts/cluster.sh down
CLUSTER_UP=0
unset REDIS_MODE

log "schemathesis: every operation of openapi.yaml against a live replica on Redis"
SKIFF_BIN="$PWD/.build/release/skiff" scripts/schemathesis.sh

log "the console in Chromium (Playwright, Tests/Console) against a release replica on Redis"
CONSOLE_REDIS_URL="$SKIFF_TEST_REDIS_URL" scripts/console-test.sh "$PWD/.build/release/skiff"

log "chaos checker's own tests (hand-made histories for every rule)"
chaos/run.sh --unit

log "infrastructure checks (terraform, checkov, hadolint, compose, haproxy)"
scripts/check-infra.sh

log "benchmark smoke run (every scenario, briefly; no timing is asserted)"
SKIFF_BIN="$PWD/.build/release/skiff" bench/run.sh --smoke
