# shellcheck shell=bash
# Sourced by scripts/cluster.sh: Redis, and the subcommands restart-redis,
# kill-redis and start-redis.

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

wait_redis() { wait_for redis PING $((SECONDS + UP_TIMEOUT)) redis_ready; }

# restart-redis [--graceful]: kill -9 (or SIGTERM) Redis and start it again on
# the same data.
cmd_restart_redis() {
    lock
    load_settings 0
    refuse_in_cluster_mode restart-redis
    local signal=KILL
    [[ ${1:-} == --graceful ]] && signal=TERM
    if [[ $MODE == docker ]]; then
        compose_restart redis "$signal"
    else
        is_running redis || die "redis is not running"
        local pid
        pid=$(pid_of redis)
        kill "-$signal" "$pid"
        reap redis
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
    refuse_in_cluster_mode kill-redis
    [[ $MODE == native ]] || die "kill-redis is implemented for the native cluster only"
    local pid
    pid=$(pid_of redis) || die "redis is not running"
    kill -KILL "$pid"
    reap redis
    log "killed redis (pid $pid) with SIGKILL; 'scripts/cluster.sh start-redis' starts it again"
}

cmd_start_redis() {
    lock
    load_settings 0
    refuse_in_cluster_mode start-redis
    if [[ $MODE == docker ]]; then
        compose_env
        compose up -d --no-deps --wait redis
    else
        start_redis
        wait_redis
    fi
    log "redis is up on 127.0.0.1:$REDIS_PORT_HOST"
}
