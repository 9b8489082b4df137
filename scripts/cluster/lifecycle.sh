# shellcheck shell=bash
# Sourced by scripts/cluster.sh: the subcommands up, down and clean, in both
# modes (native.sh and compose.sh do the work of each).

cluster_running() {
    if [[ $MODE == docker ]]; then
        [[ -n $(compose ps -q 2>/dev/null) ]]
    else
        local file
        for file in "$PIDS"/*.pid; do
            [[ -e $file ]] && is_running "$(basename "$file" .pid)" && return 0
        done
        redis_nodes_running
    fi
}

print_urls() {
    local n
    echo "Skiff cluster is up ($MODE mode, $REPLICAS replicas):"
    printf '  %-9s %s\n' proxy "http://127.0.0.1:$PROXY_PORT"
    for ((n = 1; n <= REPLICAS; n++)); do
        printf '  %-9s %s\n' "skiff-$n" "http://127.0.0.1:$(replica_port "$n")"
    done
    if [[ $REDIS_MODE != cluster ]]; then
        printf '  %-9s %s\n' redis "redis://127.0.0.1:$REDIS_PORT_HOST (appendfsync $REDIS_APPENDFSYNC)"
    elif [[ $MODE == native ]]; then
        printf '  %-9s %s\n' redis "$(redis_url) (Redis Cluster: 3 primaries, 3 replicas on 127.0.0.1:$REDIS_CLUSTER_PORT-$((REDIS_CLUSTER_PORT + REDIS_CLUSTER_NODES - 1)); in memory, no AOF)"
    else
        printf '  %-9s %s\n' redis "$COMPOSE_CLUSTER_URL (Redis Cluster, on the compose network only)"
    fi
    printf '  %-9s %s\n' stats "http://127.0.0.1:$PROXY_STATS_PORT/stats"
    if [[ $MODE == native ]]; then
        if is_running prometheus; then printf '  %-9s %s\n' prometheus "http://127.0.0.1:$PROMETHEUS_PORT (alerts: /alerts)"; fi
        if is_running grafana; then printf '  %-9s %s\n' grafana "http://127.0.0.1:$GRAFANA_PORT/d/skiff"; fi
    fi
    echo "Try: curl -X POST -d '{\"hello\":\"world\"}' http://127.0.0.1:$PROXY_PORT/api/demo && curl 'http://127.0.0.1:$PROXY_PORT/api/demo?timeout=1000'"
    echo "Logs: scripts/cluster.sh logs    Stop: scripts/cluster.sh down"
}

cmd_up() {
    lock
    load_settings 1
    if [[ -f $SETTINGS_FILE ]]; then
        # A running cluster keeps its modes and ports; only REPLICAS, the
        # appendfsync policy, the replica settings and the binary converge.
        local new_mode=$MODE new_redis_mode=$REDIS_MODE
        local new_ports="$PROXY_PORT $PROXY_STATS_PORT $REPLICA_BASE_PORT $REDIS_PORT_HOST $REDIS_CLUSTER_PORT"
        local want_replicas=$REPLICAS want_fsync=$REDIS_APPENDFSYNC
        load_settings 0
        if cluster_running; then
            [[ -z $new_mode || $new_mode == "$MODE" ]] || die "the cluster is running in $MODE mode; run 'scripts/cluster.sh down' first"
            [[ -z $new_redis_mode || $new_redis_mode == "$REDIS_MODE" ]] ||
                die "the cluster is running with REDIS_MODE=$REDIS_MODE; run 'scripts/cluster.sh down' first"
            [[ $new_ports == "$PROXY_PORT $PROXY_STATS_PORT $REPLICA_BASE_PORT $REDIS_PORT_HOST $REDIS_CLUSTER_PORT" ]] ||
                die "the cluster is running on other ports; run 'scripts/cluster.sh down' first"
            REPLICAS=$want_replicas
            REDIS_APPENDFSYNC=$want_fsync
        else
            load_settings 1
        fi
    fi
    choose_mode
    choose_redis_mode
    save_settings
    mkdir -p "$LOGS" "$PIDS"
    if [[ $MODE == docker ]]; then docker_up; else native_up; fi
    print_urls
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

cmd_clean() {
    lock
    if [[ -f $SETTINGS_FILE ]]; then
        load_settings 0
        ! cluster_running || die "the cluster is running; run 'scripts/cluster.sh down' first"
    fi
    ! redis_nodes_running || die "Redis Cluster nodes still run in $REDIS_CLUSTER_DIR; run 'scripts/cluster.sh down' first"
    rm -rf "$STATE/redis" "$REDIS_CLUSTER_DIR" "$REDIS_CLUSTER_DIR.lock" "$LOGS" "$PIDS" "$OVERRIDES" "$STATE/haproxy" \
        "$STATE/skiff.env" "$STATE/compose.replicas.yml" "$STATE/prometheus" "$STATE/grafana" "$SETTINGS_FILE"
    log "removed Redis data, logs and pid files from $STATE"
}
