# shellcheck shell=bash
# Sourced by scripts/cluster.sh: the subcommands status and logs, in both modes.

# status: one line per component; exit 1 if any is unhealthy, 3 if no cluster
# was started from this state directory.
cmd_status() {
    [[ -f $SETTINGS_FILE ]] || {
        echo "no cluster started from this checkout"
        return 3
    }
    load_settings 0
    local ok=0 n code state pid
    printf '%s mode, %s replicas, %s\n' "$MODE" "$REPLICAS" "$([[ $REDIS_MODE == cluster ]] && echo "a Redis Cluster" || echo "a single Redis")"
    if [[ $MODE == docker ]]; then
        compose_env
        compose ps || ok=1
    fi
    # redis
    if [[ $REDIS_MODE == cluster ]]; then
        if [[ $MODE == native ]]; then
            redis_nodes_status || ok=1
        else
            state=$(compose exec -T redis-node-1 redis-cli cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p')
            printf '  %-9s %-10s cluster_state:%s (redis-node-1)\n' redis "$([[ $state == ok ]] && echo healthy || echo unhealthy)" "${state:-?}"
            [[ $state == ok ]] || ok=1
        fi
    elif redis_ping; then
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
    [[ $MODE == docker ]] || monitoring_status || ok=1
    return $ok
}

# logs [NAME] [-f]: the end of every component's log, or of one; -f follows.
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
    # Natively the Redis Cluster's nodes log into their own directory, redis-PORT.log.
    if [[ ${REDIS_MODE:-single} == cluster && $name =~ ^redis(-[0-9]+)?$ ]]; then
        local files=("$REDIS_CLUSTER_DIR/$name"*.log)
        [[ -e ${files[0]} ]] || die "no log for '$name' in $REDIS_CLUSTER_DIR"
        if ((follow)); then exec tail -n 50 -F "${files[@]}"; else tail -n 200 "${files[@]}"; fi
        return
    fi
    if [[ -n $name ]]; then
        file=$LOGS/$name.log
        [[ -f $file ]] || die "no log for '$name' (see $LOGS)"
        if ((follow)); then exec tail -n 50 -F "$file"; else tail -n 200 "$file"; fi
        return
    fi
    local all=()
    for file in "$LOGS"/*.log "$REDIS_CLUSTER_DIR"/redis-*.log; do
        [[ -f $file ]] && all+=("$file")
    done
    ((${#all[@]} > 0)) || die "no logs yet in $LOGS"
    if ((follow)); then exec tail -n 20 -F "${all[@]}"; fi
    for file in "${all[@]}"; do
        echo "==> ${file#"$ROOT"/} <=="
        tail -n 50 "$file"
        echo
    done
}

# `scripts/cluster.sh url`: the proxy's URL of the cluster started from this checkout (for
# scripts such as scripts/loadtest.sh); status 3 when none was started.
cmd_url() {
    [[ -f $SETTINGS_FILE ]] || return 3
    load_settings 0
    echo "http://127.0.0.1:$PROXY_PORT"
}
