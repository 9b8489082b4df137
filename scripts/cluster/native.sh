# shellcheck shell=bash
# Sourced by scripts/cluster.sh: `up` and `down` of the native mode, Redis,
# the replicas and HAProxy as processes of this machine (the Docker Compose
# mode's are in compose.sh).

native_up() {
    command -v curl >/dev/null || ensure_packages curl
    ensure_packages redis-server redis-tools haproxy
    command -v setsid >/dev/null || die "setsid (util-linux) is required"
    resolve_binary
    save_settings
    write_replica_env

    if [[ $REDIS_MODE == cluster ]]; then
        start_redis_nodes
    else
        start_redis
        wait_redis
        redis_cli config set appendfsync "$REDIS_APPENDFSYNC" >/dev/null
    fi

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
    start_monitoring
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
    # The Redis Cluster's nodes keep their data in memory only: stopping them drops it, and
    # redis-cluster.sh removes their directory with it.
    if [[ $REDIS_MODE == cluster ]]; then redis_nodes stop; fi
    stop_monitoring
    # Overrides point at things of one session (a fault proxy, a fake clock):
    # the next `up` starts plain replicas.
    rm -rf "$OVERRIDES"
}
