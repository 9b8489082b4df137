#!/usr/bin/env bash
# The local Skiff cluster: Redis, N Skiff replicas and an HAProxy round-robin
# proxy in front of them, on the same ports in both modes.
#
#   scripts/cluster.sh up              start (or converge) the cluster, wait until healthy, print URLs
#                                      (REDIS_MODE=cluster: on a Redis Cluster, see below)
#   scripts/cluster.sh down            stop exactly what `up` started
#   scripts/cluster.sh status          health of every component (exit 1 if any is unhealthy)
#   scripts/cluster.sh url             the proxy URL of the cluster started from this checkout
#   scripts/cluster.sh logs [NAME] [-f]  logs of all components, or of redis|proxy|skiff-N
#                                      (REDIS_MODE=cluster: redis-PORT, or redis for all nodes)
#   scripts/cluster.sh kill N          kill -9 replica N (it stays down until `start N`)
#   scripts/cluster.sh start N         start replica N again and wait until it is healthy
#   scripts/cluster.sh restart-redis   kill -9 Redis and start it again on the same data
#                                      (`--graceful`: SIGTERM instead)
#   scripts/cluster.sh kill-redis      kill -9 Redis; it stays down until `start-redis`
#   scripts/cluster.sh start-redis     start Redis again on the same data and wait for PONG
#   scripts/cluster.sh kill-redis-primary --slot S
#                                      REDIS_MODE=cluster (native): kill -9 the primary of hash
#                                      slot S and wait until its replica is promoted; prints
#                                      killed-port=X and new-primary-port=Y
#   scripts/cluster.sh restart-redis-node --port X
#                                      REDIS_MODE=cluster (native): start node X again (a killed
#                                      primary rejoins as a replica) and wait until it is back
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
#   REDIS_MODE=single     or `cluster`: instead of the single Redis, a Redis Cluster of 3
#                         primaries and 3 replicas (native: scripts/redis-cluster.sh, state in
#                         .cluster/redis-cluster, in memory only, so `down` drops its data;
#                         docker: the `cluster` profile of docker-compose.yml), and every
#                         replica gets REDIS_URL=redis+cluster://<the three first nodes>.
#                         restart-redis, kill-redis and start-redis refuse it (no single Redis)
#   REDIS_CLUSTER_PORT=7000  REDIS_MODE=cluster, native: nodes on 127.0.0.1:7000-7005 (cluster
#                         bus 17000-17005)
#   MONITORING=auto       native: Prometheus with the alert rules of deploy/prometheus, and
#                         Grafana with deploy/grafana's dashboard, when installed (a hint
#                         says how to get them when not); `on` installs Prometheus with apt;
#                         `off` starts neither (docs/operations.md, "Locally")
#   PROMETHEUS_PORT=9090  GRAFANA_PORT=3000   native: where they listen, on 127.0.0.1
#   SKIFF_BIN=path        native: run this binary instead of building .build/release/skiff
#   UP_TIMEOUT=120        seconds to wait for the cluster to become healthy
#   CLUSTER_STATE_DIR=.cluster  where native state lives (make test runs its own cluster there)
#   any key of deploy/skiff.env (e.g. CLAIM_LEASE_MS=3000) overrides that file
#
# Native state lives in .cluster/ (gitignored): pids/, logs/, redis/ (AOF and
# RDB files), redis-cluster/ (REDIS_MODE=cluster: each node's nodes-PORT.conf
# and redis-PORT.log), haproxy/haproxy.cfg (the rendered proxy configuration),
# overrides/ (per-replica environment from `configure`).
set -euo pipefail

# Why this stays bash, split by role, rather than moving to Python: every caller runs this
# file as a command (make, scripts/test.sh, chaos/ and the soak as a subprocess, the Swift
# cluster tests through Process) and relies on its exit status, its `cluster: ...` lines on
# stderr and the files it leaves in the state directory. Its work is starting, signalling and
# waiting for other programs (setsid, flock, kill, redis-cli, curl, haproxy, docker compose,
# apt), which bash says most directly. It parses no JSON (HAProxy's CSV goes through awk), its
# waiting loops are a few lines each (the ones that watch a process share wait_for), and
# `make up` needs no Python today. A port would rewrite every line and have to match every
# message and exit code again, for little gain. So: the same bash, in pieces that each fit on
# a screen, sourced below (they only define functions; nothing runs when they are sourced):
#
#   cluster/settings.sh   ports, mode and replica settings: cluster.env, skiff.env, the lock
#   cluster/processes.sh  native supervision: pid files, spawn, stop, reap, wait_for, ports
#   cluster/install.sh    Debian packages and the skiff binary
#   cluster/redis.sh      Redis: start, wait, restart-redis, kill-redis, start-redis
#   cluster/redis-nodes.sh  REDIS_MODE=cluster: the Redis Cluster, kill-redis-primary, restart-redis-node
#   cluster/replicas.sh   replicas: environment, start, wait, kill N, start N, pause/resume N
#   cluster/configure.sh  configure N: per-replica environment overrides
#   cluster/proxy.sh      HAProxy: render, start, rotation, restart-proxy
#   cluster/monitoring.sh Prometheus (and Grafana when installed) beside the native cluster
#   cluster/native.sh     up and down of the native mode
#   cluster/compose.sh    up of the Docker Compose mode, and its files
#   cluster/lifecycle.sh  up, down, clean (both modes)
#   cluster/status.sh     status, logs
#
# Two things tie this file's text to others: the header above is the usage text (usage()
# prints it, up to `set -euo pipefail`), and chaos/runner.py looks for the word
# CLUSTER_STATE_DIR in it to tell a script that takes a state directory from an older one.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${CLUSTER_STATE_DIR:-$ROOT/.cluster}
PIDS=$STATE/pids
LOGS=$STATE/logs
SETTINGS_FILE=$STATE/cluster.env
OVERRIDES=$STATE/overrides
# REDIS_MODE=cluster (native): scripts/redis-cluster.sh's directory, and its node count
# (3 primaries with a replica each, its default layout).
REDIS_CLUSTER_DIR=$STATE/redis-cluster
REDIS_CLUSTER_NODES=6
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

PIECES=$ROOT/scripts/cluster
# The directive lets `shellcheck -x scripts/cluster.sh` follow the pieces from
# any directory (scripts/check-infra.sh gives shellcheck the pieces too).
# shellcheck source-path=SCRIPTDIR/cluster
{
    source "$PIECES/settings.sh"
    source "$PIECES/processes.sh"
    source "$PIECES/install.sh"
    source "$PIECES/redis.sh"
    source "$PIECES/redis-nodes.sh"
    source "$PIECES/replicas.sh"
    source "$PIECES/configure.sh"
    source "$PIECES/proxy.sh"
    source "$PIECES/monitoring.sh"
    source "$PIECES/native.sh"
    source "$PIECES/compose.sh"
    source "$PIECES/lifecycle.sh"
    source "$PIECES/status.sh"
}

main() {
    local command=${1:-}
    shift || true
    case $command in
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        status) cmd_status "$@" ;;
        url) cmd_url "$@" ;;
        logs) cmd_logs "$@" ;;
        kill) cmd_kill "$@" ;;
        start) cmd_start "$@" ;;
        restart-redis) cmd_restart_redis "$@" ;;
        kill-redis) cmd_kill_redis "$@" ;;
        start-redis) cmd_start_redis "$@" ;;
        kill-redis-primary) cmd_kill_redis_primary "$@" ;;
        restart-redis-node) cmd_restart_redis_node "$@" ;;
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
