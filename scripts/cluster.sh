#!/usr/bin/env bash
# The local Skiff cluster: Redis, N Skiff replicas and an HAProxy round-robin
# proxy in front of them, on the same ports in both modes.
#
#   scripts/cluster.sh up              start (or converge) the cluster, wait until healthy, print URLs
#   scripts/cluster.sh down            stop exactly what `up` started
#   scripts/cluster.sh status          health of every component (exit 1 if any is unhealthy)
#   scripts/cluster.sh logs [NAME] [-f]  logs of all components, or of redis|proxy|skiff-N
#   scripts/cluster.sh kill N          kill -9 replica N (it stays down until `start N`)
#   scripts/cluster.sh start N         start replica N again and wait until it is healthy
#   scripts/cluster.sh restart-redis   kill -9 Redis and start it again on the same data
#                                      (`--graceful`: SIGTERM instead)
#   scripts/cluster.sh kill-redis      kill -9 Redis; it stays down until `start-redis`
#   scripts/cluster.sh start-redis     start Redis again on the same data and wait for PONG
#   scripts/cluster.sh restart-proxy   kill -9 HAProxy and start it again (`--graceful`:
#                                      soft stop with SIGUSR1, in-flight requests finish)
#   scripts/cluster.sh pause N         SIGSTOP replica N (native mode); `resume N`: SIGCONT
#   scripts/cluster.sh configure N [--reset] [KEY=VALUE...]
#                                      native mode: extra environment for replica N only
#                                      (e.g. REDIS_URL=redis://127.0.0.1:7001, or
#                                      LD_PRELOAD=...libfaketime... FAKETIME=+2h), kept in
#                                      .cluster/overrides/skiff-N.env and applied by the next
#                                      `start N` or `up` (a running replica restarts);
#                                      `--reset` drops the earlier ones; `down` drops all
#   scripts/cluster.sh clean           remove Redis data and logs (cluster must be down)
#   scripts/cluster.sh compose-override N  print the compose file it generates for N replicas
#                                      (used by scripts/check-infra.sh to validate it)
#
# Mode: Docker Compose when a Docker engine answers (`docker info`), otherwise
# native processes from Debian packages (redis-server, haproxy), installed with
# apt if missing, plus a release build of skiff. CLUSTER_MODE=docker|native
# forces one.
#
# Both modes read the same settings: deploy/skiff.env (replica settings),
# deploy/redis.conf, and deploy/haproxy.cfg.tmpl rendered by
# deploy/render-haproxy.sh.
#
# Environment (read by `up`, remembered in .cluster/cluster.env for the other
# subcommands):
#   REPLICAS=3            number of Skiff replicas
#   PROXY_PORT=8080       the proxy
#   REPLICA_BASE_PORT=8080  replica N listens on REPLICA_BASE_PORT + N (8081, 8082, ...)
#   REDIS_PORT_HOST=6379  Redis, on 127.0.0.1
#   PROXY_STATS_PORT=8404 HAProxy's statistics page
#   REDIS_APPENDFSYNC=everysec  or `always` (no acknowledged write lost on a Redis crash)
#   SKIFF_BIN=path        native: run this binary instead of building .build/release/skiff
#   UP_TIMEOUT=120        seconds to wait for the cluster to become healthy
#   CLUSTER_STATE_DIR=.cluster  where native state lives (make test runs its own cluster there)
#   any key of deploy/skiff.env (e.g. CLAIM_LEASE_MS=3000) overrides that file
#
# Native state lives in .cluster/ (gitignored): pids/, logs/, redis/ (AOF and
# RDB files), haproxy/haproxy.cfg (the rendered proxy configuration),
# overrides/ (per-replica environment from `configure`).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${CLUSTER_STATE_DIR:-$ROOT/.cluster}
PIDS=$STATE/pids
LOGS=$STATE/logs
SETTINGS_FILE=$STATE/cluster.env
OVERRIDES=$STATE/overrides
COMPOSE_FILE=$ROOT/docker-compose.yml
# Replicas the compose file defines statically; more are generated.
COMPOSE_STATIC_REPLICAS=3

log() { printf '%s\n' "cluster: $*" >&2; }
die() {
    printf '%s\n' "cluster: error: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 2
}

# --- Settings -----------------------------------------------------------------

# load_settings FROM_ENV: the cluster's settings. `up` (FROM_ENV=1) takes them
# from the environment and defaults; every other subcommand uses what the last
# `up` recorded, so `start 2` after `REDIS_PORT_HOST=6380 ... up` still talks to
# the right Redis.
load_settings() {
    local from_env=$1
    if [[ $from_env == 0 && -f $SETTINGS_FILE ]]; then
        # shellcheck source=/dev/null
        source "$SETTINGS_FILE"
    else
        MODE=${CLUSTER_MODE:-}
        REPLICAS=${REPLICAS:-3}
        PROXY_PORT=${PROXY_PORT:-8080}
        PROXY_STATS_PORT=${PROXY_STATS_PORT:-8404}
        REPLICA_BASE_PORT=${REPLICA_BASE_PORT:-8080}
        REDIS_PORT_HOST=${REDIS_PORT_HOST:-6379}
        REDIS_APPENDFSYNC=${REDIS_APPENDFSYNC:-everysec}
    fi
    UP_TIMEOUT=${UP_TIMEOUT:-120}
    if ! [[ $REPLICAS =~ ^[0-9]+$ ]] || ((REPLICAS < 1 || REPLICAS > 99)); then
        die "REPLICAS must be 1..99, got '$REPLICAS'"
    fi
    local port
    for port in "$PROXY_PORT" "$PROXY_STATS_PORT" "$REPLICA_BASE_PORT" "$REDIS_PORT_HOST"; do
        if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then die "invalid port '$port'"; fi
    done
    case $REDIS_APPENDFSYNC in
        always | everysec | no) ;;
        *) die "REDIS_APPENDFSYNC must be always, everysec or no, got '$REDIS_APPENDFSYNC'" ;;
    esac
}

save_settings() {
    mkdir -p "$STATE"
    {
        echo "# Written by scripts/cluster.sh up; read by its other subcommands."
        printf 'MODE=%q\n' "$MODE"
        printf 'REPLICAS=%q\n' "$REPLICAS"
        printf 'PROXY_PORT=%q\n' "$PROXY_PORT"
        printf 'PROXY_STATS_PORT=%q\n' "$PROXY_STATS_PORT"
        printf 'REPLICA_BASE_PORT=%q\n' "$REPLICA_BASE_PORT"
        printf 'REDIS_PORT_HOST=%q\n' "$REDIS_PORT_HOST"
        printf 'REDIS_APPENDFSYNC=%q\n' "$REDIS_APPENDFSYNC"
        # The binary `up` resolved (native): `start N` reuses it, never builds.
        printf 'SKIFF=%q\n' "${SKIFF:-}"
    } >"$SETTINGS_FILE"
}

replica_port() { echo $((REPLICA_BASE_PORT + $1)); }

# Writes .cluster/skiff.env: deploy/skiff.env with every key that is set in the
# caller's environment replaced by that value. Both modes use the result.
write_replica_env() {
    local key value
    mkdir -p "$STATE"
    {
        echo "# Generated by scripts/cluster.sh from deploy/skiff.env and the caller's environment."
        while IFS= read -r line || [[ -n $line ]]; do
            [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
            [[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || die "deploy/skiff.env: cannot parse line '$line'"
            key=${BASH_REMATCH[1]}
            value=${BASH_REMATCH[2]}
            if [[ -n ${!key+set} ]]; then value=${!key}; fi
            [[ $value =~ ^[^[:space:]\"\'\$\`\\]*$ ]] || die "$key: value '$value' must not contain spaces, quotes or \$"
            printf '%s=%s\n' "$key" "$value"
        done <"$ROOT/deploy/skiff.env"
    } >"$STATE/skiff.env.tmp"
    mv "$STATE/skiff.env.tmp" "$STATE/skiff.env"
}

# --- Mode -----------------------------------------------------------------------

docker_engine_answers() {
    command -v docker >/dev/null 2>&1 && timeout 15 docker info >/dev/null 2>&1
}

choose_mode() {
    case ${MODE:-} in
        docker | native) return ;;
        "") if docker_engine_answers; then MODE=docker; else MODE=native; fi ;;
        *) die "CLUSTER_MODE must be docker or native, got '$MODE'" ;;
    esac
}

# --- Process bookkeeping (native mode) -----------------------------------------
# A pid file holds "PID STARTTIME": the start time (in clock ticks since boot,
# from /proc/PID/stat) tells our process apart from an unrelated one that
# reuses the PID later, so `down` can never kill anything it did not start.

proc_starttime() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    # Fields after the ")" that closes the command name: state is the 1st,
    # starttime the 20th (field 22 of the whole line).
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    [[ $1 != Z ]] || return 1 # a zombie is already dead
    echo "${20}"
}

# pid_of NAME: prints the PID if NAME's recorded process is still alive.
pid_of() {
    local file=$PIDS/$1.pid pid start
    [[ -f $file ]] || return 1
    read -r pid start <"$file" || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ $(proc_starttime "$pid" 2>/dev/null) == "$start" ]] || return 1
    echo "$pid"
}

is_running() { pid_of "$1" >/dev/null; }

# spawn NAME COMMAND...: starts COMMAND detached (own session, so a terminal's
# Ctrl-C or hang-up does not reach it), output appended to logs/NAME.log.
spawn() {
    local name=$1
    shift
    mkdir -p "$PIDS" "$LOGS"
    printf '\n==== %s: starting %s ====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" >>"$LOGS/$name.log"
    # Without job control the subshell is not a process-group leader, so
    # setsid calls setsid(2) and execs in place: $! is the server's own PID.
    (
        # A long-lived server must not inherit any descriptor beyond 0-2: not
        # fd 9 (this script's lock), and not a pipe of whoever ran us (a test
        # harness reading our output until EOF would wait forever).
        for fd in "/proc/$BASHPID/fd"/*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null; fi
        done
        cd "$ROOT" && exec setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null
    ) &
    local pid=$!
    local start
    start=$(proc_starttime "$pid") || die "$name exited immediately; see $LOGS/$name.log"
    echo "$pid $start" >"$PIDS/$name.pid"
}

# stop_process NAME SIGNAL TIMEOUT: signal, wait up to TIMEOUT seconds, then
# SIGKILL. Only ever touches the process recorded in NAME's pid file.
stop_process() {
    local name=$1 signal=$2 timeout=$3 pid deadline
    if pid=$(pid_of "$name"); then
        kill "-$signal" "$pid" 2>/dev/null || true
        deadline=$((SECONDS + timeout))
        while is_running "$name" && ((SECONDS < deadline)); do sleep 0.1; done
        if is_running "$name"; then
            log "$name (pid $pid) ignored SIG$signal for ${timeout}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            while is_running "$name"; do sleep 0.1; done
        fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$PIDS/$name.pid" "$PIDS/$name.spec"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

require_free_port() {
    local name=$1 port=$2 deadline=$((SECONDS + 10))
    # A process we just killed may still hold its port for a moment: /proc shows the main
    # thread as a zombie while other threads (Redis's fsync threads, NIO's event loops) are
    # still exiting, and the listening socket closes only with the last of them.
    while port_in_use "$port" && ((SECONDS < deadline)); do sleep 0.1; done
    if port_in_use "$port"; then
        die "port $port (for $name) is already in use by a process this script did not start; stop it or choose another port (see the header of scripts/cluster.sh)"
    fi
}

tail_log() {
    if [[ -f $LOGS/$1.log ]]; then tail -n "${2:-20}" "$LOGS/$1.log" | sed "s/^/    $1| /" >&2; fi
}

# --- Packages (native mode) ----------------------------------------------------

package_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# ensure_packages PKG...: installs the missing ones with apt, without starting
# their system services (a packaged redis-server or haproxy started by the
# install would take the very ports this cluster uses).
ensure_packages() {
    local missing=() pkg
    for pkg in "$@"; do package_installed "$pkg" || missing+=("$pkg"); done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "missing ${missing[*]}: run as root or install them"
        sudo=(sudo)
    fi
    log "installing ${missing[*]} with apt"
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        # Debian's documented switch: exit status 101 = "do not start services".
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        made_policy=1
    fi
    local status=0
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have no package lists yet: update once on failure.
    if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1; then
        "${sudo[@]}" apt-get update -q >>"$STATE/apt.log" 2>&1 &&
            "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$STATE/apt.log" 2>&1 || status=$?
    fi
    if ((made_policy)); then "${sudo[@]}" rm -f "$policy"; fi
    ((status == 0)) || {
        tail -n 20 "$STATE/apt.log" >&2
        die "apt-get install ${missing[*]} failed (full output in $STATE/apt.log)"
    }
}

# --- The skiff binary (native mode) -------------------------------------------

# Sets SKIFF: $SKIFF_BIN if given, otherwise .build/release/skiff, built first
# when it is missing or older than any source file.
resolve_binary() {
    if [[ -n ${SKIFF_BIN:-} ]]; then
        [[ -x $SKIFF_BIN ]] || die "SKIFF_BIN=$SKIFF_BIN is not an executable file"
        SKIFF=$(cd "$(dirname "$SKIFF_BIN")" && pwd)/$(basename "$SKIFF_BIN")
        return
    fi
    SKIFF=$ROOT/.build/release/skiff
    local stale=""
    if [[ -x $SKIFF ]]; then
        stale=$(cd "$ROOT" && find Package.swift Sources -newer "$SKIFF" -print -quit 2>/dev/null)
        [[ -z $stale ]] && return
        log "$SKIFF is older than $stale: rebuilding"
    else
        log "$SKIFF not found: building it"
    fi
    command -v swift >/dev/null || die "swift not found: install a Swift toolchain, or set SKIFF_BIN"
    ensure_packages libhiredis-dev pkg-config
    (cd "$ROOT" && swift build -c release --product skiff) || die "swift build failed"
    [[ -x $SKIFF ]] || die "swift build did not produce $SKIFF"
}

# --- Native components -----------------------------------------------------------

redis_cli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT_HOST" "$@"; }

redis_ready() { [[ $(redis_cli ping 2>/dev/null) == PONG ]]; }

# Works in both modes (docker: redis-cli inside the container, since the host
# may not have one).
redis_ping() {
    if [[ $MODE == docker ]]; then
        [[ $(compose exec -T redis redis-cli ping 2>/dev/null | tr -d '\r') == PONG ]]
    else
        redis_ready
    fi
}

start_redis() {
    if is_running redis; then
        # Converge the one setting that can change at run time.
        redis_cli config set appendfsync "$REDIS_APPENDFSYNC" >/dev/null 2>&1 || true
        return
    fi
    require_free_port redis "$REDIS_PORT_HOST"
    mkdir -p "$STATE/redis"
    spawn redis redis-server "$ROOT/deploy/redis.conf" \
        --port "$REDIS_PORT_HOST" --bind 127.0.0.1 --protected-mode yes \
        --dir "$STATE/redis" --appendfsync "$REDIS_APPENDFSYNC"
    log "started redis on 127.0.0.1:$REDIS_PORT_HOST (appendfsync $REDIS_APPENDFSYNC, pid $(pid_of redis || echo '?'))"
}

wait_redis() {
    local deadline=$((SECONDS + UP_TIMEOUT))
    until redis_ready; do
        is_running redis || {
            tail_log redis
            die "redis exited; see $LOGS/redis.log"
        }
        ((SECONDS < deadline)) || {
            tail_log redis
            die "redis did not answer PING within ${UP_TIMEOUT}s"
        }
        sleep 0.2
    done
}

# The exact environment a replica runs with. A clean environment (env -i), so
# a stray REDIS_HOST or LOG_LEVEL in the caller's shell cannot change a
# replica behind the settings' back, just like in a container.
replica_env() {
    local n=$1 line
    echo "PATH=/usr/local/bin:/usr/bin:/bin"
    while IFS= read -r line; do
        [[ $line =~ ^[[:space:]]*(#|$) ]] || echo "$line"
    done <"$STATE/skiff.env"
    # Loopback only, like every other native component (compose replicas
    # listen on their container's interfaces instead).
    echo "HOST=127.0.0.1"
    echo "PORT=$(replica_port "$n")"
    echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT_HOST"
    echo "REPLICA_ID=skiff-$n"
    # Last, so they win (env applies its assignments in order): `configure N`.
    if [[ -f $OVERRIDES/skiff-$n.env ]]; then
        while IFS= read -r line; do
            [[ $line =~ ^[[:space:]]*(#|$) ]] || echo "$line"
        done <"$OVERRIDES/skiff-$n.env"
    fi
}

# What a replica was started with; `up` restarts a replica whose spec changed
# or whose binary was rebuilt since.
replica_spec() { printf '%s\n' "BIN=$SKIFF" "$(replica_env "$1")"; }

replica_healthy() { curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$(replica_port "$1")/health" 2>/dev/null; }

start_replica() {
    local n=$1 name=skiff-$1 env_lines=()
    if is_running "$name"; then
        if [[ -f $PIDS/$name.spec && $(replica_spec "$n") == "$(cat "$PIDS/$name.spec")" && ! $SKIFF -nt $PIDS/$name.spec ]]; then
            return
        fi
        log "$name: binary or settings changed, restarting it"
        stop_process "$name" TERM 15
    fi
    require_free_port "$name" "$(replica_port "$n")"
    mapfile -t env_lines < <(replica_env "$n")
    spawn "$name" env -i "${env_lines[@]}" "$SKIFF" serve
    replica_spec "$n" >"$PIDS/$name.spec"
    log "started $name on 127.0.0.1:$(replica_port "$n") (pid $(pid_of "$name" || echo '?'))"
}

wait_replica() {
    local n=$1 name=skiff-$1 deadline=$((SECONDS + UP_TIMEOUT))
    until replica_healthy "$n"; do
        is_running "$name" || {
            tail_log "$name"
            die "$name exited; see $LOGS/$name.log"
        }
        ((SECONDS < deadline)) || {
            tail_log "$name"
            die "$name did not answer GET /health with 200 within ${UP_TIMEOUT}s"
        }
        sleep 0.2
    done
}

render_proxy_config() {
    PROXY_PORT=$PROXY_PORT PROXY_STATS_PORT=$PROXY_STATS_PORT REPLICA_BASE_PORT=$REPLICA_BASE_PORT \
        sh "$ROOT/deploy/render-haproxy.sh" "$1" "$REPLICAS" "$ROOT/deploy/haproxy.cfg.tmpl"
}

start_proxy() {
    local config=$STATE/haproxy/haproxy.cfg
    mkdir -p "$STATE/haproxy"
    render_proxy_config native >"$config.new"
    haproxy -c -q -f "$config.new" >"$STATE/haproxy/check.log" 2>&1 || {
        cat "$STATE/haproxy/check.log" >&2
        die "rendered HAProxy configuration is invalid: $config.new"
    }
    if is_running proxy; then
        if cmp -s "$config.new" "$config"; then
            rm -f "$config.new"
            return
        fi
        log "proxy configuration changed, restarting the proxy"
        stop_process proxy USR1 10 # USR1: soft stop, lets in-flight requests finish
    fi
    mv "$config.new" "$config"
    require_free_port proxy "$PROXY_PORT"
    require_free_port proxy-stats "$PROXY_STATS_PORT"
    # -db: stay in the foreground (no daemon fork), so the pid file is right
    # and logs to stdout land in .cluster/logs/proxy.log.
    spawn proxy haproxy -db -f "$config"
    log "started proxy on 127.0.0.1:$PROXY_PORT (pid $(pid_of proxy || echo '?'))"
}

# Prints "skiff-1 UP" ... as HAProxy sees its servers.
proxy_server_states() {
    curl -fsS -m 2 "http://127.0.0.1:$PROXY_STATS_PORT/stats;csv" 2>/dev/null |
        awk -F, '$1 == "skiff_replicas" && $2 != "BACKEND" { print $2, $18 }'
}

wait_proxy() {
    local deadline=$((SECONDS + UP_TIMEOUT)) n
    until curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$PROXY_PORT/health" 2>/dev/null; do
        [[ $MODE == docker ]] || is_running proxy || {
            tail_log proxy
            die "proxy exited; see $LOGS/proxy.log"
        }
        ((SECONDS < deadline)) || {
            tail_log proxy
            die "proxy did not answer GET /health with 200 within ${UP_TIMEOUT}s"
        }
        sleep 0.2
    done
    # Also wait until HAProxy's own health checks have every replica in
    # rotation, so a test starting right after `up` sees the whole cluster.
    for ((n = 1; n <= REPLICAS; n++)); do wait_in_rotation "$n" "$deadline"; done
}

# proxy_server_state N: HAProxy's status of replica N, e.g. "UP", "UP 1/3"
# (starting, or one failed check), "DOWN".
proxy_server_state() {
    proxy_server_states | awk -v s="skiff-$1" '$1 == s { $1 = ""; sub(/^ /, ""); print }'
}

# wait_in_rotation N DEADLINE: until HAProxy's own checks report replica N
# fully UP (not merely "UP 1/3", the state before its first check).
wait_in_rotation() {
    until [[ $(proxy_server_state "$1") == UP ]]; do
        ((SECONDS < $2)) || die "HAProxy has not put skiff-$1 in rotation (state: $(proxy_server_state "$1"))"
        sleep 0.2
    done
}

native_up() {
    command -v curl >/dev/null || ensure_packages curl
    ensure_packages redis-server redis-tools haproxy
    command -v setsid >/dev/null || die "setsid (util-linux) is required"
    resolve_binary
    save_settings
    write_replica_env

    start_redis
    wait_redis
    redis_cli config set appendfsync "$REDIS_APPENDFSYNC" >/dev/null

    # Replicas beyond REPLICAS, left from an earlier larger `up`.
    local file name n
    for file in "$PIDS"/skiff-*.pid; do
        [[ -e $file ]] || continue
        name=$(basename "$file" .pid)
        n=${name#skiff-}
        ((n > REPLICAS)) && stop_process "$name" TERM 15
    done
    # One at a time: when `up` converges a running cluster to a new binary,
    # this is a rolling restart and the other replicas keep serving.
    for ((n = 1; n <= REPLICAS; n++)); do
        start_replica "$n"
        wait_replica "$n"
    done

    start_proxy
    wait_proxy
}

native_down() {
    local file name pid
    # Front to back. SIGUSR1 makes HAProxy stop listening at once but finish
    # the requests in flight; SIGTERM makes every replica shut down gracefully
    # (its long-polls end promptly and their answers still flow through the
    # proxy); Redis goes last and, on SIGTERM, finishes writing its AOF.
    if pid=$(pid_of proxy); then
        kill -USR1 "$pid" 2>/dev/null || true
        log "stopping proxy (pid $pid)"
    fi
    for file in "$PIDS"/skiff-*.pid; do
        [[ -e $file ]] || continue
        name=$(basename "$file" .pid)
        if pid=$(pid_of "$name"); then
            kill -TERM "$pid" 2>/dev/null || true
            log "stopping $name (pid $pid)"
        fi
    done
    for file in "$PIDS"/skiff-*.pid; do
        [[ -e $file ]] || continue
        stop_process "$(basename "$file" .pid)" TERM 15
    done
    stop_process proxy USR1 10
    stop_process proxy-old KILL 1
    stop_process redis TERM 30
    # Overrides point at things of one session (a fault proxy, a fake clock):
    # the next `up` starts plain replicas.
    rm -rf "$OVERRIDES"
}

# --- Docker Compose mode -------------------------------------------------------

compose() {
    local files=(-f "$COMPOSE_FILE")
    [[ -f $STATE/compose.replicas.yml ]] && files+=(-f "$STATE/compose.replicas.yml")
    if docker compose version >/dev/null 2>&1; then
        docker compose --project-directory "$ROOT" "${files[@]}" "$@"
    elif command -v docker-compose >/dev/null; then
        docker-compose --project-directory "$ROOT" "${files[@]}" "$@"
    else
        die "a Docker engine answers but neither 'docker compose' nor 'docker-compose' is installed"
    fi
}

# Replicas 4..N are generated from skiff-1 (compose `extends`); with N <= 3
# the override file is removed.
print_compose_override() {
    local n
    echo "# Generated by scripts/cluster.sh for REPLICAS=$REPLICAS; do not edit."
    echo "services:"
    for ((n = COMPOSE_STATIC_REPLICAS + 1; n <= REPLICAS; n++)); do
        cat <<EOF
  skiff-$n:
    extends:
      file: "$COMPOSE_FILE"
      service: skiff-1
    environment:
      REPLICA_ID: skiff-$n
    ports: !override
      - "127.0.0.1:$(replica_port "$n"):8080"
EOF
    done
}

write_compose_override() {
    local file=$STATE/compose.replicas.yml
    if ((REPLICAS <= COMPOSE_STATIC_REPLICAS)); then
        rm -f "$file"
        return
    fi
    print_compose_override >"$file"
}

compose_env() {
    export REPLICAS PROXY_PORT PROXY_STATS_PORT REDIS_PORT_HOST REDIS_APPENDFSYNC
    export SKIFF_ENV_FILE=.cluster/skiff.env
}

compose_services() {
    local n services=(redis)
    for ((n = 1; n <= REPLICAS; n++)); do services+=("skiff-$n"); done
    services+=(proxy)
    echo "${services[@]}"
}

docker_up() {
    ((REPLICA_BASE_PORT == 8080)) || die "REPLICA_BASE_PORT is fixed at 8080 in docker mode (see docker-compose.yml)"
    write_replica_env
    write_compose_override
    compose_env
    local n services
    read -r -a services <<<"$(compose_services)"
    compose up -d --build --wait --remove-orphans "${services[@]}"
    # Replicas beyond REPLICAS from an earlier, larger `up`.
    local service
    for service in $(compose ps -a --services 2>/dev/null); do
        if [[ $service =~ ^skiff-([0-9]+)$ ]] && ((BASH_REMATCH[1] > REPLICAS)); then
            compose rm -sf "$service"
        fi
    done
    local deadline=$((SECONDS + UP_TIMEOUT))
    for ((n = 1; n <= REPLICAS; n++)); do
        until replica_healthy "$n"; do
            ((SECONDS < deadline)) || die "skiff-$n did not become healthy; see: scripts/cluster.sh logs skiff-$n"
            sleep 0.5
        done
    done
    wait_proxy
}

# --- Subcommands -----------------------------------------------------------------

print_urls() {
    local n
    echo "Skiff cluster is up ($MODE mode, $REPLICAS replicas):"
    printf '  %-9s %s\n' proxy "http://127.0.0.1:$PROXY_PORT"
    for ((n = 1; n <= REPLICAS; n++)); do
        printf '  %-9s %s\n' "skiff-$n" "http://127.0.0.1:$(replica_port "$n")"
    done
    printf '  %-9s %s\n' redis "redis://127.0.0.1:$REDIS_PORT_HOST (appendfsync $REDIS_APPENDFSYNC)"
    printf '  %-9s %s\n' stats "http://127.0.0.1:$PROXY_STATS_PORT/stats"
    echo "Try: curl -X POST -d '{\"hello\":\"world\"}' http://127.0.0.1:$PROXY_PORT/api/demo && curl 'http://127.0.0.1:$PROXY_PORT/api/demo?timeout=1000'"
    echo "Logs: scripts/cluster.sh logs    Stop: scripts/cluster.sh down"
}

lock() {
    mkdir -p "$STATE"
    exec 9>"$STATE/lock"
    flock -w 600 9 || die "another scripts/cluster.sh is still running"
}

cmd_up() {
    lock
    load_settings 1
    if [[ -f $SETTINGS_FILE ]]; then
        # A running cluster keeps its mode and ports; only REPLICAS, the
        # appendfsync policy, the replica settings and the binary converge.
        local new_mode=$MODE new_ports="$PROXY_PORT $PROXY_STATS_PORT $REPLICA_BASE_PORT $REDIS_PORT_HOST"
        local want_replicas=$REPLICAS want_fsync=$REDIS_APPENDFSYNC
        load_settings 0
        if cluster_running; then
            [[ -z $new_mode || $new_mode == "$MODE" ]] || die "the cluster is running in $MODE mode; run 'scripts/cluster.sh down' first"
            [[ $new_ports == "$PROXY_PORT $PROXY_STATS_PORT $REPLICA_BASE_PORT $REDIS_PORT_HOST" ]] ||
                die "the cluster is running on other ports; run 'scripts/cluster.sh down' first"
            REPLICAS=$want_replicas
            REDIS_APPENDFSYNC=$want_fsync
        else
            load_settings 1
        fi
    fi
    choose_mode
    save_settings
    mkdir -p "$LOGS" "$PIDS"
    if [[ $MODE == docker ]]; then docker_up; else native_up; fi
    print_urls
}

cluster_running() {
    if [[ $MODE == docker ]]; then
        [[ -n $(compose ps -q 2>/dev/null) ]]
    else
        local file
        for file in "$PIDS"/*.pid; do
            [[ -e $file ]] && is_running "$(basename "$file" .pid)" && return 0
        done
        return 1
    fi
}

cmd_down() {
    lock
    if [[ ! -f $SETTINGS_FILE ]]; then
        log "nothing to stop (no cluster was started from this checkout)"
        return
    fi
    load_settings 0
    if [[ $MODE == docker ]]; then
        compose_env
        compose down
    else
        native_down
    fi
    rm -f "$SETTINGS_FILE"
    log "cluster stopped"
}

cmd_status() {
    [[ -f $SETTINGS_FILE ]] || {
        echo "no cluster started from this checkout"
        return 3
    }
    load_settings 0
    local ok=0 n code state pid
    printf '%s mode, %s replicas\n' "$MODE" "$REPLICAS"
    if [[ $MODE == docker ]]; then
        compose_env
        compose ps || ok=1
    fi
    # redis
    if redis_ping; then
        printf '  %-9s %-10s redis://127.0.0.1:%s\n' redis healthy "$REDIS_PORT_HOST"
    elif [[ $MODE == native ]] && ! is_running redis; then
        printf '  %-9s %-10s\n' redis stopped
        ok=1
    else
        printf '  %-9s %-10s no PONG on 127.0.0.1:%s\n' redis unhealthy "$REDIS_PORT_HOST"
        ok=1
    fi
    # replicas, and what HAProxy thinks of them
    declare -A in_rotation=()
    while read -r name state; do in_rotation[$name]=$state; done < <(proxy_server_states || true)
    for ((n = 1; n <= REPLICAS; n++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$(replica_port "$n")/health" 2>/dev/null || true)
        if [[ $code == 200 ]]; then
            state=healthy
        elif [[ $MODE == native ]] && ! is_running "skiff-$n"; then
            state=stopped
            ok=1
        else
            state=unhealthy
            ok=1
        fi
        pid=""
        [[ $MODE == native ]] && pid=$(pid_of "skiff-$n" || true)
        printf '  %-9s %-10s http://127.0.0.1:%s/health -> %s; proxy: %s%s\n' "skiff-$n" "$state" \
            "$(replica_port "$n")" "${code:-000}" "${in_rotation[skiff-$n]:-unknown}" "${pid:+; pid $pid}"
    done
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$PROXY_PORT/health" 2>/dev/null || true)
    if [[ $code == 200 ]]; then state=healthy; else
        state=unhealthy
        ok=1
    fi
    printf '  %-9s %-10s http://127.0.0.1:%s/health -> %s\n' proxy "$state" "$PROXY_PORT" "${code:-000}"
    return $ok
}

cmd_logs() {
    local follow=0 name="" file
    for arg in "$@"; do
        case $arg in
            -f | --follow) follow=1 ;;
            *) name=$arg ;;
        esac
    done
    load_settings 0
    if [[ ${MODE:-native} == docker ]]; then
        compose_env
        if ((follow)); then compose logs -f ${name:+"$name"}; else compose logs --tail 200 ${name:+"$name"}; fi
        return
    fi
    if [[ -n $name ]]; then
        file=$LOGS/$name.log
        [[ -f $file ]] || die "no log for '$name' (see $LOGS)"
        if ((follow)); then exec tail -n 50 -F "$file"; else tail -n 200 "$file"; fi
        return
    fi
    compgen -G "$LOGS/*.log" >/dev/null || die "no logs yet in $LOGS"
    if ((follow)); then exec tail -n 20 -F "$LOGS"/*.log; fi
    for file in "$LOGS"/*.log; do
        echo "==> ${file#"$ROOT"/} <=="
        tail -n 50 "$file"
        echo
    done
}

replica_arg() {
    if ! [[ ${1:-} =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > REPLICAS)); then
        die "expected a replica number 1..$REPLICAS, got '${1:-}'"
    fi
}

cmd_kill() {
    lock
    load_settings 0
    replica_arg "${1:-}"
    local n=$1 pid
    if [[ $MODE == docker ]]; then
        compose_env
        compose kill -s SIGKILL "skiff-$n"
        return
    fi
    pid=$(pid_of "skiff-$n") || die "skiff-$n is not running"
    kill -KILL "$pid"
    while is_running "skiff-$n"; do sleep 0.05; done
    rm -f "$PIDS/skiff-$n.pid"
    log "killed skiff-$n (pid $pid) with SIGKILL"
}

cmd_start() {
    lock
    load_settings 0
    replica_arg "${1:-}"
    local n=$1
    if [[ $MODE == docker ]]; then
        compose_env
        compose up -d --no-deps --wait "skiff-$n"
    else
        [[ -n ${SKIFF:-} && -x $SKIFF ]] || die "no skiff binary recorded by 'up'; run 'scripts/cluster.sh up' first"
        start_replica "$n"
        wait_replica "$n"
    fi
    local deadline=$((SECONDS + UP_TIMEOUT))
    until replica_healthy "$n"; do
        ((SECONDS < deadline)) || die "skiff-$n did not become healthy"
        sleep 0.2
    done
    wait_in_rotation "$n" "$deadline"
    log "skiff-$n is healthy on http://127.0.0.1:$(replica_port "$n") and back in the proxy's rotation"
}

cmd_restart_redis() {
    lock
    load_settings 0
    local signal=KILL
    [[ ${1:-} == --graceful ]] && signal=TERM
    if [[ $MODE == docker ]]; then
        compose_env
        compose kill -s "SIG$signal" redis
        compose up -d --no-deps --wait redis
    else
        is_running redis || die "redis is not running"
        local pid
        pid=$(pid_of redis)
        kill "-$signal" "$pid"
        while is_running redis; do sleep 0.05; done
        rm -f "$PIDS/redis.pid"
        log "redis (pid $pid) stopped with SIG$signal"
        start_redis
        wait_redis
    fi
    log "redis is back on 127.0.0.1:$REDIS_PORT_HOST"
}

# kill-redis: kill -9 Redis and leave it down (a primary failure; see
# chaos/ for the failover drill that promotes a replica meanwhile).
cmd_kill_redis() {
    lock
    load_settings 0
    [[ $MODE == native ]] || die "kill-redis is implemented for the native cluster only"
    local pid
    pid=$(pid_of redis) || die "redis is not running"
    kill -KILL "$pid"
    while is_running redis; do sleep 0.05; done
    rm -f "$PIDS/redis.pid"
    log "killed redis (pid $pid) with SIGKILL; 'scripts/cluster.sh start-redis' starts it again"
}

cmd_start_redis() {
    lock
    load_settings 0
    if [[ $MODE == docker ]]; then
        compose_env
        compose up -d --no-deps --wait redis
    else
        start_redis
        wait_redis
    fi
    log "redis is up on 127.0.0.1:$REDIS_PORT_HOST"
}

# restart-proxy [--graceful]: kill -9 HAProxy (every client connection through
# it breaks) or soft-stop it (SIGUSR1: it stops listening and finishes the
# requests in flight), then start it again and wait until every running
# replica is back in its rotation.
cmd_restart_proxy() {
    lock
    load_settings 0
    local signal=KILL
    [[ ${1:-} == --graceful ]] && signal=USR1
    if [[ $MODE == docker ]]; then
        compose_env
        compose kill -s "SIG$signal" proxy
        compose up -d --no-deps --wait proxy
    else
        local pid
        if pid=$(pid_of proxy); then
            kill "-$signal" "$pid" 2>/dev/null || true
            if [[ $signal == KILL ]]; then
                while is_running proxy; do sleep 0.05; done
                rm -f "$PIDS/proxy.pid"
            else
                # A soft-stopped HAProxy releases its listeners at once; the
                # old process may linger for its in-flight requests.
                local deadline=$((SECONDS + 10))
                while port_in_use "$PROXY_PORT" && is_running proxy && ((SECONDS < deadline)); do sleep 0.05; done
                # It is tracked as proxy-old until it exits (`down` stops it);
                # one still there from an earlier soft restart goes now.
                stop_process proxy-old KILL 1
                mv -f "$PIDS/proxy.pid" "$PIDS/proxy-old.pid"
            fi
            log "proxy (pid $pid) stopped with SIG$signal"
        fi
        start_proxy
    fi
    local deadline=$((SECONDS + UP_TIMEOUT)) n
    until curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$PROXY_PORT/health" 2>/dev/null; do
        ((SECONDS < deadline)) || die "proxy did not answer GET /health with 200 within ${UP_TIMEOUT}s"
        sleep 0.1
    done
    for ((n = 1; n <= REPLICAS; n++)); do
        if replica_healthy "$n"; then wait_in_rotation "$n" "$deadline"; fi
    done
    log "proxy is back on http://127.0.0.1:$PROXY_PORT"
}

# pause N / resume N: SIGSTOP / SIGCONT replica N, a replica that stalls (GC
# pause, overloaded host, VM migration) without dying.
cmd_signal_replica() {
    local signal=$1
    shift
    lock
    load_settings 0
    [[ $MODE == native ]] || die "pause/resume are implemented for the native cluster only"
    replica_arg "${1:-}"
    local pid
    pid=$(pid_of "skiff-$1") || die "skiff-$1 is not running"
    kill "-$signal" "$pid"
    log "sent SIG$signal to skiff-$1 (pid $pid)"
}

# configure N [--reset] [KEY=VALUE...]: extra environment for replica N.
cmd_configure() {
    lock
    load_settings 0
    replica_arg "${1:-}"
    local n=$1 file arg key value
    shift
    file=$OVERRIDES/skiff-$n.env
    mkdir -p "$OVERRIDES"
    if [[ ${1:-} == --reset ]]; then
        rm -f "$file"
        shift
    fi
    declare -A values=()
    local order=()
    if [[ -f $file ]]; then
        while IFS= read -r arg; do
            [[ $arg =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
            key=${BASH_REMATCH[1]}
            [[ -n ${values[$key]+set} ]] || order+=("$key")
            values[$key]=${BASH_REMATCH[2]}
        done <"$file"
    fi
    for arg in "$@"; do
        [[ $arg =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || die "expected KEY=VALUE, got '$arg'"
        key=${BASH_REMATCH[1]}
        value=${BASH_REMATCH[2]}
        [[ $value =~ ^[^[:space:]\"\'\$\`\\]*$ ]] || die "$key: value must not contain spaces, quotes or \$"
        case $key in
            PORT | HOST | REPLICA_ID | PATH) die "$key is set by the cluster and cannot be overridden" ;;
        esac
        [[ -n ${values[$key]+set} ]] || order+=("$key")
        values[$key]=$value
    done
    {
        echo "# Written by scripts/cluster.sh configure $n; applied by 'start $n' and 'up'; removed by 'down'."
        for key in "${order[@]}"; do printf '%s=%s\n' "$key" "${values[$key]}"; done
    } >"$file.tmp"
    mv "$file.tmp" "$file"
    if ((${#order[@]} == 0)); then rm -f "$file"; fi
    log "skiff-$n overrides: ${order[*]:-none} (applied by 'scripts/cluster.sh start $n')"
}

cmd_clean() {
    lock
    if [[ -f $SETTINGS_FILE ]]; then
        load_settings 0
        ! cluster_running || die "the cluster is running; run 'scripts/cluster.sh down' first"
    fi
    rm -rf "$STATE/redis" "$LOGS" "$PIDS" "$OVERRIDES" "$STATE/haproxy" "$STATE/skiff.env" "$STATE/compose.replicas.yml" "$SETTINGS_FILE"
    log "removed Redis data, logs and pid files from $STATE"
}

main() {
    local command=${1:-}
    shift || true
    case $command in
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        status) cmd_status "$@" ;;
        logs) cmd_logs "$@" ;;
        kill) cmd_kill "$@" ;;
        start) cmd_start "$@" ;;
        restart-redis) cmd_restart_redis "$@" ;;
        kill-redis) cmd_kill_redis "$@" ;;
        start-redis) cmd_start_redis "$@" ;;
        restart-proxy) cmd_restart_proxy "$@" ;;
        pause) cmd_signal_replica STOP "$@" ;;
        resume) cmd_signal_replica CONT "$@" ;;
        configure) cmd_configure "$@" ;;
        clean) cmd_clean "$@" ;;
        compose-override)
            REPLICAS=${1:-$COMPOSE_STATIC_REPLICAS}
            REPLICA_BASE_PORT=8080
            load_settings 1
            print_compose_override
            ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
