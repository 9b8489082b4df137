# shellcheck shell=bash
# Sourced by scripts/cluster.sh: HAProxy in front of the replicas (its
# configuration rendered from deploy/haproxy.cfg.tmpl), which replicas it has
# in rotation, and the subcommand restart-proxy.

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

proxy_healthy() { curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$PROXY_PORT/health" 2>/dev/null; }

# Prints "skiff-1 UP" ... as HAProxy sees its servers.
proxy_server_states() {
    curl -fsS -m 2 "http://127.0.0.1:$PROXY_STATS_PORT/stats;csv" 2>/dev/null |
        awk -F, '$1 == "skiff_replicas" && $2 != "BACKEND" { print $2, $18 }'
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

wait_proxy() {
    local deadline=$((SECONDS + UP_TIMEOUT)) n
    wait_for proxy "GET /health with 200" "$deadline" proxy_healthy
    # Also wait until HAProxy's own health checks have every replica in
    # rotation, so a test starting right after `up` sees the whole cluster.
    for ((n = 1; n <= REPLICAS; n++)); do wait_in_rotation "$n" "$deadline"; done
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
        compose_restart proxy "$signal"
    else
        local pid
        if pid=$(pid_of proxy); then
            kill "-$signal" "$pid" 2>/dev/null || true
            if [[ $signal == KILL ]]; then
                reap proxy
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
    until proxy_healthy; do
        ((SECONDS < deadline)) || die "proxy did not answer GET /health with 200 within ${UP_TIMEOUT}s"
        sleep 0.1
    done
    for ((n = 1; n <= REPLICAS; n++)); do
        if replica_healthy "$n"; then wait_in_rotation "$n" "$deadline"; fi
    done
    log "proxy is back on http://127.0.0.1:$PROXY_PORT"
}
