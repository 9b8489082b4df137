#!/usr/bin/env bash
# `make bench`: Skiff against its peers (webdis, redis-benchmark, Redis itself), side by side in one
# run on this machine, for every scenario of issue 5. Prints one table and writes BENCHMARKS.md and
# bench/latency.png.
#
#   bench/run.sh            full run (every scenario: about an hour on 2 cores, plus the release build;
#                           a, b, c, d, e, m, scaling, f, g and the profile with a baseline took 17 minutes)
#   bench/run.sh --smoke    the harness's unit tests, then every scenario, very briefly, to prove the
#                           harness works (CI); writes its report under bench/out/smoke/ and leaves
#                           BENCHMARKS.md alone
#   bench/run.sh --report-only   rewrites the report and plot from the last run's raw results
#                           (after editing bench/analysis.md, the hand-written part of BENCHMARKS.md)
#   bench/run.sh --only LIST     only these scenarios (comma-separated: unloaded, roundtrips, a, b, c,
#                           d, e, m, scaling, s, t, p, w, f, g, l, tr, profile, scale-out); raw results in
#                           bench/out/only-LIST, a report there, BENCHMARKS.md left alone, except that a
#                           full-mode run with scale-out, s (streams), t, p, w, l (large messages) or tr merges
#                           that section (and bench/analysis.md) into BENCHMARKS.md.
#                           (b)'s redis-benchmark RPOP pops the list (a) left: run a with b.
#
# The embedded memory backend (m, issue 24): one more replica without REDIS_URL takes the requests of
# a, b and e from wrk in rounds that alternate it with replica A (on Redis); its RSS after the run.
# Scaling (issue 24): 1, 2 and 4 fresh replicas on the run's Redis, one wrk per replica at once, the
# 50 connections split over them; the enqueue of a and the dequeue of b; CPU of replicas and Redis.
# (c) and (d) run BENCH_LATENCY_RUNS times (Skiff and Redis in each); the table shows the median run.
# (f) measures RSS per idle long-poll at 10 000 and 50 000 waits (smoke: 500 and 1 500), each on a
# fresh replica, the larger from several client addresses; the open-file limit may cap them.
#
# Scale-out (issue 18): 48 queues, batch sends and receives, through 2 Skiff replicas against the
# run's Redis and against Redis Clusters (scripts/redis-cluster.sh, 1 and 3 primaries, no replicas,
# on free ports, stopped at exit) started by this script; Redis CPU per message on each primary.
#
# Large messages (l, issue 23): bodies of 1 KiB, 256 KiB + 1 byte and 4 MiB through two more
# replicas on the run's Redis, one offloading to a file:// payload store, one without a store
# (MAX_MESSAGE_BYTES 8 MiB); N POSTs, then N GETs, per replica; offloaded ones again through
# payload=url links (an acknowledged GET, the link fetched, the ack); then N publishes to a topic with two
# subscriber queues, each drained by N GETs.
#
# Tracing (tr, issue 22): the plain enqueue and dequeue through a replica with tracing off, one with
# OTEL_EXPORTER_OTLP_ENDPOINT at an OTLP/HTTP sink of the harness's, and (with SKIFF_BASELINE_BIN)
# the baseline binary, each under its own key prefix; rounds in alternating order.
#
# Environment:
#   SKIFF_BIN       use this skiff binary instead of building one (`swift build -c release`)
#   SKIFF_BASELINE_BIN  before/after: also run the scenarios that measure the server (enqueue and
#                   dequeue throughput with Skiff's CPU per request, wake-up latency, the unloaded
#                   requests, Redis commands per request) against this binary, in the same run. It
#                   gets its own replicas on the same Redis (REDIS_KEY_PREFIX=skiffbase); the rounds
#                   alternate the two binaries (4 rounds, smoke 3), and BENCHMARKS.md gets a
#                   "Before/after" table whose verdicts weigh each ratio against the spread between
#                   rounds. E.g. SKIFF_BASELINE_BIN=/path/to/skiff-before bench/run.sh
#   BENCH_SECONDS   seconds per throughput run (default 10; smoke 1)
#   BENCH_LATENCY_RUNS  runs of (c) and (d) (default 3; smoke 1)
#   BENCH_SMOKE=1   same as --smoke
#   BENCH_PROFILE=0 skip the perf profile (full mode only; needs `perf`)
#   BENCH_OUT       directory for raw results (default bench/out/full or bench/out/smoke)
#
# Starts its own Redis (no persistence), webdis and Skiff replicas on free 127.0.0.1 ports and stops
# them at exit. Installs missing Debian packages (redis-server, redis-tools, webdis, wrk, nginx, gnuplot-nox).
# The measuring and the report are bench/skiffbench/ (`PYTHONPATH=bench python3 -m skiffbench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SMOKE=${BENCH_SMOKE:-0}
REPORT_ONLY=0
ONLY=
SCENARIOS=" unloaded roundtrips a b c d e m scaling s t p w f g l tr profile scale-out "
usage() { echo "usage: bench/run.sh [--smoke] [--report-only] [--only SCENARIO,...]" >&2 && exit 2; }
while (($#)); do
    case $1 in
    --smoke) SMOKE=1 ;;
    --report-only) REPORT_ONLY=1 ;;
    --only=*) ONLY=${1#--only=} ;;
    --only) (($# >= 2)) || usage; ONLY=$2; shift ;;
    *) usage ;;
    esac
    shift
done
for name in ${ONLY//,/ }; do
    [[ $SCENARIOS == *" $name "* ]] || { echo "--only: no scenario '$name' (one of:$SCENARIOS)" >&2 && exit 2; }
done
# want NAME: whether this run includes scenario NAME.
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

if [ "$SMOKE" = 1 ]; then
    RUN_SECONDS=${BENCH_SECONDS:-1}
    RATE=1000 LATENCY_SECONDS=0.5 WARMUP=0.2 GRACE=2
    WAKEUP_SAMPLES=20 WAKEUP_PARALLEL=2 IDLE_CONNECTIONS=500 IDLE_SECONDS=1 MEMORY_MESSAGES=1000 UNLOADED_REQUESTS=100
    ROUNDTRIP_REQUESTS=50
    # The larger step of (f) from two client addresses, so that smoke runs that code too.
    IDLE_CONNECTIONS_LARGE=1500 IDLE_PER_SOURCE=1000
    LATENCY_RUNS=${BENCH_LATENCY_RUNS:-1}
    PROFILE=0
    OUT=${BENCH_OUT:-$ROOT/bench/out/smoke}
    MARKDOWN=$OUT/BENCHMARKS.md PLOT=$OUT/latency.png PLOT_LINK=latency.png
else
    RUN_SECONDS=${BENCH_SECONDS:-10}
    RATE=5000 LATENCY_SECONDS=$RUN_SECONDS WARMUP=1 GRACE=3
    # (d): 10 000 samples by 8 samplers at once (one after another, 10 000 take 5 minutes).
    WAKEUP_SAMPLES=10000 WAKEUP_PARALLEL=8 IDLE_CONNECTIONS=10000 IDLE_SECONDS=10 MEMORY_MESSAGES=20000 UNLOADED_REQUESTS=2000
    ROUNDTRIP_REQUESTS=1000
    # One client address reaches one server port from the ephemeral port range only (28 232 ports).
    IDLE_CONNECTIONS_LARGE=50000 IDLE_PER_SOURCE=20000
    LATENCY_RUNS=${BENCH_LATENCY_RUNS:-3}
    PROFILE=${BENCH_PROFILE:-1}
    OUT=${BENCH_OUT:-$ROOT/bench/out/full}
    MARKDOWN=$ROOT/BENCHMARKS.md PLOT=$ROOT/bench/latency.png PLOT_LINK=bench/latency.png
fi
if [ -n "$ONLY" ]; then
    # A partial run keeps its results and report apart (it must not replace a full run's).
    PARTIAL=only-${ONLY//,/-}
    [ "$SMOKE" = 1 ] && PARTIAL=smoke-$PARTIAL
    OUT=${BENCH_OUT:-$ROOT/bench/out/$PARTIAL}
    MARKDOWN=$OUT/BENCHMARKS.md PLOT=$OUT/latency.png PLOT_LINK=latency.png
fi
CONNECTIONS=50
# Throughput runs alternate Skiff and webdis in rounds (the machine is shared; its load drifts). With
# a baseline, more (4, smoke 3): its verdicts take the noise from the spread between rounds.
ROUNDS=2
[ "$SMOKE" = 1 ] && ROUNDS=1
BASELINE=${SKIFF_BASELINE_BIN:-}
[ -n "$BASELINE" ] && ROUNDS=$((ROUNDS + 2))
SLICE=$(((RUN_SECONDS + ROUNDS - 1) / ROUNDS))
PRODUCERS=50 CONSUMERS=50
WAKEUP_SETTLE_MS=30
BATCH_SIZE=1000
# A ~128-byte JSON message for the throughput runs; webdis and redis-benchmark store values of the same size.
BODY='{"id":1234567,"type":"order.created","customer":"c-0042","items":[{"sku":"A-17","qty":2}],"note":"bench"}'
BODY_BYTES=${#BODY}

log() { printf '\n== [%ds] %s\n' "$SECONDS" "$*"; }
# The interpreter itself, not a version-manager shim (a shim costs ~0.4 s per call on a busy machine).
PYTHON=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || echo python3)
# The harness is a package run with -m, as chaos/ is, rather than through a bench/skiffbench.py shim:
# one way in, and no module beside the package under the same name to shadow it.
BENCH_PYTHONPATH=$ROOT/bench${PYTHONPATH:+:$PYTHONPATH}
bench() { PYTHONPATH=$BENCH_PYTHONPATH "$PYTHON" -m skiffbench "$@"; }
# The latency generators run at a higher priority when allowed (root): on a shared machine they must
# not be what is measured. Servers and wrk keep the normal priority.
GENERATOR_NICE=()
if [ "$(nice -n -5 nice 2>/dev/null)" = -5 ]; then GENERATOR_NICE=(nice -n -5); fi
bench_generator() { PYTHONPATH=$BENCH_PYTHONPATH "${GENERATOR_NICE[@]}" "$PYTHON" -m skiffbench "$@"; }

ensure_packages() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-benchmark >/dev/null || missing+=(redis-tools)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v webdis >/dev/null || missing+=(webdis)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v nginx >/dev/null || missing+=(nginx)
    command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
    command -v python3 >/dev/null || missing+=(python3)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

WORK=$(mktemp -d /tmp/skiff-bench.XXXXXX)
PIDS=()
CLUSTERS=() # directories of the Redis Clusters this script started (scripts/redis-cluster.sh)
FAILED=1
cleanup() {
    local pid dir
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$FAILED" = 1 ]; then
        echo "== bench failed; last lines of the server logs:" >&2
        tail -n 15 "$WORK"/*.log >&2 2>/dev/null || true
    fi
    for dir in "${CLUSTERS[@]}"; do "$ROOT/scripts/redis-cluster.sh" stop --dir "$dir" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stops one process this script started (by its pid) and forgets it.
stop() {
    local pid=$1 kept=() p
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

wait_http() { # port
    for _ in $(seq 1 200); do
        if [ "$(bench probe --port "$1" --path /health 2>/dev/null)" = 200 ]; then return 0; fi
        sleep 0.05
    done
    echo "nothing healthy on port $1" >&2
    return 1
}

rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
# Deletes the keys that match a pattern (SCAN, not KEYS).
drop_keys() { rcli --scan --pattern "$1" | xargs -r -d '\n' redis-cli -h 127.0.0.1 -p "$REDIS_PORT" DEL >/dev/null; }

# Lets the servers finish what the last run left them (an overloaded replica drains for a while).
# (Not in smoke mode, where the numbers do not matter.)
settle() {
    [ "$SMOKE" = 1 ] || bench settle --pid "$SKIFF_A_PID" --pid "$REDIS_PID" --pid "$WEBDIS_PID"
}

start_skiff() { # name port [binary key-prefix redis-url [VARIABLE=value ...]] -> sets LAST_PID
    local name=$1 port=$2 binary=${3:-$SKIFF} prefix=() url=${5:-redis://127.0.0.1:$REDIS_PORT}
    [ -n "${4:-}" ] && prefix=("REDIS_KEY_PREFIX=$4")
    shift $(($# < 5 ? $# : 5))
    env PORT="$port" HOST=127.0.0.1 REDIS_URL="$url" LOG_LEVEL=warning REPLICA_ID="$name" PUSH_ALLOWED_NETWORKS=127.0.0.0/8 \
        "${prefix[@]}" "$@" "$binary" serve >"$WORK/$name.log" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_http "$port"
}

# Before/after: the binaries a round runs, in its order (the baseline first every other round),
# and where each one's replica listens.
declare -A PORT_OF=() PID_OF=()
binaries_in_round() { # round
    if [ -z "$BASELINE" ]; then
        echo skiff
    elif (($1 % 2)); then
        echo skiff baseline
    else
        echo baseline skiff
    fi
}
start_baseline() { # name -> sets LAST_PID and LAST_PORT
    LAST_PORT=$(free_port)
    start_skiff "$1" "$LAST_PORT" "$SKIFF_BASELINE" skiffbase
}

write_report() {
    log "report"
    if compgen -G "$OUT/[cd]-*.dat" >/dev/null; then
        bench plot --results "$OUT" --png "$PLOT" --rate "$RATE"
    fi
    rm -f "$OUT/profile.md"
    local kind what
    for kind in enqueue dequeue long-poll; do
        [ -s "$OUT/perf-$kind.data" ] || continue
        mapfile -t what <"$OUT/perf-$kind.what"
        bench perf-summary --data "$OUT/perf-$kind.data" --title "$kind" --wrk "$OUT/profile-$kind.json" \
            "${what[@]}" >>"$OUT/profile.md" || true
    done
    local args=(--results "$OUT" --markdown "$MARKDOWN" --plot-link "$PLOT_LINK" --connections "$CONNECTIONS"
        --seconds "$RUN_SECONDS" --latency-seconds "$LATENCY_SECONDS" --warmup "$WARMUP" --grace "$GRACE"
        --rate "$RATE" --producers "$PRODUCERS" --consumers "$CONSUMERS" --settle-ms "$WAKEUP_SETTLE_MS"
        --batch-size "$BATCH_SIZE" --idle-seconds "$IDLE_SECONDS" --body-bytes "$BODY_BYTES")
    if [ "$SMOKE" = 1 ]; then
        args+=(--smoke)
    else
        args+=(--notes "$ROOT/bench/analysis.md")
    fi
    bench report "${args[@]}"
    echo
    echo "written: $MARKDOWN, $PLOT (raw results in $OUT)"
    # A partial run in full mode with the scale-out scenario: its section (it names its own run) goes
    # into BENCHMARKS.md, with the hand-written part; the rest of the file stays the last full run's.
    if [ -n "$ONLY" ] && [ "$SMOKE" = 0 ] && want scale-out && compgen -G "$OUT/scale-out-*-1.json" >/dev/null; then
        bench scale-out-merge --results "$OUT" --markdown "$ROOT/BENCHMARKS.md" --notes "$ROOT/bench/analysis.md"
    fi
    # The same for the topics scenario (issue 20).
    if [ -n "$ONLY" ] && [ "$SMOKE" = 0 ] && want t && [ -f "$OUT/t-1.json" ]; then
        bench topics-merge --results "$OUT" --markdown "$ROOT/BENCHMARKS.md" --notes "$ROOT/bench/analysis.md"
    fi
    # The same for the push scenario (issue 20).
    if [ -n "$ONLY" ] && [ "$SMOKE" = 0 ] && want p && [ -f "$OUT/p-4.json" ]; then
        bench push-merge --results "$OUT" --markdown "$ROOT/BENCHMARKS.md" --notes "$ROOT/bench/analysis.md"
    fi
    # The same for the worker scenario (issue 21).
    if [ -n "$ONLY" ] && [ "$SMOKE" = 0 ] && want w && [ -f "$OUT/w-10.json" ]; then
        bench worker-merge --results "$OUT" --markdown "$ROOT/BENCHMARKS.md" --notes "$ROOT/bench/analysis.md"
    fi
    # The same for the streams scenario (issue 19).
    if [ -n "$ONLY" ] && [ "$SMOKE" = 0 ] && want s && [ -f "$OUT/s-consume-100.json" ]; then
        bench streams-merge --results "$OUT" --markdown "$ROOT/BENCHMARKS.md" --notes "$ROOT/bench/analysis.md"
    fi
    # The same for the tracing scenario (issue 22).
    if [ -n "$ONLY" ] && [ "$SMOKE" = 0 ] && want tr && [ -f "$OUT/tr-meta.json" ]; then
        bench tracing-merge --results "$OUT" --markdown "$ROOT/BENCHMARKS.md" --notes "$ROOT/bench/analysis.md"
    fi
    # The same for the large-messages scenario (issue 23).
    if [ -n "$ONLY" ] && [ "$SMOKE" = 0 ] && want l && [ -f "$OUT/l-meta.json" ]; then
        bench large-merge --results "$OUT" --markdown "$ROOT/BENCHMARKS.md" --notes "$ROOT/bench/analysis.md"
    fi
}

if [ "$REPORT_ONLY" = 1 ]; then
    [ -f "$OUT/machine.json" ] || { echo "no results in $OUT: run bench/run.sh first" >&2 && exit 1; }
    write_report
    FAILED=0
    exit 0
fi

# --- preparation -------------------------------------------------------------------------------

# The harness's own unit tests (its slot arithmetic), in the smoke run that CI makes: under a second.
if [ "$SMOKE" = 1 ]; then
    PYTHONPATH=$BENCH_PYTHONPATH "$PYTHON" -m unittest discover -s "$ROOT/bench/skiffbench/tests" -t "$ROOT/bench" -q
fi
ensure_packages
# Scenario (f) holds up to 50 000 sockets in the replica and as many in the client (each a process of
# its own, with this limit): raise the hard limit where allowed (root with CAP_SYS_RESOURCE), else
# use the hard limit there is, and fewer waits.
IDLE_ASKED=$IDLE_CONNECTIONS IDLE_ASKED_LARGE=$IDLE_CONNECTIONS_LARGE
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt $((IDLE_CONNECTIONS_LARGE + 1000)) ]; then
    ulimit -Hn $((IDLE_CONNECTIONS_LARGE + 1000)) 2>/dev/null || true
fi
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ]; then
    if [ "$(ulimit -n)" -lt $((IDLE_CONNECTIONS + 500)) ]; then
        IDLE_CONNECTIONS=$(($(ulimit -n) - 500))
        echo "note: open-file limit $(ulimit -n); scenario (f) uses $IDLE_CONNECTIONS waits" >&2
    fi
    if [ "$(ulimit -n)" -lt $((IDLE_CONNECTIONS_LARGE + 500)) ]; then
        IDLE_CONNECTIONS_LARGE=$(($(ulimit -n) - 500))
        # Not a step of its own when the limit leaves it no larger than the first.
        ((IDLE_CONNECTIONS_LARGE > IDLE_CONNECTIONS)) || IDLE_CONNECTIONS_LARGE=0
        echo "note: open-file limit $(ulimit -n) (hard; raising it needs CAP_SYS_RESOURCE); the larger step of (f)" \
            "uses $IDLE_CONNECTIONS_LARGE of $IDLE_ASKED_LARGE waits" >&2
    fi
fi

if [ -n "${SKIFF_BIN:-}" ]; then
    [ -x "$SKIFF_BIN" ] || { echo "SKIFF_BIN=$SKIFF_BIN is not an executable" >&2 && exit 1; }
    SKIFF_SOURCE="SKIFF_BIN=$SKIFF_BIN, built $(date -u -r "$SKIFF_BIN" '+%Y-%m-%d %H:%M UTC')"
else
    SKIFF_SOURCE="built by this run from the checkout"
    log "building the release binary"
    swift build -c release --product skiff
    SKIFF_BIN=$(swift build -c release --show-bin-path)/skiff
fi
# The stream client of scenario (s), built beside the server (or next to SKIFF_BIN's checkout).
WORKER_CLIENT=${WORKER_CLIENT:-}
if want w && [ -z "$WORKER_CLIENT" ]; then
    swift build -c release --product skiff-workerbench
    WORKER_CLIENT=$(swift build -c release --show-bin-path)/skiff-workerbench
fi
STREAM_CLIENT=${STREAM_CLIENT:-}
if want s && [ -z "$STREAM_CLIENT" ]; then
    swift build -c release --product skiff-streambench
    STREAM_CLIENT=$(swift build -c release --show-bin-path)/skiff-streambench
fi
# A private copy: a rebuild during the run must not change the binary under test. Its name is not
# `skiff`, so that a developer's `pkill -f "skiff serve"` (of their own replicas) spares the run's.
SKIFF=$WORK/skiff-bench
cp "$SKIFF_BIN" "$SKIFF"
BASELINE_SOURCE=
if [ -n "$BASELINE" ]; then
    [ -x "$BASELINE" ] || { echo "SKIFF_BASELINE_BIN=$BASELINE is not an executable" >&2 && exit 1; }
    BASELINE_SOURCE="SKIFF_BASELINE_BIN=$BASELINE, built $(date -u -r "$BASELINE" '+%Y-%m-%d %H:%M UTC')"
    SKIFF_BASELINE=$WORK/skiff-baseline
    cp "$BASELINE" "$SKIFF_BASELINE"
fi

rm -rf "$OUT"
mkdir -p "$OUT"

log "starting Redis, webdis and a Skiff replica"
REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$WORK/redis" \
    --maxclients 1000 --logfile "$WORK/redis.log" </dev/null &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 1 100); do rcli ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
rcli ping | grep -q PONG

WEBDIS_PORT=$(free_port)
WEBDIS_THREADS=2 # Debian's default configuration
cat >"$WORK/webdis.json" <<EOF
{
    "redis_host": "127.0.0.1", "redis_port": $REDIS_PORT, "redis_auth": null,
    "http_host": "127.0.0.1", "http_port": $WEBDIS_PORT, "threads": $WEBDIS_THREADS,
    "daemonize": false, "database": 0,
    "acl": [{"disabled": ["DEBUG"]}],
    "verbosity": 1, "logfile": "$WORK/webdis.log"
}
EOF
(cd "$WORK" && exec webdis "$WORK/webdis.json") </dev/null >"$WORK/webdis-stderr.log" 2>&1 &
WEBDIS_PID=$!
PIDS+=("$WEBDIS_PID")
for _ in $(seq 1 100); do [ "$(bench probe --port "$WEBDIS_PORT" --path /PING 2>/dev/null)" = 200 ] && break; sleep 0.05; done

PORT_A=$(free_port)
start_skiff skiff-a "$PORT_A"
SKIFF_A_PID=$LAST_PID
PORT_OF[skiff]=$PORT_A PID_OF[skiff]=$SKIFF_A_PID

ROOT=$ROOT WEBDIS_THREADS=$WEBDIS_THREADS SKIFF_SOURCE=$SKIFF_SOURCE BASELINE_SOURCE=$BASELINE_SOURCE SLICE=$SLICE \
    GENERATOR_NICE="${GENERATOR_NICE[*]}" "$PYTHON" - "$OUT/machine.json" <<'EOF'
import json, os, platform, re, subprocess, sys
def sh(*command):
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        return "?"
root = os.environ["ROOT"]
cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
memory = int(re.search(r"MemTotal:\s*(\d+)", open("/proc/meminfo").read()).group(1)) / 2**20
redis = re.search(r"v=(\S+)", sh("redis-server", "--version"))
dirty = sh("git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", "Sources", "Package.swift")
json.dump({
    "date": sh("date", "-u", "+%Y-%m-%d %H:%M UTC"),
    "nproc": sh("nproc"), "cpu": cpu.group(1).strip() if cpu else "?", "memory": "%.0f GiB RAM" % memory,
    "kernel": platform.release(), "load": open("/proc/loadavg").read().split()[:3],
    "commit": sh("git", "-C", root, "rev-parse", "--short", "HEAD") + (" (with local changes)" if dirty else ""),
    "redis": redis.group(1) if redis else "?",
    "redis_benchmark": (sh("redis-benchmark", "--version").split() + ["?", "?"])[1],
    "webdis": sh("dpkg-query", "-W", "-f=${Version}", "webdis"), "webdis_threads": os.environ["WEBDIS_THREADS"],
    "wrk": sh("dpkg-query", "-W", "-f=${Version}", "wrk"),
    "python": platform.python_version(),
    "skiff_source": os.environ["SKIFF_SOURCE"],
    "generator_nice": os.environ["GENERATOR_NICE"],
    "slice_seconds": int(os.environ["SLICE"]),
    **({"baseline_source": os.environ["BASELINE_SOURCE"]} if os.environ["BASELINE_SOURCE"] else {}),
}, open(sys.argv[1], "w"), indent=1)
EOF

CPU_A=(--cpu "skiff=$SKIFF_A_PID" --cpu "redis=$REDIS_PID")
CPU_W=(--cpu "webdis=$WEBDIS_PID" --cpu "redis=$REDIS_PID")
# redis-benchmark runs a count, not a duration: about RUN_SECONDS here.
REQUESTS=$((RUN_SECONDS * 30000))
[ "$SMOKE" = 1 ] && REQUESTS=10000

# --- fixed cost per request (diagnostic) -------------------------------------------------------

if want unloaded; then
    log "fixed cost of one request, one connection, nothing batched"
    bench unloaded --skiff-port "$PORT_A" --skiff-pid "$SKIFF_A_PID" --webdis-port "$WEBDIS_PORT" \
        --webdis-pid "$WEBDIS_PID" --requests "$UNLOADED_REQUESTS" --json "$OUT/unloaded.json" >/dev/null
    rcli DEL 'skiff:{bench-u}:ready' 'skiff:{bench-u}:seq' bench-u >/dev/null
fi

if want roundtrips; then
    log "Redis commands per request, $ROUNDTRIP_REQUESTS sequential requests of each kind"
    bench roundtrips --port "$PORT_A" --redis-port "$REDIS_PORT" --requests "$ROUNDTRIP_REQUESTS" --body "$BODY" \
        --json "$OUT/roundtrips-skiff.json" >/dev/null
    drop_keys 'skiff:{bench-rt}:*'
fi

# --- before/after: the baseline's replica, its fixed cost --------------------------------------

if [ -n "$BASELINE" ]; then
    log "before/after: a replica of the baseline binary (key prefix skiffbase)"
    start_baseline skiff-baseline
    PORT_OF[baseline]=$LAST_PORT PID_OF[baseline]=$LAST_PID
    # Its keys must be its own: the (b) prefill and every cleanup below rely on the prefix.
    bench probe --port "${PORT_OF[baseline]}" --method POST --path /api/bench-prefix --body '{"probe":1}' >/dev/null
    if [ "$(rcli EXISTS 'skiffbase:{bench-prefix}:ready')" != 1 ]; then
        echo "the baseline binary does not keep its keys under REDIS_KEY_PREFIX=skiffbase" >&2
        exit 1
    fi
    if want roundtrips; then
        bench roundtrips --port "${PORT_OF[baseline]}" --redis-port "$REDIS_PORT" --requests "$ROUNDTRIP_REQUESTS" \
            --body "$BODY" --json "$OUT/roundtrips-baseline.json" >/dev/null
    fi
    if want unloaded; then
        log "before/after: fixed cost of one request, $ROUNDS rounds"
        for round in $(seq 1 "$ROUNDS"); do
            for binary in $(binaries_in_round "$round"); do
                bench unloaded --skiff-port "${PORT_OF[$binary]}" --skiff-pid "${PID_OF[$binary]}" \
                    --requests "$UNLOADED_REQUESTS" --json "$OUT/unloaded-$binary-$round.json" >/dev/null
            done
        done
    fi
    for queue in bench-u bench-u-empty bench-rt bench-prefix; do drop_keys "skiffbase:{$queue}:*"; done
    drop_keys 'skiff:{bench-u}:*'
fi

# --- (a) enqueue -------------------------------------------------------------------------------

if want a; then
    log "(a) enqueue: 1 message per request, $CONNECTIONS connections, $((SLICE * ROUNDS))s each"
    for round in $(seq 1 "$ROUNDS"); do
        for binary in $(binaries_in_round "$round"); do
            cpu=(--cpu "skiff=${PID_OF[$binary]}" --cpu "redis=$REDIS_PID")
            bench wrk --url "http://127.0.0.1:${PORT_OF[$binary]}/api/bench-a" --method POST --body "$BODY" --expect 201 \
                --seconds "$SLICE" --connections "$CONNECTIONS" "${cpu[@]}" --json "$OUT/a-$binary-$round.json" >/dev/null
        done
        bench wrk --url "http://127.0.0.1:$WEBDIS_PORT/LPUSH/bench-webdis-a" --method PUT --body "$BODY" --expect 200 \
            --seconds "$SLICE" --connections "$CONNECTIONS" "${CPU_W[@]}" --json "$OUT/a-webdis-$round.json" >/dev/null
    done
    bench merge "$OUT"/a-skiff-*.json --json "$OUT/a-skiff.json" >/dev/null
    bench merge "$OUT"/a-webdis-*.json --json "$OUT/a-webdis.json" >/dev/null
    # Its list stays in database 1 for the RPOP run of (b), which pops exactly as many.
    rcli -n 1 FLUSHDB >/dev/null
    bench redis-bench --port "$REDIS_PORT" --tests lpush --requests "$REQUESTS" --connections "$CONNECTIONS" \
        --data-size "$BODY_BYTES" --cpu "redis=$REDIS_PID" --json "$OUT/a-redis-benchmark.json" >/dev/null
    rcli DEL 'skiff:{bench-a}:ready' 'skiff:{bench-a}:seq' bench-webdis-a >/dev/null
    [ -z "$BASELINE" ] || drop_keys 'skiffbase:{bench-a}:*'
    settle
fi

# --- (b) dequeue -------------------------------------------------------------------------------

if want b; then
    # More messages than either can take in its ROUNDS slices of SLICE seconds (checked afterwards),
    # written straight into Redis: for Skiff in its envelope format (docs/redis-data-model.md), checked
    # by one GET first.
    PREFILL=$((SLICE * ROUNDS * 150000 + 20000))
    [ "$SMOKE" = 1 ] && PREFILL=$((SLICE * ROUNDS * 30000))
    log "(b) dequeue with $PREFILL messages ready, $CONNECTIONS connections, $((SLICE * ROUNDS))s each"
    bench prefill --redis-port "$REDIS_PORT" --format skiff --queue bench-b --count "$PREFILL" --body "$BODY" >/dev/null
    bench prefill --redis-port "$REDIS_PORT" --format list --queue bench-webdis-b --count "$PREFILL" --body "$BODY" >/dev/null
    [ -z "$BASELINE" ] || bench prefill --redis-port "$REDIS_PORT" --format skiff --prefix skiffbase --queue bench-b \
        --count "$PREFILL" --body "$BODY" >/dev/null
    for binary in $(binaries_in_round 1); do
        got=$(bench probe --port "${PORT_OF[$binary]}" --path '/api/bench-b?timeout=0' --print-body)
        if [ "$got" != "$BODY" ]; then
            echo "(b) Skiff ($binary) did not return the pre-filled message (envelope format changed?): $got" >&2
            exit 1
        fi
    done
    for round in $(seq 1 "$ROUNDS"); do
        for binary in $(binaries_in_round "$round"); do
            cpu=(--cpu "skiff=${PID_OF[$binary]}" --cpu "redis=$REDIS_PID")
            bench wrk --url "http://127.0.0.1:${PORT_OF[$binary]}/api/bench-b?timeout=0" --expect 200 \
                --seconds "$SLICE" --connections "$CONNECTIONS" "${cpu[@]}" --json "$OUT/b-$binary-$round.json" >/dev/null
        done
        bench wrk --url "http://127.0.0.1:$WEBDIS_PORT/RPOP/bench-webdis-b" --expect 200 \
            --seconds "$SLICE" --connections "$CONNECTIONS" "${CPU_W[@]}" --json "$OUT/b-webdis-$round.json" >/dev/null
    done
    bench merge "$OUT"/b-skiff-*.json --json "$OUT/b-skiff.json" >/dev/null
    bench merge "$OUT"/b-webdis-*.json --json "$OUT/b-webdis.json" >/dev/null
    printf '{"skiff_left": %d, "webdis_left": %d, "baseline_left": %s}\n' "$(rcli LLEN 'skiff:{bench-b}:ready')" \
        "$(rcli LLEN bench-webdis-b)" "$([ -n "$BASELINE" ] && rcli LLEN 'skiffbase:{bench-b}:ready' || echo null)" \
        >"$OUT/b-after.json"
    bench redis-bench --port "$REDIS_PORT" --tests rpop --requests "$REQUESTS" --connections "$CONNECTIONS" \
        --data-size "$BODY_BYTES" --cpu "redis=$REDIS_PID" --json "$OUT/b-redis-benchmark.json" >/dev/null
    rcli DEL 'skiff:{bench-b}:ready' 'skiff:{bench-b}:seq' bench-webdis-b >/dev/null
    rcli -n 1 FLUSHDB >/dev/null
fi
if [ -n "$BASELINE" ]; then
    # Idle until (d): its sweeps would count in the Redis work per message of (c′).
    stop "${PID_OF[baseline]}"
    drop_keys 'skiffbase:*'
fi
settle

# --- (c) end-to-end latency at a fixed rate ----------------------------------------------------

if want c; then
    log "(c) produce+consume at $RATE msg/s for ${LATENCY_SECONDS}s (+${WARMUP}s warm-up), $LATENCY_RUNS run(s)"
    # Each run: Redis driven by the same generator, then Skiff (c-<name>-run<N>); the median run's
    # files become c-skiff and c-redis (bench latency-runs). c-skiff-low, in the first run only: the
    # same at a tenth of the rate, for Skiff's latency when it is not near saturation (with the Redis
    # commands it costs per message). The run that may overload Skiff goes last.
    for run_number in $(seq 1 "$LATENCY_RUNS"); do
        runs=("redis:$RATE" "skiff:$RATE")
        ((run_number == 1)) && runs=("redis:$RATE" "skiff-low:$((RATE / 10))" "skiff:$RATE")
        for run in "${runs[@]}"; do
            name=${run%%:*} rate=${run#*:} mode=${name%-low} port=$PORT_A file=c-${run%%:*}-run$run_number
            [ "$mode" = redis ] && port=$REDIS_PORT
            [ "$name" = skiff-low ] && file=c-skiff-low && rcli CONFIG RESETSTAT >/dev/null
            bench_generator latency --mode "$mode" --produce-port "$port" --consume-port "$port" --queue "bench-c-$name" \
                --rate "$rate" --seconds "$LATENCY_SECONDS" --warmup "$WARMUP" --grace "$GRACE" \
                --producers "$PRODUCERS" --consumers "$CONSUMERS" --distribution "$OUT/$file.dat" \
                --cpu "redis=$REDIS_PID" --cpu "skiff=$SKIFF_A_PID" --json "$OUT/$file.json" >/dev/null
            [ "$name" = skiff-low ] && rcli INFO commandstats >"$OUT/c-skiff-low-commandstats.txt"
            settle
            rcli DEL "skiff:{bench-c-$name}:ready" "skiff:{bench-c-$name}:seq" "bench-c-$name" >/dev/null
        done
    done
    bench latency-runs --results "$OUT" --scenario c
fi

# --- (d) wake-up across replicas ---------------------------------------------------------------

if want d; then
    log "(d) wake-up: POST on replica A, consumer waiting on replica B ($WAKEUP_SAMPLES samples, $WAKEUP_PARALLEL at once), $LATENCY_RUNS run(s)"
    PORT_B=$(free_port)
    start_skiff skiff-b "$PORT_B"
    SKIFF_B_PID=$LAST_PID
    for run_number in $(seq 1 "$LATENCY_RUNS"); do
        bench_generator wakeup --mode skiff --produce-port "$PORT_A" --consume-port "$PORT_B" --queue bench-d \
            --samples "$WAKEUP_SAMPLES" --parallel "$WAKEUP_PARALLEL" --settle-ms "$WAKEUP_SETTLE_MS" --max-seconds 150 \
            --distribution "$OUT/d-skiff-run$run_number.dat" --json "$OUT/d-skiff-run$run_number.json" >/dev/null
        bench_generator wakeup --mode redis --produce-port "$REDIS_PORT" --consume-port "$REDIS_PORT" --queue bench-d-redis \
            --samples "$WAKEUP_SAMPLES" --parallel "$WAKEUP_PARALLEL" --settle-ms "$WAKEUP_SETTLE_MS" --max-seconds 150 \
            --distribution "$OUT/d-redis-run$run_number.dat" --json "$OUT/d-redis-run$run_number.json" >/dev/null
    done
    bench latency-runs --results "$OUT" --scenario d
    if [ -n "$BASELINE" ]; then
        log "before/after: wake-up, $ROUNDS rounds of $((WAKEUP_SAMPLES / ROUNDS)) samples each"
        start_baseline skiff-baseline
        PORT_OF[baseline]=$LAST_PORT PID_OF[baseline]=$LAST_PID
        start_baseline skiff-baseline-b
        BASELINE_B_PID=$LAST_PID
        declare -A PORT_B_OF=([skiff]=$PORT_B [baseline]=$LAST_PORT)
        for round in $(seq 1 "$ROUNDS"); do
            for binary in $(binaries_in_round "$round"); do
                bench_generator wakeup --mode skiff --produce-port "${PORT_OF[$binary]}" --consume-port "${PORT_B_OF[$binary]}" \
                    --queue bench-d --samples $((WAKEUP_SAMPLES / ROUNDS)) --parallel "$WAKEUP_PARALLEL" \
                    --settle-ms "$WAKEUP_SETTLE_MS" --max-seconds 150 \
                    --json "$OUT/wakeup-$binary-$round.json" >/dev/null
            done
        done
        stop "$BASELINE_B_PID"
        stop "${PID_OF[baseline]}"
        drop_keys 'skiffbase:*'
    fi
    stop "$SKIFF_B_PID"
fi

# --- (s) streams -------------------------------------------------------------------------------

if want s; then
    # One consumer per credit on a queue with more messages than it can take in RUN_SECONDS, then
    # one publisher; compared in the report with (b) and (a) of this run. Then idle streams.
    S_PREFILL=$((RUN_SECONDS * 80000 + 20000))
    [ "$SMOKE" = 1 ] && S_PREFILL=$((RUN_SECONDS * 20000))
    for credit in 100 1000; do
        log "(s) stream consumer, credit $credit, $S_PREFILL messages ready"
        bench prefill --redis-port "$REDIS_PORT" --format skiff --queue bench-s --count "$S_PREFILL" --body "$BODY" >/dev/null
        bench stream --client "$STREAM_CLIENT" --mode consume --port "$PORT_A" --queue bench-s --credit "$credit" \
            --seconds "$RUN_SECONDS" "${CPU_A[@]}" --json "$OUT/s-consume-$credit.json" >/dev/null
        bench probe --port "$PORT_A" --method POST --path /api/bench-s/purge >/dev/null
    done
    log "(s) stream publisher"
    bench stream --client "$STREAM_CLIENT" --mode publish --port "$PORT_A" --queue bench-s2 --window 256 --body "$BODY" \
        --seconds "$RUN_SECONDS" "${CPU_A[@]}" --json "$OUT/s-publish.json" >/dev/null
    bench probe --port "$PORT_A" --method POST --path /api/bench-s2/purge >/dev/null
    log "(s) $IDLE_CONNECTIONS idle streams"
    bench stream-idle --client "$STREAM_CLIENT" --port "$PORT_A" --pid "$SKIFF_A_PID" --queue bench-s3 \
        --count "$IDLE_CONNECTIONS" --hold $((IDLE_SECONDS + 60)) --json "$OUT/s-idle.json" >/dev/null
    printf '{"partial": %s, "only": "%s"}\n' "$([ -n "$ONLY" ] && echo true || echo false)" "$ONLY" >"$OUT/s-meta.json"
    settle
fi

# --- (t) topics ---------------------------------------------------------------------------------

if want t; then
    # Publishes to a topic with N queue subscriptions (no filter), compared in the report with (a).
    for subscriptions in 1 10 100; do
        topic=bench-t-$subscriptions
        for i in $(seq 1 "$subscriptions"); do
            bench probe --port "$PORT_A" --method PUT --path "/api/topics/$topic/subscriptions/s$i" \
                --body "{\"queue\":\"$topic-q$i\"}" >/dev/null
        done
        log "(t) publish to a topic with $subscriptions subscription(s), $CONNECTIONS connections, $((SLICE * ROUNDS))s"
        bench wrk --url "http://127.0.0.1:$PORT_A/api/topics/$topic" --method POST --body "$BODY" --expect 201 \
            --seconds "$((SLICE * ROUNDS))" --connections "$CONNECTIONS" "${CPU_A[@]}" --json "$OUT/t-$subscriptions.json" >/dev/null
        bench probe --port "$PORT_A" --method DELETE --path "/api/topics/$topic" >/dev/null
        subscribers=()
        for i in $(seq 1 "$subscriptions"); do
            drop_keys "skiff:{$topic-q$i}:*"
            subscribers+=("$topic-q$i")
        done
        rcli SREM skiff:queues "${subscribers[@]}" >/dev/null
    done
    printf '{"partial": %s, "only": "%s"}\n' "$([ -n "$ONLY" ] && echo true || echo false)" "$ONLY" >"$OUT/t-meta.json"
    settle
fi

# --- (p) push delivery -------------------------------------------------------------------------

if want p; then
    # A local receiver that costs little: nginx answering 204 to every POST.
    RECEIVER_PORT=$(free_port)
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$RECEIVER_PORT; location / { return 204; } location = /health { return 200; } }
}
EOF
    nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" </dev/null >"$WORK/nginx/stderr.log" 2>&1 &
    RECEIVER_PID=$!
    PIDS+=("$RECEIVER_PID")
    wait_http "$RECEIVER_PORT"
    P_MESSAGES=$((RUN_SECONDS * 2000 + 2000))
    for concurrency in 4 64; do
        topic=bench-p-$concurrency
        bench prefill --redis-port "$REDIS_PORT" --format skiff --queue "$topic-push" --count "$P_MESSAGES" --body "$BODY" >/dev/null
        log "(p) push $P_MESSAGES messages to a local receiver, concurrency $concurrency"
        bench push --port "$PORT_A" --redis-port "$REDIS_PORT" --topic "$topic" --queue "$topic-push" \
            --url "http://127.0.0.1:$RECEIVER_PORT/hook" --concurrency "$concurrency" \
            "${CPU_A[@]}" --cpu "receiver=$RECEIVER_PID" --json "$OUT/p-$concurrency.json" >/dev/null
        bench probe --port "$PORT_A" --method DELETE --path "/api/topics/$topic" >/dev/null
        drop_keys "skiff:{$topic-push}:*"
        rcli SREM skiff:queues "$topic-push" >/dev/null
    done
    kill "$RECEIVER_PID" 2>/dev/null || true
    printf '{"partial": %s, "only": "%s"}\n' "$([ -n "$ONLY" ] && echo true || echo false)" "$ONLY" >"$OUT/p-meta.json"
    settle
fi

# --- (w) the Swift client's Worker --------------------------------------------------------------

if want w; then
    W_MESSAGES=$((RUN_SECONDS * 2000 + 1000))
    for concurrency in 1 10 100; do
        log "(w) one Worker, concurrency $concurrency, draining $W_MESSAGES messages"
        bench worker --client "$WORKER_CLIENT" --port "$PORT_A" --queue "bench-w-$concurrency" --messages "$W_MESSAGES" \
            --concurrency "$concurrency" "${CPU_A[@]}" --json "$OUT/w-$concurrency.json" >/dev/null
        drop_keys "skiff:{bench-w-$concurrency}:*"
        rcli SREM skiff:queues "bench-w-$concurrency" >/dev/null
    done
    printf '{"partial": %s, "only": "%s"}\n' "$([ -n "$ONLY" ] && echo true || echo false)" "$ONLY" >"$OUT/w-meta.json"
    settle
fi

# --- (e) batch enqueue -------------------------------------------------------------------------

if want e; then
    log "(e) batch enqueue"
    BATCH=$("$PYTHON" -c "import json,sys; print(json.dumps([json.loads(sys.argv[1])] * int(sys.argv[2]), separators=(',', ':')))" \
        "$BODY" "$BATCH_SIZE")
    status=$(bench probe --port "$PORT_A" --method POST --path /api/bench-e/batch --body '[{"probe":1}]')
    if [ "$status" = 404 ] || [ "$status" = 405 ]; then
        echo "not available: batch API not implemented (POST /api/{queue}/batch answers $status)"
        printf '{"available": false, "reason": "not available: batch API not implemented"}\n' >"$OUT/e-skiff.json"
    else
        bench wrk --url "http://127.0.0.1:$PORT_A/api/bench-e/batch" --method POST --body "$BATCH" --expect 201 \
            --seconds "$RUN_SECONDS" --connections "$CONNECTIONS" "${CPU_A[@]}" --json "$OUT/e-skiff.json" >/dev/null
        "$PYTHON" - "$OUT/e-skiff.json" "$BATCH_SIZE" <<'EOF'
import json, sys
result = json.load(open(sys.argv[1]))
result["batch_size"] = int(sys.argv[2])
json.dump(result, open(sys.argv[1], "w"), indent=1)
EOF
    fi
    # The ceiling for the same work in Redis: one LPUSH carrying the whole batch.
    mapfile -t VALUES < <(for _ in $(seq 1 "$BATCH_SIZE"); do echo "$BODY"; done)
    bench redis-bench --port "$REDIS_PORT" --requests $((RUN_SECONDS * 100)) --connections "$CONNECTIONS" \
        --values-per-command "$BATCH_SIZE" --json "$OUT/e-redis-benchmark.json" -- LPUSH bench-e "${VALUES[@]}" >/dev/null
    rcli DEL 'skiff:{bench-e}:ready' 'skiff:{bench-e}:seq' >/dev/null
    rcli -n 1 FLUSHDB >/dev/null
fi

# --- (m) the embedded memory backend (issue 24) -------------------------------------------------

# One more replica without REDIS_URL (nor REDIS_HOST or a settings file, which would name a Redis):
# its queues in its own memory. It takes the requests of (a), (b) and (e) from wrk in rounds that
# alternate it with replica A (the order reversed every other round); its dequeue queue is filled
# through batch POSTs (there is no Redis to write into), A's straight into Redis as in (b).
start_memory_skiff() { # name port -> sets LAST_PID
    env -u REDIS_URL -u REDIS_HOST -u SKIFF_SETTINGS_FILE PORT="$2" HOST=127.0.0.1 LOG_LEVEL=warning REPLICA_ID="$1" \
        "$SKIFF" serve >"$WORK/$1.log" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_http "$2"
}
if want m; then
    M_PORT=$(free_port)
    start_memory_skiff skiff-m "$M_PORT"
    M_PID=$LAST_PID
    health=$(bench probe --port "$M_PORT" --path /health --print-body)
    if [[ $health != *'"backend":"memory"'* ]]; then
        echo "(m) the replica started without REDIS_URL is not on the memory backend: $health" >&2
        exit 1
    fi
    M_QUEUES=(--queue bench-m --queue bench-m-get --queue bench-m-batch)
    bench replica-state --port "$M_PORT" --pid "$M_PID" "${M_QUEUES[@]}" --json "$OUT/m-state-fresh.json" >/dev/null
    # More messages than either replica can take in its ROUNDS slices (checked afterwards).
    M_PREFILL=$((SLICE * ROUNDS * 150000 + 20000))
    [ "$SMOKE" = 1 ] && M_PREFILL=$((SLICE * ROUNDS * 50000))
    bench prefill-http --port "$M_PORT" --queue bench-m-get --count "$M_PREFILL" --batch "$BATCH_SIZE" --body "$BODY" >/dev/null
    bench prefill --redis-port "$REDIS_PORT" --format skiff --queue bench-m-get --count "$M_PREFILL" --body "$BODY" >/dev/null
    M_BATCH=$("$PYTHON" -c "import json,sys; print(json.dumps([json.loads(sys.argv[1])] * int(sys.argv[2]), separators=(',', ':')))" \
        "$BODY" "$BATCH_SIZE")
    declare -A M_PORT_OF=([memory]=$M_PORT [redis]=$PORT_A)
    log "(m) the embedded memory backend and replica A on Redis: enqueue, dequeue ($M_PREFILL ready), batch enqueue;" \
        "$CONNECTIONS connections, $ROUNDS round(s) of ${SLICE}s each"
    for phase in enqueue dequeue batch; do
        case $phase in
        enqueue) path=/api/bench-m method=POST body=$BODY expect=201 ;;
        dequeue) path='/api/bench-m-get?timeout=0' method=GET body="" expect=200 ;;
        batch) path=/api/bench-m-batch/batch method=POST body=$M_BATCH expect=201 ;;
        esac
        for round in $(seq 1 "$ROUNDS"); do
            order=(memory redis)
            ((round % 2)) || order=(redis memory)
            for backend in "${order[@]}"; do
                cpu=(--cpu "skiff=$M_PID")
                [ "$backend" = redis ] && cpu=("${CPU_A[@]}")
                bench wrk --url "http://127.0.0.1:${M_PORT_OF[$backend]}$path" --method "$method" --body "$body" --expect "$expect" \
                    --seconds "$SLICE" --connections "$CONNECTIONS" "${cpu[@]}" --json "$OUT/m-$backend-$phase-$round.json" >/dev/null
                # Batches pile up fast (a million messages a second is the goal): only the last round's stay.
                if [ "$phase" = batch ] && ((round < ROUNDS)); then
                    bench probe --port "${M_PORT_OF[$backend]}" --method POST --path /api/bench-m-batch/purge --timeout 120 >/dev/null
                fi
            done
        done
    done
    bench replica-state --port "$M_PORT" --pid "$M_PID" "${M_QUEUES[@]}" --json "$OUT/m-state-end.json" >/dev/null
    M_LEFT_MEMORY=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["ready"]["bench-m-get"])' "$OUT/m-state-end.json")
    M_LEFT_REDIS=$(rcli LLEN 'skiff:{bench-m-get}:ready')
    for queue in bench-m bench-m-get bench-m-batch; do
        bench probe --port "$M_PORT" --method POST --path "/api/$queue/purge" --timeout 120 >/dev/null
    done
    sleep 1
    bench replica-state --port "$M_PORT" --pid "$M_PID" "${M_QUEUES[@]}" --json "$OUT/m-state-purged.json" >/dev/null
    printf '{"partial": %s, "only": "%s", "rounds": %d, "seconds": %d, "connections": %d, "batch_size": %d, "prefill": %d, "body_bytes": %d, "dequeue_left": {"memory": %s, "redis": %s}}\n' \
        "$([ -n "$ONLY" ] && echo true || echo false)" "$ONLY" "$ROUNDS" "$SLICE" "$CONNECTIONS" "$BATCH_SIZE" "$M_PREFILL" \
        "$BODY_BYTES" "$M_LEFT_MEMORY" "$M_LEFT_REDIS" >"$OUT/m-meta.json"
    stop "$M_PID"
    drop_keys 'skiff:{bench-m}:*'
    drop_keys 'skiff:{bench-m-get}:*'
    drop_keys 'skiff:{bench-m-batch}:*'
    rcli SREM skiff:queues bench-m bench-m-get bench-m-batch >/dev/null
    settle
fi

# --- scaling: 1, 2 and 4 replicas on one Redis (issue 24) --------------------------------------

# Fresh replicas for each turn (an idle one's sweeps would count in Redis's CPU); the connections
# split over them, one wrk each, all at once; the enqueue of (a), then the dequeue of (b) on a queue
# pre-filled for that turn. The replica counts take turns in each round, reversed every other one.
if want scaling; then
    SC_COUNTS=(1 2 4)
    SC_PREFILL=$((SLICE * 150000 + 20000))
    [ "$SMOKE" = 1 ] && SC_PREFILL=$((SLICE * 50000))
    SC_LEFT=()
    log "scaling: ${SC_COUNTS[*]} replicas on one Redis, $CONNECTIONS connections split over them; enqueue, dequeue;" \
        "$ROUNDS round(s) of ${SLICE}s each"
    for round in $(seq 1 "$ROUNDS"); do
        order=("${SC_COUNTS[@]}")
        if ((round % 2 == 0)); then
            order=()
            for ((i = ${#SC_COUNTS[@]} - 1; i >= 0; i--)); do order+=("${SC_COUNTS[i]}"); done
        fi
        for replicas in "${order[@]}"; do
            ports=() pids=() cpu=(--cpu "redis=$REDIS_PID")
            for i in $(seq 1 "$replicas"); do
                port=$(free_port)
                start_skiff "scaling-$replicas-$round-$i" "$port"
                ports+=(--port "$port") pids+=("$LAST_PID") cpu+=(--cpu "skiff-$i=$LAST_PID")
            done
            bench wrk-spread "${ports[@]}" --path /api/bench-scale --method POST --body "$BODY" --expect 201 \
                --seconds "$SLICE" --connections "$CONNECTIONS" "${cpu[@]}" --json "$OUT/scaling-enqueue-$replicas-$round.json" >/dev/null
            bench prefill --redis-port "$REDIS_PORT" --format skiff --queue bench-scale-get --count "$SC_PREFILL" --body "$BODY" >/dev/null
            bench wrk-spread "${ports[@]}" --path '/api/bench-scale-get?timeout=0' --expect 200 \
                --seconds "$SLICE" --connections "$CONNECTIONS" "${cpu[@]}" --json "$OUT/scaling-dequeue-$replicas-$round.json" >/dev/null
            SC_LEFT+=("$(rcli LLEN 'skiff:{bench-scale-get}:ready')")
            for pid in "${pids[@]}"; do stop "$pid"; done
            drop_keys 'skiff:{bench-scale-get}:*'
            echo "  $replicas replica(s), round $round: $("$PYTHON" -c 'import json, sys; print(", ".join("%s %.0f req/s" % (name, json.load(open(path))["ok_per_second"]) for name, path in zip(("enqueue", "dequeue"), sys.argv[1:])))' \
                "$OUT/scaling-enqueue-$replicas-$round.json" "$OUT/scaling-dequeue-$replicas-$round.json")"
            [ "$SMOKE" = 1 ] || bench settle --pid "$REDIS_PID"
        done
    done
    drop_keys 'skiff:{bench-scale}:*'
    rcli SREM skiff:queues bench-scale bench-scale-get >/dev/null
    printf '{"partial": %s, "only": "%s", "rounds": %d, "seconds": %d, "connections": %d, "dequeue_left": [%s]}\n' \
        "$([ -n "$ONLY" ] && echo true || echo false)" "$ONLY" "$ROUNDS" "$SLICE" "$CONNECTIONS" "$(IFS=,; echo "${SC_LEFT[*]}")" \
        >"$OUT/scaling-meta.json"
    settle
fi

# --- (f) idle long-polls -----------------------------------------------------------------------

# Two steps (10 000 and 50 000 waits), each on a fresh replica, so what earlier scenarios or steps
# left in its allocator does not count; MAX_CONNECTIONS raised to fit. The larger step takes longer
# to open its waits: their timeout (and MAX_TIMEOUT) is longer, so none ends before the measuring does.
if want f; then
    for step in "$IDLE_CONNECTIONS:$IDLE_ASKED:60000:f-skiff" "$IDLE_CONNECTIONS_LARGE:$IDLE_ASKED_LARGE:180000:f-skiff-large"; do
        IFS=: read -r waits asked timeout_ms name <<<"$step"
        ((waits > 0)) || continue
        log "(f) $waits idle long-polls on one fresh replica, ${IDLE_SECONDS}s idle"
        PORT_C=$(free_port)
        start_skiff "skiff-$name" "$PORT_C" "$SKIFF" "" "redis://127.0.0.1:$REDIS_PORT" MAX_CONNECTIONS=$((waits + 1000)) \
            MAX_TIMEOUT="$timeout_ms"
        SKIFF_C_PID=$LAST_PID
        bench idle --port "$PORT_C" --pid "$SKIFF_C_PID" --redis-port "$REDIS_PORT" --connections "$waits" --asked "$asked" \
            --per-source "$IDLE_PER_SOURCE" --timeout-ms "$timeout_ms" --connect-seconds 120 \
            --idle-seconds "$IDLE_SECONDS" --json "$OUT/$name.json" >/dev/null
        stop "$SKIFF_C_PID"
        echo "  $("$PYTHON" -c 'import json, sys; r = json.load(open(sys.argv[1])); print("%d/%d waits open; RSS %.0f -> %.0f MB: %.1f KiB per waiter" % (r["connections_open"], r["connections_requested"], r["rss_before_bytes"] / 2**20, r["rss_waiting_bytes"] / 2**20, (r["rss_waiting_bytes"] - r["rss_before_bytes"]) / max(1, r["connections_open"]) / 1024))' "$OUT/$name.json")"
    done
fi

# --- (g) Redis memory per message --------------------------------------------------------------

if want g; then
    log "(g) Redis memory per queued 1 KiB message ($MEMORY_MESSAGES messages)"
    bench memory --port "$PORT_A" --redis-port "$REDIS_PORT" --count "$MEMORY_MESSAGES" --json "$OUT/g-memory.json" >/dev/null
    rcli DEL 'skiff:{bench-g}:ready' 'skiff:{bench-g}:seq' >/dev/null
fi

# --- (l) large messages, with and without a payload store (issue 23) ---------------------------

# Two replicas of their own on the run's Redis, each under its own key prefix: one offloads bodies
# larger than PAYLOADS_OFFLOAD_THRESHOLD_BYTES (its default, 262144) to a file:// store, the other
# has no store and keeps every body whole in Redis (MAX_MESSAGE_BYTES raised so that 4 MiB fits).
# The middle size is one byte over the threshold: a body is offloaded when it is larger. N (per
# replica and round) shrinks with the size: 4 MiB bodies fill Redis and the disk fast.
if want l; then
    L_SIZES=(1024 262145 4194304) L_CONNECTIONS=8
    if [ "$SMOKE" = 1 ]; then
        L_COUNTS=(200 20 4) L_ROUNDS=1
    else
        L_COUNTS=(10000 500 50) L_ROUNDS=2
    fi
    L_STORE=$WORK/payloads
    mkdir -p "$L_STORE"
    L_INLINE_PORT=$(free_port)
    start_skiff skiff-l-inline "$L_INLINE_PORT" "$SKIFF" skiffli "redis://127.0.0.1:$REDIS_PORT" MAX_MESSAGE_BYTES=8388608
    L_INLINE_PID=$LAST_PID
    L_OFFLOAD_PORT=$(free_port)
    start_skiff skiff-l-offload "$L_OFFLOAD_PORT" "$SKIFF" skifflo "redis://127.0.0.1:$REDIS_PORT" "PAYLOADS_STORE=file://$L_STORE" \
        PAYLOADS_URL_SECRET=bench-link-secret-of-at-least-32-bytes
    L_OFFLOAD_PID=$LAST_PID
    for i in "${!L_SIZES[@]}"; do
        log "(l) ${L_SIZES[i]}-byte bodies, with and without offload: ${L_COUNTS[i]} POSTs, then as many GETs (and, offloaded, as many through links), per replica and round"
        bench large --size "${L_SIZES[i]}" --count "${L_COUNTS[i]}" --rounds "$L_ROUNDS" --connections "$L_CONNECTIONS" --links --topic-copies 2 \
            --redis-port "$REDIS_PORT" --queue bench-l --cpu "redis=$REDIS_PID" \
            --target "inline=$L_INLINE_PORT,$L_INLINE_PID,skiffli" --target "offload=$L_OFFLOAD_PORT,$L_OFFLOAD_PID,skifflo,$L_STORE" \
            --json "$OUT/l-${L_SIZES[i]}.json" >/dev/null
        [ "$SMOKE" = 1 ] || bench settle --pid "$L_INLINE_PID" --pid "$L_OFFLOAD_PID" --pid "$REDIS_PID"
    done
    stop "$L_INLINE_PID"
    stop "$L_OFFLOAD_PID"
    drop_keys 'skiffli:*'
    drop_keys 'skifflo:*'
    rm -rf "$L_STORE"
    printf '{"partial": %s, "only": "%s"}\n' "$([ -n "$ONLY" ] && echo true || echo false)" "$ONLY" >"$OUT/l-meta.json"
    settle
fi

# --- (tr) tracing: off, on, and before it (issue 22) --------------------------------------------

# Replicas of their own on the run's Redis, each under its own key prefix, each with its queue
# pre-filled for the GETs: `off` (this binary as configured by default), `routed` (FAST_PATH=false,
# every request through the router as with tracing on), `sampled` (OTEL_EXPORTER_OTLP_ENDPOINT at
# the harness's OTLP/HTTP sink, a tenth of the traces recorded, as terraform deploys it), `on`
# (every request recorded) and, with a baseline binary, `before` (that binary). wrk as in (a) and (b); the order reversed every round.
if want tr; then
    TR_ROUNDS=$((ROUNDS * 2)) TR_SECONDS=$SLICE
    TR_PREFILL=$((TR_SECONDS * TR_ROUNDS * 40000 + 20000))
    [ "$SMOKE" = 1 ] && TR_PREFILL=$((TR_SECONDS * TR_ROUNDS * 30000))
    TR_SINK_PORT=$(free_port)
    # Started directly, not through `bench`, so that its PID is the Python process whose CPU counts.
    PYTHONPATH=$BENCH_PYTHONPATH "$PYTHON" -m skiffbench otlp-sink --port "$TR_SINK_PORT" >"$WORK/otlp-sink.log" 2>&1 </dev/null &
    TR_SINK_PID=$!
    PIDS+=("$TR_SINK_PID")
    wait_http "$TR_SINK_PORT"
    declare -A TR_PORT=() TR_PID=()
    TR_TARGETS=(off routed sampled on)
    [ -n "$BASELINE" ] && TR_TARGETS=(before off routed sampled on)
    for target in "${TR_TARGETS[@]}"; do
        TR_PORT[$target]=$(free_port)
        case $target in
        off) start_skiff "skiff-tr-off" "${TR_PORT[$target]}" "$SKIFF" skifftroff ;;
        # Tracing off, and every request through the router as with tracing on: what the fast path saves.
        routed) start_skiff "skiff-tr-routed" "${TR_PORT[$target]}" "$SKIFF" skifftrrouted "redis://127.0.0.1:$REDIS_PORT" \
            FAST_PATH=false ;;
        # Tracing on as terraform deploys it: a tenth of the traces recorded.
        sampled) start_skiff "skiff-tr-sampled" "${TR_PORT[$target]}" "$SKIFF" skifftrsampled "redis://127.0.0.1:$REDIS_PORT" \
            "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$TR_SINK_PORT" OTEL_TRACES_SAMPLER=parentbased_traceidratio \
            OTEL_TRACES_SAMPLER_ARG=0.1 ;;
        on) start_skiff "skiff-tr-on" "${TR_PORT[$target]}" "$SKIFF" skifftron "redis://127.0.0.1:$REDIS_PORT" \
            "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$TR_SINK_PORT" ;;
        before) start_skiff "skiff-tr-before" "${TR_PORT[$target]}" "$SKIFF_BASELINE" skifftrbefore ;;
        esac
        TR_PID[$target]=$LAST_PID
        bench prefill --redis-port "$REDIS_PORT" --format skiff --prefix "skifftr$target" --queue bench-tr-get \
            --count "$TR_PREFILL" --body "$BODY" >/dev/null
    done
    log "(tr) tracing ${TR_TARGETS[*]}: enqueue and dequeue, $CONNECTIONS connections, $TR_ROUNDS rounds of ${TR_SECONDS}s"
    for round in $(seq 1 "$TR_ROUNDS"); do
        order=("${TR_TARGETS[@]}")
        if ((round % 2 == 0)); then
            order=()
            for ((i = ${#TR_TARGETS[@]} - 1; i >= 0; i--)); do order+=("${TR_TARGETS[i]}"); done
        fi
        for target in "${order[@]}"; do
            cpu=(--cpu "skiff=${TR_PID[$target]}" --cpu "redis=$REDIS_PID")
            [ "$target" = on ] || [ "$target" = sampled ] && cpu+=(--cpu "sink=$TR_SINK_PID")
            bench wrk --url "http://127.0.0.1:${TR_PORT[$target]}/api/bench-tr" --method POST --body "$BODY" --expect 201 \
                --seconds "$TR_SECONDS" --connections "$CONNECTIONS" "${cpu[@]}" \
                --json "$OUT/tr-$target-enqueue-$round.json" >/dev/null
            bench wrk --url "http://127.0.0.1:${TR_PORT[$target]}/api/bench-tr-get?timeout=0" --expect 200 \
                --seconds "$TR_SECONDS" --connections "$CONNECTIONS" "${cpu[@]}" \
                --json "$OUT/tr-$target-dequeue-$round.json" >/dev/null
        done
    done
    bench probe --port "$TR_SINK_PORT" --path /stats --print-body >"$OUT/tr-sink.json" || true
    printf '{"partial": %s, "only": "%s", "rounds": %d, "seconds": %d}\n' "$([ -n "$ONLY" ] && echo true || echo false)" \
        "$ONLY" "$TR_ROUNDS" "$TR_SECONDS" >"$OUT/tr-meta.json"
    for target in "${TR_TARGETS[@]}"; do
        stop "${TR_PID[$target]}"
        drop_keys "skifftr$target:*"
    done
    stop "$TR_SINK_PID"
    settle
fi

# --- profile -----------------------------------------------------------------------------------

if want profile && [ "$PROFILE" = 1 ] && command -v perf >/dev/null && perf stat -e cpu-clock true >/dev/null 2>&1; then
    log "profiling the replica with perf (enqueue, dequeue, long-poll consumers)"
    bench prefill --redis-port "$REDIS_PORT" --format skiff --queue bench-p --count 400000 --body "$BODY" >/dev/null
    for kind in enqueue dequeue long-poll; do
        case $kind in
        enqueue)
            bench wrk --url "http://127.0.0.1:$PORT_A/api/bench-p2" --method POST --body "$BODY" --expect 201 \
                --seconds 8 --connections "$CONNECTIONS" --json "$OUT/profile-$kind.json" >/dev/null &
            what=() ;;
        dequeue)
            bench wrk --url "http://127.0.0.1:$PORT_A/api/bench-p?timeout=0" --expect 200 \
                --seconds 8 --connections "$CONNECTIONS" --json "$OUT/profile-$kind.json" >/dev/null &
            what=() ;;
        long-poll)
            bench latency --mode skiff --produce-port "$PORT_A" --consume-port "$PORT_A" --queue bench-p3 \
                --rate $((RATE / 10)) --seconds 7 --warmup 0 --producers "$PRODUCERS" --consumers "$CONSUMERS" \
                --json "$OUT/profile-$kind.json" >/dev/null &
            what=(--what "$((RATE / 10)) msg/s went through it as in (c′): POSTs, and $CONSUMERS consumers in long-polls") ;;
        esac
        load_job=$!
        sleep 1.5
        perf record -F 999 -e cpu-clock -g -p "$SKIFF_A_PID" -o "$OUT/perf-$kind.data" -- sleep 5 \
            >"$WORK/perf-$kind.log" 2>&1 || true
        wait "$load_job" || true
        : >"$OUT/perf-$kind.what"
        if ((${#what[@]})); then printf '%s\n' "${what[@]}" >"$OUT/perf-$kind.what"; fi
        settle
    done
    rcli DEL 'skiff:{bench-p}:ready' 'skiff:{bench-p}:seq' 'skiff:{bench-p2}:ready' 'skiff:{bench-p2}:seq' \
        'skiff:{bench-p3}:ready' 'skiff:{bench-p3}:seq' >/dev/null
fi

# --- scale-out: many queues on one Redis and on a Redis Cluster (issue 18) ---------------------

# The same load through the same number of replicas against: the run's Redis (`single`), a Redis
# Cluster of 1 primary (`cluster-1`: the cluster's layout and client without a second shard), one
# of 3 primaries (`cluster-3`), and the 3 primaries with the whole load on one queue
# (`cluster-3-hot`: one queue is one slot), then on that queue made partitioned (`cluster-3-hot-p3`:
# 3 partitions, 3 slots; the name is one whose partitions hash to the 3 primaries, see
# skiffbench/scaleout.py's HOT_QUEUE; its own key prefix, as partitions cannot be taken back).
# Smoke: `single`, `cluster-3` and `cluster-3-hot-p3`, one short round each.
# The layouts take turns in each round (the order reversed every other round); each turn starts
# its replicas afresh, so that no idle replica's sweeps land on another layout's Redis.
SO_QUEUES=48 SO_BATCH=50 SO_REPLICAS=2 SO_CONNECTIONS=48 SO_PREFIX=skiffso
SO_HOT_QUEUE_PREFIX=bench-hot3- SO_HOT_PARTITIONS=3
if [ "$SMOKE" = 1 ]; then
    SO_LAYOUTS=(single cluster-3 cluster-3-hot-p3) SO_ROUNDS=1 SO_WARMUP=0 SO_BACKLOG=100
else
    # Short rounds, many of them: the machine is shared, and another user's load comes in bursts.
    SO_LAYOUTS=(single cluster-1 cluster-3 cluster-3-hot cluster-3-hot-p3) SO_ROUNDS=4 SO_WARMUP=1 SO_BACKLOG=200
fi
SO_SECONDS=$(((RUN_SECONDS + SO_ROUNDS - 1) / SO_ROUNDS))

# start_cluster PRIMARIES: a Redis Cluster of that many primaries and no replicas on free ports
# (stopped at exit); sets CLUSTER_URL and CLUSTER_PORTS (comma-separated).
start_cluster() {
    local primaries=$1 base dir=$WORK/cluster-$1
    base=$(bench cluster-ports --count "$primaries")
    CLUSTERS+=("$dir")
    "$ROOT/scripts/redis-cluster.sh" start --primaries "$primaries" --replicas-per-primary 0 --base-port "$base" \
        --dir "$dir" 2>>"$WORK/redis-cluster.log"
    CLUSTER_URL=$("$ROOT/scripts/redis-cluster.sh" url --base-port "$base" --primaries "$primaries" --replicas-per-primary 0)
    CLUSTER_PORTS=$(seq -s, "$base" $((base + primaries - 1)))
}

if want scale-out; then
    SO_STARTED=$SECONDS
    log "scale-out: ${SO_LAYOUTS[*]}; $SO_QUEUES queues, batches of $SO_BATCH, $SO_REPLICAS replicas, $SO_ROUNDS round(s) of ${SO_SECONDS}s"
    # Only the scale-out replicas may work on the run's Redis meanwhile (its CPU is measured); nothing
    # after this scenario needs replica A or webdis.
    stop "$SKIFF_A_PID"
    stop "$WEBDIS_PID"
    declare -A SO_URL=([single]="redis://127.0.0.1:$REDIS_PORT") SO_NODES=([single]=$REDIS_PORT)
    for layout in "${SO_LAYOUTS[@]}"; do
        case $layout in
        cluster-1)
            start_cluster 1
            SO_URL[$layout]=$CLUSTER_URL SO_NODES[$layout]=$CLUSTER_PORTS ;;
        cluster-3)
            start_cluster 3
            SO_URL[$layout]=$CLUSTER_URL SO_NODES[$layout]=$CLUSTER_PORTS
            for hot in cluster-3-hot cluster-3-hot-p3; do SO_URL[$hot]=$CLUSTER_URL SO_NODES[$hot]=$CLUSTER_PORTS; done ;;
        esac
    done
    for round in $(seq 1 "$SO_ROUNDS"); do
        order=("${SO_LAYOUTS[@]}")
        if ((round % 2 == 0)); then
            order=()
            for ((i = ${#SO_LAYOUTS[@]} - 1; i >= 0; i--)); do order+=("${SO_LAYOUTS[i]}"); done
        fi
        for layout in "${order[@]}"; do
            ports=() pids=() cpu=() logs=()
            queues=$SO_QUEUES queue_prefix=bench-so- backlog=$SO_BACKLOG cluster=() partitions=1 key_prefix=$SO_PREFIX
            case $layout in
            cluster-3-hot) queues=1 queue_prefix=$SO_HOT_QUEUE_PREFIX backlog=$((SO_BACKLOG * 10)) ;;
            cluster-3-hot-p3)
                queues=1 queue_prefix=$SO_HOT_QUEUE_PREFIX backlog=$((SO_BACKLOG * 10))
                partitions=$SO_HOT_PARTITIONS key_prefix=${SO_PREFIX}p ;;
            esac
            [ "$layout" = single ] || cluster=(--cluster)
            for i in $(seq 1 "$SO_REPLICAS"); do
                port=$(free_port)
                start_skiff "so-$layout-$round-$i" "$port" "$SKIFF" "$key_prefix" "${SO_URL[$layout]}"
                ports+=("$port") pids+=("$LAST_PID") cpu+=(--cpu "skiff-$i=$LAST_PID") logs+=("$WORK/so-$layout-$round-$i.log")
            done
            bench scale-out --label "$layout" --ports "$(IFS=,; echo "${ports[*]}")" --redis-ports "${SO_NODES[$layout]}" \
                "${cluster[@]}" --queues "$queues" --queue-prefix "$queue_prefix" --batch "$SO_BATCH" --body "$BODY" \
                --partitions "$partitions" --key-prefix "$key_prefix" \
                --backlog "$backlog" --seconds "$SO_SECONDS" --warmup "$SO_WARMUP" --connections "$SO_CONNECTIONS" \
                "${cpu[@]}" --json "$OUT/scale-out-$layout-$round.json" >/dev/null
            for pid in "${pids[@]}"; do stop "$pid"; done
            bench scale-out-logs --json "$OUT/scale-out-$layout-$round.json" "${logs[@]}"
            echo "  $layout round $round: $("$PYTHON" -c 'import json, sys; r = json.load(open(sys.argv[1])); print("%.0f msg/s, statuses %s" % ((r["sent"] + r["received"]) / 2 / max(r["wrk"]["seconds"], 1e-9), r["wrk"]["statuses"]))' "$OUT/scale-out-$layout-$round.json")"
        done
    done
    for dir in "${CLUSTERS[@]}"; do "$ROOT/scripts/redis-cluster.sh" stop --dir "$dir" 2>>"$WORK/redis-cluster.log"; done
    CLUSTERS=()
    drop_keys "$SO_PREFIX:*"
    printf '{"partial": %s, "queue_prefix": "bench-so-", "body_bytes": %d, "seconds_total": %d}\n' \
        "$([ -n "$ONLY" ] && echo true || echo false)" "$BODY_BYTES" $((SECONDS - SO_STARTED)) >"$OUT/scale-out.json"
fi

# --- report ------------------------------------------------------------------------------------

"$PYTHON" - "$OUT/machine.json" <<'EOF'
import json, sys
machine = json.load(open(sys.argv[1]))
machine["load_end"] = open("/proc/loadavg").read().split()[:3]
json.dump(machine, open(sys.argv[1], "w"), indent=1)
EOF
write_report
FAILED=0
