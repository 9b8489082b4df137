# shellcheck shell=bash
# Sourced by scripts/cluster.sh: process supervision for the native mode.
#
# A pid file ($PIDS/NAME.pid) holds "PID STARTTIME": the start time (in clock
# ticks since boot, from /proc/PID/stat) tells our process apart from an
# unrelated one that reuses the PID later, so `down` can never kill anything it
# did not start. chaos/runner.py reads these files the same way.

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

# reap NAME: after a signal that ends it, waits until NAME's process is gone
# and forgets its pid file (keeping its .spec, which `start` compares against).
reap() {
    while is_running "$1"; do sleep 0.05; done
    rm -f "$PIDS/$1.pid"
}

# wait_for NAME ANSWER DEADLINE COMMAND...: until COMMAND succeeds. Dies, with
# the end of NAME's log, when NAME's process exits (native mode) or when
# SECONDS reaches DEADLINE, saying that NAME did not answer ANSWER in time.
wait_for() {
    local name=$1 answer=$2 deadline=$3
    shift 3
    until "$@"; do
        [[ $MODE == docker ]] || is_running "$name" || {
            tail_log "$name"
            die "$name exited; see $LOGS/$name.log"
        }
        ((SECONDS < deadline)) || {
            tail_log "$name"
            die "$name did not answer $answer within ${UP_TIMEOUT}s"
        }
        sleep 0.2
    done
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
