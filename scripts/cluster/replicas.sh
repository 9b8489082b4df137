# shellcheck shell=bash
# Sourced by scripts/cluster.sh: the Skiff replicas of the native mode, and the
# subcommands kill N, start N, pause N and resume N (both modes where they can).

# setting_lines FILE: FILE's lines that are neither blank nor comments.
setting_lines() {
    local line
    while IFS= read -r line; do
        [[ $line =~ ^[[:space:]]*(#|$) ]] || echo "$line"
    done <"$1"
}

# The exact environment a replica runs with. A clean environment (env -i), so
# a stray REDIS_HOST or LOG_LEVEL in the caller's shell cannot change a
# replica behind the settings' back, just like in a container.
replica_env() {
    local n=$1
    echo "PATH=/usr/local/bin:/usr/bin:/bin"
    # The payload store's path in the containers is the state directory's
    # payloads/ here: the same store for every replica, without root.
    local payloads
    payloads=$(realpath -m "$STATE/payloads")
    setting_lines "$STATE/skiff.env" | sed "s|^PAYLOADS_STORE=file:///var/lib/skiff/payloads\$|PAYLOADS_STORE=file://$payloads|"
    # Loopback only, like every other native component (compose replicas
    # listen on their container's interfaces instead).
    echo "HOST=127.0.0.1"
    echo "PORT=$(replica_port "$n")"
    echo "REDIS_URL=$(redis_url)"
    echo "REPLICA_ID=skiff-$n"
    # Last, so they win (env applies its assignments in order): `configure N`.
    if [[ -f $OVERRIDES/skiff-$n.env ]]; then setting_lines "$OVERRIDES/skiff-$n.env"; fi
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

wait_replica() { wait_for "skiff-$1" "GET /health with 200" $((SECONDS + UP_TIMEOUT)) replica_healthy "$1"; }

# kill N: kill -9 replica N; it stays down until `start N`.
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
    reap "skiff-$n"
    log "killed skiff-$n (pid $pid) with SIGKILL"
}

# start N: start replica N again (with its `configure` overrides), wait until
# it is healthy and back in the proxy's rotation.
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
