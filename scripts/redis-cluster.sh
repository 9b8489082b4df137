#!/usr/bin/env bash
# A local Redis Cluster of native redis-server processes on 127.0.0.1 (no Docker), for the
# tests and for `make up REDIS_MODE=cluster`.
#
#   scripts/redis-cluster.sh start [--primaries N] [--replicas-per-primary R] [--base-port P] [--dir D]
#       start N*(1+R) nodes on ports P..P+N*(1+R)-1, make the first N primaries and the rest
#       their replicas, wait until every node reports cluster_state:ok and all 16384 slots ok
#       and every replica's link to its primary is up. A healthy cluster with the same layout
#       is left alone (another layout: an error). A dead or unhealthy one in D (stale pid
#       files and nodes-*.conf, or a node still down after kill-primary) is stopped and
#       removed, and an empty cluster started: use restart-node to keep the data.
#   scripts/redis-cluster.sh stop [--base-port P] [--dir D]
#       shut every node down (SHUTDOWN NOSAVE, then SIGKILL by pid file) and remove D
#   scripts/redis-cluster.sh status [--base-port P] [--dir D]
#       CLUSTER INFO and CLUSTER NODES of the first node that answers; exit 0 if its
#       cluster_state is ok, 1 otherwise
#   scripts/redis-cluster.sh url [--base-port P] [--primaries N] [--replicas-per-primary R]
#       print the seed URL, redis+cluster://127.0.0.1:P,...: the ports created as primaries
#       (after a failover some of them are replicas, which still serve as seeds)
#   scripts/redis-cluster.sh kill-primary --slot S [--base-port P] [--dir D]
#       SIGKILL the primary serving hash slot S (a crash), wait until one of its replicas has
#       been promoted and every surviving node reports cluster_state:ok; prints
#       killed-port=X and new-primary-port=Y on stdout
#   scripts/redis-cluster.sh restart-node --port X [--base-port P] [--dir D]
#       start node X again on its own nodes-X.conf (a killed primary rejoins as a replica)
#       and wait until it is back in the cluster
#
# Defaults: N=3, R=1, P=7100, D=/tmp/skiff-redis-cluster-P. The cluster bus of node X listens
# on X+10000. D holds each node's nodes-X.conf, redis-X.log and redis-X.pid, the layout in
# skiff-redis-cluster.env, and the output of `redis-cli --cluster create` in create.log.
# Changing subcommands serialize on the lock file D.lock (left next to D).
#
# Environment: REDIS_CLUSTER_TIMEOUT=30 bounds every wait, in seconds.
set -euo pipefail

# Why bash and redis-cli rather than a program: every step is starting, signalling or asking
# redis-server, which redis-cli does, and callers (make, Swift tests through Process) only
# need the exit status, the stdout of `url` / `kill-primary` and the messages on stderr.

log() { printf '%s\n' "redis-cluster: $*" >&2; }
die() {
    printf '%s\n' "redis-cluster: error: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 2
}

TIMEOUT=${REDIS_CLUSTER_TIMEOUT:-30}
if ! [[ $TIMEOUT =~ ^[1-9][0-9]{0,3}$ ]]; then
    die "REDIS_CLUSTER_TIMEOUT must be a number of seconds (1..9999), got '$TIMEOUT'"
fi
# One redis-cli call: a node that is stopped (SIGSTOP) or wedged must not hang us.
CLI_TIMEOUT=5
ALL_SLOTS=16384
STATE_NAME=skiff-redis-cluster.env

# --- Options -------------------------------------------------------------------------

# parse_options ALLOWED ARGS...: sets PRIMARIES, REPLICAS_PER_PRIMARY, BASE_PORT, DIR, SLOT,
# NODE_PORT and GIVEN_PRIMARIES; dies on an option not in ALLOWED (a space-separated list).
parse_options() {
    local allowed=" $1 " name value
    shift
    PRIMARIES=3 REPLICAS_PER_PRIMARY=1 BASE_PORT=7100 DIR="" SLOT="" NODE_PORT=""
    GIVEN_PRIMARIES=0
    while (($#)); do
        name=$1
        if [[ $name == --*=* ]]; then
            value=${name#*=}
            name=${name%%=*}
            shift
        else
            (($# >= 2)) || die "$name needs a value (see scripts/redis-cluster.sh --help)"
            value=$2
            shift 2
        fi
        [[ $allowed == *" $name "* ]] || die "$COMMAND does not take $name (see scripts/redis-cluster.sh --help)"
        case $name in
            --primaries) PRIMARIES=$(number "$name" "$value" 1 1000) GIVEN_PRIMARIES=1 ;;
            --replicas-per-primary) REPLICAS_PER_PRIMARY=$(number "$name" "$value" 0 100) ;;
            --base-port) BASE_PORT=$(number "$name" "$value" 1 65535) ;;
            --dir) DIR=$value ;;
            --slot) SLOT=$(number "$name" "$value" 0 $((ALL_SLOTS - 1))) ;;
            --port) NODE_PORT=$(number "$name" "$value" 1 65535) ;;
        esac
    done
    DIR=${DIR:-/tmp/skiff-redis-cluster-$BASE_PORT}
    [[ -n ${DIR//\//} ]] || die "--dir must not be /"
    # Absolute: redis-server chdirs into D, and the pid and config paths must not move with it.
    DIR=$(realpath -m -- "$DIR")
    STATE_FILE=$DIR/$STATE_NAME
}

# number NAME VALUE MIN MAX: VALUE, if it is a whole number in MIN..MAX.
number() {
    if ! [[ $2 =~ ^[0-9]{1,6}$ ]] || ((10#$2 < $3 || 10#$2 > $4)); then
        die "$1 must be a number in $3..$4, got '$2'"
    fi
    echo $((10#$2))
}

node_count() { echo $((PRIMARIES * (1 + REPLICAS_PER_PRIMARY))); }

node_ports() { seq "$BASE_PORT" $((BASE_PORT + $(node_count) - 1)); }

# The layout a `start` wrote into D; it doubles as the mark that D is ours to delete.
save_layout() {
    {
        echo "# Written by scripts/redis-cluster.sh start; its other subcommands read it, stop deletes this directory."
        echo "PRIMARIES=$PRIMARIES"
        echo "REPLICAS_PER_PRIMARY=$REPLICAS_PER_PRIMARY"
        echo "BASE_PORT=$BASE_PORT"
    } >"$STATE_FILE"
}

# load_layout: PRIMARIES, REPLICAS_PER_PRIMARY and BASE_PORT from D; fails if D has none.
load_layout() {
    [[ -f $STATE_FILE ]] || return 1
    local key value
    while IFS='=' read -r key value; do
        case $key in
            PRIMARIES | REPLICAS_PER_PRIMARY | BASE_PORT) [[ $value =~ ^[0-9]+$ ]] && printf -v "$key" '%s' "$value" ;;
        esac
    done <"$STATE_FILE"
}

require_layout() {
    load_layout || die "no cluster in $DIR (no $STATE_NAME): pass the --base-port (or --dir) it was started with"
}

# Changing subcommands one at a time per cluster (tests may call `start` concurrently).
lock() {
    mkdir -p "$(dirname "$DIR")"
    exec 9>"$DIR.lock"
    flock -w $((TIMEOUT * 4)) 9 || die "another scripts/redis-cluster.sh held $DIR.lock for $((TIMEOUT * 4))s"
}

# --- Talking to nodes ----------------------------------------------------------------

# rcli PORT ARGS...: one command; replies without the \r of CLUSTER INFO's lines; fails on
# an error reply (-e) or no answer within CLI_TIMEOUT.
rcli() {
    local port=$1
    shift
    timeout "$CLI_TIMEOUT" redis-cli -e -h 127.0.0.1 -p "$port" "$@" 2>&1 | tr -d '\r'
}

# field NAME TEXT: the value of the NAME:value line of an INFO-style reply.
field() { sed -n "s/^$1://p" <<<"$2"; }

answers() { [[ $(rcli "$1" ping 2>/dev/null) == PONG ]]; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# node_pid PORT: the pid in redis-PORT.pid, if that process is still the redis-server of
# PORT (its title says "redis-server 127.0.0.1:PORT"), so a recycled pid is never killed.
node_pid() {
    local file=$DIR/redis-$1.pid pid title
    [[ -f $file ]] || return 1
    read -r pid <"$file" || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    title=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    [[ $title =~ redis-server.*127\.0\.0\.1:$1([^0-9]|$) ]] || return 1
    echo "$pid"
}

pid_alive() { [[ -e /proc/$1 ]] && [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") == *redis-server* ]]; }

now_ms() { echo $((${EPOCHREALTIME//[!0-9]/} / 1000)); }

since() {
    local ms=$(($(now_ms) - $1))
    printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100))
}

tail_log() {
    local file=$DIR/redis-$1.log
    if [[ -f $file ]]; then tail -n "${2:-10}" "$file" | sed "s/^/    $1| /" >&2; fi
}

# --- Nodes ---------------------------------------------------------------------------

# start_node PORT: one daemonized redis-server; returns once it answers PING.
start_node() {
    local port=$1 deadline
    (
        # The daemon must inherit no descriptor beyond 0-2 (redis points those at
        # /dev/null): not fd 9, this script's lock, and not a pipe of whoever ran us (a test
        # reading our output until EOF would wait forever).
        for fd in "/proc/$BASHPID/fd"/*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null; fi
        done
        # Beyond the usual flags: every node announces 127.0.0.1 (a node without peers, the
        # single-node cluster, otherwise answers CLUSTER SLOTS with an empty address); a
        # primary sends its first full sync at once rather than waiting 5 s for more replicas
        # to share it; each replica keeps the RDB it receives in a file of its own (with one
        # shared dump.rdb a restarted node would load another shard's keys and put their
        # slots in importing state).
        exec redis-server --port "$port" --bind 127.0.0.1 \
            --cluster-enabled yes --cluster-config-file "$DIR/nodes-$port.conf" \
            --cluster-node-timeout 2000 --save "" --appendonly no --daemonize yes \
            --pidfile "$DIR/redis-$port.pid" --logfile "$DIR/redis-$port.log" --dir "$DIR" \
            --cluster-announce-ip 127.0.0.1 --dbfilename "dump-$port.rdb" --repl-diskless-sync-delay 0 \
            </dev/null >&2
    ) || {
        tail_log "$port"
        die "redis-server on 127.0.0.1:$port did not start; see $DIR/redis-$port.log"
    }
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    until answers "$port"; do
        if (($(now_ms) > deadline)); then
            tail_log "$port"
            die "redis-server on 127.0.0.1:$port did not answer PING within ${TIMEOUT}s; see $DIR/redis-$port.log"
        fi
        sleep 0.05
    done
}

# stop_node PORT: SHUTDOWN NOSAVE, SIGKILL if it is still there after 5 s. Only touches the
# process named by D's pid file, or a node that answers on PORT with D as its directory.
stop_node() {
    local port=$1 pid="" deadline
    if pid=$(node_pid "$port"); then
        local status=0
        rcli "$port" shutdown nosave >/dev/null 2>&1 || status=$?
        # 124: no answer within CLI_TIMEOUT (stopped or wedged), so no point waiting more.
        deadline=$(($(now_ms) + (status == 124 ? 0 : 5000)))
        while pid_alive "$pid" && (($(now_ms) < deadline)); do sleep 0.05; done
        if pid_alive "$pid"; then
            log "127.0.0.1:$port (pid $pid) did not shut down on SHUTDOWN NOSAVE, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$(($(now_ms) + 5000))
            while pid_alive "$pid" && (($(now_ms) < deadline)); do sleep 0.05; done
            ! pid_alive "$pid" || die "127.0.0.1:$port (pid $pid) survived SIGKILL"
        fi
        log "stopped 127.0.0.1:$port (pid $pid)"
    elif [[ $(rcli "$port" config get dir 2>/dev/null | sed -n 2p) == "$DIR" ]]; then
        # Ours, but its pid file is gone (someone deleted it).
        rcli "$port" shutdown nosave >/dev/null 2>&1 || true
        deadline=$(($(now_ms) + 5000))
        while answers "$port" && (($(now_ms) < deadline)); do sleep 0.05; done
        ! answers "$port" || die "127.0.0.1:$port (no pid file) did not shut down; stop it by hand"
        log "stopped 127.0.0.1:$port"
    fi
    rm -f "$DIR/redis-$port.pid"
}

# stop_nodes: every node D knows of: its layout's ports, plus any pid or nodes file.
stop_nodes() {
    local ports=() file port
    if load_layout; then mapfile -t ports < <(node_ports); fi
    for file in "$DIR"/redis-*.pid "$DIR"/nodes-*.conf; do
        [[ -e $file ]] || continue
        port=${file##*-}
        ports+=("${port%.*}")
    done
    for port in $(printf '%s\n' "${ports[@]}" | sort -un); do stop_node "$port"; done
}

# remove_dir: deletes D, but only a directory this script made (it holds the layout file).
remove_dir() {
    [[ -e $DIR ]] || return 0
    [[ -f $STATE_FILE ]] || die "$DIR was not made by this script (no $STATE_NAME); not deleting it"
    rm -rf -- "$DIR"
}

# --- Cluster state -------------------------------------------------------------------

# cluster_problem: silent if the cluster of the loaded layout is healthy, otherwise prints
# the first thing wrong and fails. Healthy: every node answers, reports cluster_state:ok,
# all slots ok, N slot-owning primaries and every node known; N primaries and N*R replicas
# whose link to their primary is up.
cluster_problem() {
    local port info repl value key want primaries=0 replicas=0 count bad seen_p seen_r
    count=$(node_count)
    for port in $(node_ports); do
        info=$(rcli "$port" cluster info) || {
            echo "127.0.0.1:$port does not answer"
            return 1
        }
        for value in "cluster_state ok" "cluster_slots_ok $ALL_SLOTS" "cluster_known_nodes $count" "cluster_size $PRIMARIES"; do
            read -r key want <<<"$value"
            [[ $(field "$key" "$info") == "$want" ]] || {
                echo "127.0.0.1:$port reports $key:$(field "$key" "$info") (want $want)"
                return 1
            }
        done
        # Its CLUSTER NODES too: a replica's primary learns of it by gossip, after the
        # replica's link is up, and kill-primary reads the replicas from that view.
        value=$(cluster_nodes_of "$port" | awk '
            $3 ~ /fail|handshake|noaddr/ { bad++ }
            $3 ~ /master/ && NF > 4 { m++ }
            $3 ~ /slave/ && $4 != "-" { s++ }
            END { print bad + 0, m + 0, s + 0 }') || {
            echo "127.0.0.1:$port does not answer CLUSTER NODES"
            return 1
        }
        want="0 $PRIMARIES $((PRIMARIES * REPLICAS_PER_PRIMARY))"
        [[ $value == "$want" ]] || {
            read -r bad seen_p seen_r <<<"$value"
            echo "127.0.0.1:$port sees $seen_p primaries with slots and $seen_r replicas ($bad nodes failing or in handshake), want ${want#0 }"
            return 1
        }
        repl=$(rcli "$port" info replication) || {
            echo "127.0.0.1:$port does not answer INFO replication"
            return 1
        }
        case $(field role "$repl") in
            master) primaries=$((primaries + 1)) ;;
            slave)
                value=$(field master_link_status "$repl")
                [[ $value == up ]] || {
                    echo "replica 127.0.0.1:$port reports master_link_status:$value"
                    return 1
                }
                replicas=$((replicas + 1))
                ;;
        esac
    done
    ((primaries == PRIMARIES && replicas == PRIMARIES * REPLICAS_PER_PRIMARY)) || {
        echo "$primaries primaries and $replicas replicas, want $PRIMARIES and $((PRIMARIES * REPLICAS_PER_PRIMARY))"
        return 1
    }
}

# wait_healthy WHAT: until cluster_problem is silent, at most TIMEOUT seconds.
wait_healthy() {
    local deadline problem
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    until problem=$(cluster_problem); do
        (($(now_ms) < deadline)) || die "$1: not healthy after ${TIMEOUT}s: $problem (logs: $DIR/redis-*.log)"
        sleep 0.1
    done
}

# cluster_nodes_of PORT: CLUSTER NODES as "id port flags primary-id slot..." lines.
cluster_nodes_of() {
    rcli "$1" cluster nodes | awk 'NF >= 8 {
        addr = $2; sub(/@.*/, "", addr); n = split(addr, a, ":")
        line = $1 " " a[n] " " $3 " " $4
        for (i = 9; i <= NF; i++) line = line " " $i
        print line
    }'
}

# owner_of_slot SLOT < nodes: "id port" of the live primary that serves SLOT.
owner_of_slot() {
    awk -v slot="$1" '$3 ~ /master/ && $3 !~ /fail/ {
        for (i = 5; i <= NF; i++) {
            if ($i ~ /^\[/) continue
            n = split($i, r, "-"); lo = r[1] + 0; hi = (n == 2 ? r[2] : r[1]) + 0
            if (slot >= lo && slot <= hi) { print $1, $2; exit }
        }
    }'
}

first_answering() {
    local port
    for port in "$@"; do
        if answers "$port"; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# --- Creating the cluster ------------------------------------------------------------

# Three or more primaries: redis-cli does it (slots, config epochs, meet, replicas).
create_with_redis_cli() {
    local addrs=() port
    for port in $(node_ports); do addrs+=("127.0.0.1:$port"); done
    # redis-cli makes the first N addresses primaries; it waits for the join without limit.
    timeout $((TIMEOUT + 30)) redis-cli --cluster create "${addrs[@]}" \
        --cluster-replicas "$REPLICAS_PER_PRIMARY" --cluster-yes >"$DIR/create.log" 2>&1 || {
        tail -n 15 "$DIR/create.log" | sed 's/^/    create| /' >&2
        die "redis-cli --cluster create failed; see $DIR/create.log"
    }
}

# One or two primaries, which redis-cli refuses: the same steps by hand.
create_by_hand() {
    local ports i port lo hi out deadline
    mapfile -t ports < <(node_ports)
    {
        echo "# scripts/redis-cluster.sh: $PRIMARIES primaries, built by hand (redis-cli --cluster create wants 3)"
        for i in "${!ports[@]}"; do
            port=${ports[i]}
            # Distinct epochs, as redis-cli gives them, so no collision has to be resolved.
            out=$(rcli "$port" cluster set-config-epoch $((i + 1))) || die "127.0.0.1:$port: CLUSTER SET-CONFIG-EPOCH: $out"
            if ((i < PRIMARIES)); then
                lo=$((i * ALL_SLOTS / PRIMARIES))
                hi=$(((i + 1) * ALL_SLOTS / PRIMARIES - 1))
                out=$(rcli "$port" cluster addslotsrange "$lo" "$hi") || die "127.0.0.1:$port: CLUSTER ADDSLOTSRANGE $lo $hi: $out"
                echo "127.0.0.1:$port primary, slots $lo-$hi"
            fi
            if ((i > 0)); then
                out=$(rcli "$port" cluster meet 127.0.0.1 "${ports[0]}") || die "127.0.0.1:$port: CLUSTER MEET: $out"
            fi
        done
        # A replica can follow its primary only once the handshake has told it the id.
        deadline=$(($(now_ms) + TIMEOUT * 1000))
        for ((i = PRIMARIES; i < ${#ports[@]}; i++)); do
            local primary=${ports[(i - PRIMARIES) % PRIMARIES]} id
            id=$(rcli "$primary" cluster myid) || die "127.0.0.1:$primary: CLUSTER MYID: $id"
            until out=$(rcli "${ports[i]}" cluster replicate "$id"); do
                (($(now_ms) < deadline)) || die "127.0.0.1:${ports[i]} could not replicate 127.0.0.1:$primary within ${TIMEOUT}s: $out"
                sleep 0.1
            done
            echo "127.0.0.1:${ports[i]} replica of 127.0.0.1:$primary"
        done
    } >"$DIR/create.log"
}

# --- Subcommands ---------------------------------------------------------------------

CREATING=0
# A `start` that fails stops the nodes it started; D stays for its logs, and the next
# `start` removes it.
on_exit() {
    local status=$?
    if ((status != 0 && CREATING)); then
        CREATING=0
        log "start failed: stopping its nodes (logs kept in $DIR)"
        (stop_nodes) || true
    fi
}
trap on_exit EXIT

cmd_start() {
    parse_options "--primaries --replicas-per-primary --base-port --dir" "$@"
    local count last port problem t0
    count=$(node_count)
    last=$((BASE_PORT + count - 1))
    ((last + 10000 <= 65535)) || die "ports $BASE_PORT..$last and their cluster bus ports (+10000) must stay below 65536: choose a lower --base-port"
    lock
    if [[ -f $STATE_FILE ]]; then
        local want="$PRIMARIES $REPLICAS_PER_PRIMARY $BASE_PORT"
        load_layout
        if problem=$(cluster_problem); then
            [[ $want == "$PRIMARIES $REPLICAS_PER_PRIMARY $BASE_PORT" ]] ||
                die "a cluster of $PRIMARIES primaries with $REPLICAS_PER_PRIMARY replicas each is running in $DIR on 127.0.0.1:$BASE_PORT..; stop it first: scripts/redis-cluster.sh stop --dir $DIR"
            log "already running and healthy: $PRIMARIES primaries, $REPLICAS_PER_PRIMARY replicas each, 127.0.0.1:$BASE_PORT-$last"
            return 0
        fi
        log "the cluster in $DIR is not healthy ($problem): stopping what is left of it and starting afresh"
        stop_nodes
        remove_dir
        read -r PRIMARIES REPLICAS_PER_PRIMARY BASE_PORT <<<"$want"
    elif [[ -e $DIR ]]; then
        [[ -d $DIR && -z $(ls -A "$DIR") ]] || die "$DIR exists and was not made by this script (no $STATE_NAME): remove it or choose another --dir"
    fi
    # A node killed a moment ago may hold its ports until its last thread exits.
    local deadline=$(($(now_ms) + 10000))
    for port in $(node_ports); do
        while { port_in_use "$port" || port_in_use $((port + 10000)); } && (($(now_ms) < deadline)); do sleep 0.1; done
        port_in_use "$port" && die "port $port is in use by a process this script did not start; choose another --base-port"
        port_in_use $((port + 10000)) && die "port $((port + 10000)) (cluster bus of $port) is in use; choose another --base-port"
    done

    t0=$(now_ms)
    mkdir -p "$DIR"
    save_layout
    CREATING=1
    for port in $(node_ports); do start_node "$port"; done
    log "started $count redis-server processes on 127.0.0.1:$BASE_PORT-$last in $(since "$t0")"
    if ((PRIMARIES >= 3)); then create_with_redis_cli; else create_by_hand; fi
    wait_healthy "the new cluster"
    CREATING=0
    log "cluster healthy in $(since "$t0"): $PRIMARIES primaries (127.0.0.1:$BASE_PORT-$((BASE_PORT + PRIMARIES - 1))), $REPLICAS_PER_PRIMARY replicas each; seed $(seed_url)"
}

cmd_stop() {
    parse_options "--base-port --dir" "$@"
    lock
    if [[ ! -e $DIR ]]; then
        log "nothing to stop: no $DIR"
        return 0
    fi
    [[ -f $STATE_FILE ]] || die "$DIR was not made by this script (no $STATE_NAME); not touching it"
    stop_nodes
    remove_dir
    log "stopped the cluster and removed $DIR"
}

cmd_status() {
    parse_options "--base-port --dir" "$@"
    local ports=("$BASE_PORT") port info
    if load_layout; then mapfile -t ports < <(node_ports); fi
    port=$(first_answering "${ports[@]}") || {
        if ((${#ports[@]} > 1)); then
            echo "no node of the cluster in $DIR answers (127.0.0.1:${ports[0]}-${ports[-1]})"
        else
            echo "nothing answers on 127.0.0.1:$BASE_PORT (and $DIR holds no cluster)"
        fi
        return 1
    }
    [[ $port == "${ports[0]}" ]] || log "127.0.0.1:${ports[0]} does not answer; asking 127.0.0.1:$port"
    info=$(rcli "$port" cluster info) || die "127.0.0.1:$port: CLUSTER INFO: $info"
    echo "# cluster info (127.0.0.1:$port)"
    echo "$info"
    echo
    echo "# cluster nodes (id address flags primary ping pong epoch link slots)"
    rcli "$port" cluster nodes | sort -k2,2V
    [[ $(field cluster_state "$info") == ok ]]
}

seed_url() {
    local port seeds=()
    for ((port = BASE_PORT; port < BASE_PORT + PRIMARIES; port++)); do seeds+=("127.0.0.1:$port"); done
    local IFS=,
    echo "redis+cluster://${seeds[*]}"
}

cmd_url() {
    parse_options "--base-port --dir --primaries --replicas-per-primary" "$@"
    # Without --primaries, the layout of a cluster started in D, if any.
    if ((!GIVEN_PRIMARIES)) && [[ -f $STATE_FILE ]]; then
        local base=$BASE_PORT
        load_layout
        BASE_PORT=$base
    fi
    seed_url
}

cmd_kill_primary() {
    parse_options "--slot --base-port --dir" "$@"
    [[ -n $SLOT ]] || die "kill-primary needs --slot S (e.g. the answer of: redis-cli -p $BASE_PORT cluster keyslot KEY)"
    lock
    require_layout
    local ports asker nodes victim victim_id replicas primaries pid survivors=() port t0 deadline
    mapfile -t ports < <(node_ports)
    asker=$(first_answering "${ports[@]}") || die "no node of the cluster answers on 127.0.0.1:$BASE_PORT.."
    nodes=$(cluster_nodes_of "$asker") || die "127.0.0.1:$asker: CLUSTER NODES: $nodes"
    read -r victim_id victim < <(owner_of_slot "$SLOT" <<<"$nodes") ||
        die "no live primary serves slot $SLOT (see scripts/redis-cluster.sh status --dir $DIR)"
    replicas=$(awk -v id="$victim_id" '$4 == id && $3 !~ /fail/ { print $2 }' <<<"$nodes" | paste -sd' ')
    [[ -n $replicas ]] || die "primary 127.0.0.1:$victim (slot $SLOT) has no live replica to promote"
    # A replica is promoted by a majority of the slot-owning primaries, the dead one included.
    primaries=$(awk '$3 ~ /master/ && $3 !~ /fail/ && NF > 4' <<<"$nodes" | wc -l)
    ((primaries - 1 >= primaries / 2 + 1)) ||
        die "with $primaries primaries the survivors cannot outvote the dead one: no replica would be promoted (Redis Cluster needs 3 or more)"
    pid=$(node_pid "$victim") || die "127.0.0.1:$victim serves slot $SLOT but $DIR/redis-$victim.pid does not name its process; not killing it"
    for port in "${ports[@]}"; do
        if ((port != victim)) && answers "$port"; then survivors+=("$port"); fi
    done

    kill -KILL "$pid"
    t0=$(now_ms)
    log "killed primary 127.0.0.1:$victim (pid $pid, slot $SLOT) with SIGKILL; its replicas: $replicas"
    deadline=$((t0 + TIMEOUT * 1000))
    local new="" problem
    until problem=$(failover_problem "$victim" "${survivors[@]}"); do
        (($(now_ms) < deadline)) || die "no failover of 127.0.0.1:$victim within ${TIMEOUT}s: $problem"
        sleep 0.1
    done
    new=$(cluster_nodes_of "${survivors[0]}" | owner_of_slot "$SLOT" | cut -d' ' -f2)
    log "127.0.0.1:$new serves slot $SLOT and every surviving node reports cluster_state:ok, $(since "$t0") after the kill"
    echo "killed-port=$victim"
    echo "new-primary-port=$new"
}

# failover_problem VICTIM SURVIVOR...: silent once every survivor reports cluster_state:ok
# and names the same live primary, not VICTIM, for SLOT.
failover_problem() {
    local victim=$1 port info owner first=""
    shift
    for port in "$@"; do
        info=$(rcli "$port" cluster info) || {
            echo "127.0.0.1:$port does not answer"
            return 1
        }
        [[ $(field cluster_state "$info") == ok ]] || {
            echo "127.0.0.1:$port reports cluster_state:$(field cluster_state "$info")"
            return 1
        }
        owner=$(cluster_nodes_of "$port" | owner_of_slot "$SLOT" | cut -d' ' -f2)
        [[ -n $owner && $owner != "$victim" ]] || {
            echo "127.0.0.1:$port still sees ${owner:-no live primary} for slot $SLOT"
            return 1
        }
        [[ -z $first || $owner == "$first" ]] || {
            echo "the survivors disagree on slot $SLOT's primary ($first, $owner)"
            return 1
        }
        first=$owner
    done
}

cmd_restart_node() {
    parse_options "--port --base-port --dir" "$@"
    [[ -n $NODE_PORT ]] || die "restart-node needs --port X"
    lock
    require_layout
    local port=$NODE_PORT t0 deadline outcome restarted=1
    ((port >= BASE_PORT && port < BASE_PORT + $(node_count))) ||
        die "127.0.0.1:$port is not a node of the cluster in $DIR (127.0.0.1:$BASE_PORT-$((BASE_PORT + $(node_count) - 1)))"
    [[ -f $DIR/nodes-$port.conf ]] || die "no $DIR/nodes-$port.conf: 127.0.0.1:$port never joined this cluster"
    t0=$(now_ms)
    if node_pid "$port" >/dev/null; then
        restarted=0
    else
        deadline=$(($(now_ms) + 10000))
        while { port_in_use "$port" || port_in_use $((port + 10000)); } && (($(now_ms) < deadline)); do sleep 0.1; done
        port_in_use "$port" && die "port $port is in use by a process this script did not start"
        port_in_use $((port + 10000)) && die "port $((port + 10000)) (cluster bus of $port) is in use"
        start_node "$port"
    fi
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    # On failure rejoin_problem prints what is missing, on success the node's role.
    until outcome=$(rejoin_problem "$port"); do
        (($(now_ms) < deadline)) || die "127.0.0.1:$port did not rejoin within ${TIMEOUT}s: $outcome (log: $DIR/redis-$port.log)"
        sleep 0.1
    done
    if ((restarted)); then
        log "127.0.0.1:$port is back in the cluster, $outcome, $(since "$t0") after the restart"
    else
        log "127.0.0.1:$port was running already: $outcome"
    fi
}

# rejoin_problem PORT: fails with what is missing until PORT reports cluster_state:ok, is a
# replica whose link is up (or a primary with slots), and no other live node flags it as
# failing; then prints its role.
rejoin_problem() {
    local port=$1 info repl role id other nodes
    info=$(rcli "$port" cluster info) || {
        echo "it does not answer"
        return 1
    }
    [[ $(field cluster_state "$info") == ok ]] || {
        echo "it reports cluster_state:$(field cluster_state "$info")"
        return 1
    }
    repl=$(rcli "$port" info replication) || {
        echo "it does not answer INFO replication"
        return 1
    }
    role=$(field role "$repl")
    if [[ $role == slave ]]; then
        [[ $(field master_link_status "$repl") == up ]] || {
            echo "its link to its primary is $(field master_link_status "$repl")"
            return 1
        }
        role="replica of 127.0.0.1:$(field master_port "$repl")"
    else
        role="a primary"
    fi
    # "id primary-id" of itself, as it sees itself; every other live node must agree.
    local me seen
    me=$(cluster_nodes_of "$port" | awk '$3 ~ /myself/ { print $1, $4 }') || {
        echo "it does not answer CLUSTER NODES"
        return 1
    }
    id=${me%% *}
    for other in $(node_ports); do
        ((other != port)) || continue
        nodes=$(cluster_nodes_of "$other" 2>/dev/null) || continue
        seen=$(awk -v id="$id" '$1 == id { print $1, $4, ($3 ~ /fail/ ? "failing" : "") }' <<<"$nodes")
        [[ $seen == "$me " ]] || {
            echo "127.0.0.1:$other sees it as '${seen:-unknown}', it sees itself as '$me'"
            return 1
        }
    done
    echo "$role"
}

COMMAND=${1:-}
shift || true
case $COMMAND in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    url) cmd_url "$@" ;;
    kill-primary) cmd_kill_primary "$@" ;;
    restart-node) cmd_restart_node "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
