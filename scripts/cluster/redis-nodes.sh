# shellcheck shell=bash
# Sourced by scripts/cluster.sh: REDIS_MODE=cluster, a Redis Cluster of 3 primaries and 3
# replicas in place of the single Redis. Natively scripts/redis-cluster.sh runs it (nodes on
# 127.0.0.1:REDIS_CLUSTER_PORT.., state in $REDIS_CLUSTER_DIR); in compose, the `cluster`
# profile of docker-compose.yml. Subcommands: kill-redis-primary, restart-redis-node.

# redis_nodes SUBCOMMAND [ARGS...]: scripts/redis-cluster.sh on this cluster's nodes.
redis_nodes() { "$ROOT/scripts/redis-cluster.sh" "$@" --base-port "$REDIS_CLUSTER_PORT" --dir "$REDIS_CLUSTER_DIR"; }

# The REDIS_URL every native replica gets.
redis_url() {
    if [[ $REDIS_MODE == cluster ]]; then redis_nodes url; else echo "redis://127.0.0.1:$REDIS_PORT_HOST"; fi
}

redis_node_ports() { seq "$REDIS_CLUSTER_PORT" $((REDIS_CLUSTER_PORT + REDIS_CLUSTER_NODES - 1)); }

redis_node_answers() { [[ $(timeout 3 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]; }

# True while any node this state directory started still runs (by its pid file, like
# redis-cluster.sh itself, so a recycled pid does not count).
redis_nodes_running() {
    local file pid
    for file in "$REDIS_CLUSTER_DIR"/redis-*.pid; do
        [[ -e $file ]] || continue
        read -r pid <"$file" || continue
        if [[ $pid =~ ^[0-9]+$ && $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") == redis-server* ]]; then return 0; fi
    done
    return 1
}

# start_redis_nodes: start the cluster, or converge a running one. redis-cluster.sh `start`
# replaces an unhealthy cluster with an empty one, so first the nodes that died while others
# still run (a kill-redis-primary never followed by restart-redis-node) rejoin on their own
# nodes.conf and the data stays; with every node dead there is nothing left to keep.
start_redis_nodes() {
    local port alive=0 dead=()
    for port in $(redis_node_ports); do
        if redis_node_answers "$port"; then
            alive=1
        elif [[ -f $REDIS_CLUSTER_DIR/nodes-$port.conf ]]; then
            dead+=("$port")
        fi
    done
    if ((alive)); then
        for port in "${dead[@]}"; do redis_nodes restart-node --port "$port"; done
    fi
    redis_nodes start
}

# One line per node for `status`: port, state, role and slots as the node itself sees them.
# Fails when a node does not answer or the cluster is not ok.
redis_nodes_status() {
    local port nodes ok=0 state
    for port in $(redis_node_ports); do
        if ! nodes=$(timeout 3 redis-cli -h 127.0.0.1 -p "$port" cluster nodes 2>/dev/null) || [[ -z $nodes ]]; then
            state=stopped
            redis_node_answers "$port" && state=unhealthy
            printf '  %-11s %-10s 127.0.0.1:%s\n' "redis-$port" "$state" "$port"
            ok=1
            continue
        fi
        state=$(timeout 3 redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p')
        [[ $state == ok ]] || ok=1
        # "myself" names the node's role; a replica's primary id is mapped to that node's port.
        awk -v port="$port" -v state="cluster_state:${state:-?}" '
            { addr = $2; sub(/[@,].*/, "", addr); n = split(addr, a, ":"); port_of[$1] = a[n] }
            $3 ~ /myself/ { me = $0 }
            END {
                n = split(me, f, " ")
                if (f[3] ~ /master/) { role = "primary, slots"; for (i = 9; i <= n; i++) role = role " " f[i] }
                else role = "replica of 127.0.0.1:" port_of[f[4]]
                printf "  %-11s %-10s 127.0.0.1:%s %s; %s\n", "redis-" port, "healthy", port, state, role
            }' <<<"$nodes"
    done
    return $ok
}

# Subcommands that only make sense with a Redis Cluster, natively.
require_redis_nodes() {
    [[ $REDIS_MODE == cluster ]] || die "$1 needs a cluster started with REDIS_MODE=cluster (this one runs a single Redis: see restart-redis, kill-redis)"
    [[ $MODE == native ]] || die "$1 is implemented for the native cluster only"
}

# The single Redis's subcommands, refused with the ones to use instead.
refuse_in_cluster_mode() {
    [[ $REDIS_MODE != cluster ]] ||
        die "$1: REDIS_MODE=cluster runs no single Redis; use 'kill-redis-primary --slot S' and 'restart-redis-node --port P' (nodes on 127.0.0.1:$REDIS_CLUSTER_PORT-$((REDIS_CLUSTER_PORT + REDIS_CLUSTER_NODES - 1)); 'scripts/cluster.sh status' shows their roles)"
}

# kill-redis-primary --slot S: SIGKILL the primary of hash slot S (`redis-cli -p PORT cluster
# keyslot KEY` gives it); returns once its replica is promoted; the node stays down until
# restart-redis-node.
cmd_kill_redis_primary() {
    lock
    load_settings 0
    require_redis_nodes kill-redis-primary
    [[ ${1:-} == --slot && $# == 2 ]] || die "usage: scripts/cluster.sh kill-redis-primary --slot S"
    redis_nodes kill-primary --slot "$2"
}

# restart-redis-node --port X: node X comes back on its own nodes.conf (a killed primary as a
# replica of the one promoted in its place) and is waited for.
cmd_restart_redis_node() {
    lock
    load_settings 0
    require_redis_nodes restart-redis-node
    [[ ${1:-} == --port && $# == 2 ]] || die "usage: scripts/cluster.sh restart-redis-node --port X"
    redis_nodes restart-node --port "$2"
}
