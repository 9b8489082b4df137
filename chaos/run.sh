#!/usr/bin/env bash
# The fault-injection run (issue #7): starts the local cluster (Redis with appendfsync always,
# CLAIM_LEASE_MS=3000 by default), runs producers and consumers while faults are injected on a
# seeded schedule, drains, runs the measured Redis phases, stops the cluster and checks the
# history. Prints `chaos: acked=N delivered=N lost=N duplicated=N unexpected=N recovered=K`
# (then `large-acked=N large-delivered=N orphans=N` when large messages were sent: every
# replica keeps bodies over 256 KiB in a payload store in the run directory, and a small
# share of the messages, CHAOS_LARGE_SHARE, are 300 KiB to 2 MiB); exits non-zero (and
# prints the seed to replay) when anything was lost, duplicated or unexpected.
#
#   chaos/run.sh                       full run (CHAOS_SECONDS=300)
#   CHAOS_SECONDS=120 chaos/run.sh     the bounded CI run, every fault kind at least once
#   CHAOS_SEED=1234 chaos/run.sh       replay a seed
#   REDIS_MODE=cluster chaos/run.sh    on a Redis Cluster: a primary killed and slots migrated
#                                      under load, with and without WAIT (make chaos-cluster-ci)
#   chaos/run.sh --check HISTORY       only check a recorded history
#   chaos/run.sh --unit                only the checker's own unit tests
#   chaos/run.sh --soak                the soak instead (`make soak`: chaos/soak.py, SOAK_SECONDS=1800)
#
# Settings: see `python3 -m chaos run --help` (CHAOS_*, CLAIM_LEASE_MS, REPLICAS, SKIFF_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

install_missing() { # [--soak]: the soak plots (gnuplot) and needs no fake clock
    local missing=()
    need python3 || missing+=(python3)
    need redis-server || missing+=(redis-server)
    need redis-cli || missing+=(redis-tools)
    need haproxy || missing+=(haproxy)
    need curl || missing+=(curl)
    if [[ ${1:-} == --soak ]]; then
        need gnuplot || missing+=(gnuplot-nox)
    else
        need faketime || missing+=(faketime)
    fi
    ((${#missing[@]} == 0)) && return 0
    ((EUID == 0)) || { echo "chaos: missing ${missing[*]}; install them (apt-get install ${missing[*]})" >&2; exit 1; }
    echo "chaos: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Do not let the packages start their own redis/haproxy services on the cluster's ports.
    local policy=/usr/sbin/policy-rc.d made=0
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made=1; fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
    ((made)) && rm -f "$policy"
    return 0
}

case ${1:-} in
    --unit)
        exec python3 -m chaos.tests
        ;;
    --check)
        exec python3 -m chaos check "${@:2}"
        ;;
    -h | --help)
        sed -n '2,/^set -euo pipefail/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
esac

command=run
if [[ ${1:-} == --soak ]]; then
    command=soak
    shift
fi
install_missing "--$command"
python3 -m chaos.tests >/dev/null 2>&1 || {
    echo "chaos: the checker's unit tests fail; run chaos/run.sh --unit" >&2
    exit 1
}
exec python3 -m chaos "$command" "$@"
