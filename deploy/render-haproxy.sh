#!/bin/sh
# Renders deploy/haproxy.cfg.tmpl for N Skiff replicas, to stdout.
#
#   deploy/render-haproxy.sh MODE REPLICAS [TEMPLATE]
#
# MODE is `native` (servers 127.0.0.1:8081, 8082, ... and binds on loopback)
# or `compose` (servers skiff-1:8080, skiff-2:8080, ... resolved through
# Docker's DNS, binds on all interfaces of the proxy container).
#
# Optional environment:
#   PROXY_PORT        native proxy port (8080)
#   PROXY_BIND        overrides the whole proxy bind (native 127.0.0.1:$PROXY_PORT, compose :8080)
#   PROXY_STATS_PORT  native stats port (8404)
#   STATS_BIND        overrides the stats bind (native 127.0.0.1:$PROXY_STATS_PORT, compose :8404)
#   REPLICA_BASE_PORT native replica N listens on REPLICA_BASE_PORT + N (8080)
#
# POSIX sh on purpose: the compose proxy runs it inside the official haproxy
# image, the native cluster runs it on the host, so both get the same output
# from the same template.
set -eu

usage() {
    echo "usage: $0 native|compose REPLICAS [TEMPLATE]" >&2
    exit 2
}

[ $# -ge 2 ] || usage
mode=$1
replicas=$2
template=${3:-$(dirname "$0")/haproxy.cfg.tmpl}

case $replicas in
    '' | *[!0-9]*) echo "render-haproxy: REPLICAS must be a number, got '$replicas'" >&2; exit 2 ;;
esac
if [ "$replicas" -lt 1 ] || [ "$replicas" -gt 99 ]; then
    echo "render-haproxy: REPLICAS must be between 1 and 99, got $replicas" >&2
    exit 2
fi
[ -r "$template" ] || { echo "render-haproxy: cannot read $template" >&2; exit 2; }

case $mode in
    native)
        proxy_bind=${PROXY_BIND:-127.0.0.1:${PROXY_PORT:-8080}}
        stats_bind=${STATS_BIND:-127.0.0.1:${PROXY_STATS_PORT:-8404}}
        base_port=${REPLICA_BASE_PORT:-8080}
        server_options=""
        ;;
    compose)
        proxy_bind=${PROXY_BIND:-:8080}
        stats_bind=${STATS_BIND:-:8404}
        base_port=""
        # init-addr: start even when a replica's name does not resolve yet
        # (container not created, or REPLICAS < number of servers); it stays
        # down until Docker's DNS knows it.
        server_options=" resolvers docker init-addr last,libc,none"
        ;;
    *) usage ;;
esac

# replace LINE TOKEN VALUE: every TOKEN in LINE replaced by VALUE (POSIX sh
# has no ${var//pattern/replacement}).
replace() {
    rest=$1
    out=""
    while :; do
        case $rest in
            *"$2"*)
                out=$out${rest%%"$2"*}$3
                rest=${rest#*"$2"}
                ;;
            *)
                printf '%s' "$out$rest"
                return
                ;;
        esac
    done
}

print_resolvers() {
    cat <<'EOF'
resolvers docker
    # Docker's embedded DNS server, as written in the container's resolv.conf.
    parse-resolv-conf
    # Re-resolve often and forget stale answers quickly: a replica container
    # that is recreated may come back with a different address.
    resolve_retries 3
    timeout resolve 1s
    timeout retry 1s
    hold valid 5s
    hold other 5s
    hold refused 5s
    hold nx 5s
    hold timeout 5s
    hold obsolete 5s
EOF
}

print_servers() {
    i=1
    while [ "$i" -le "$replicas" ]; do
        if [ "$mode" = native ]; then
            address=127.0.0.1:$((base_port + i))
        else
            address=skiff-$i:8080
        fi
        printf '    server skiff-%d %s\n' "$i" "$address"
        i=$((i + 1))
    done
}

while IFS= read -r line || [ -n "$line" ]; do
    case $line in
        *"# @RESOLVERS@"*)
            if [ "$mode" = compose ]; then print_resolvers; fi
            ;;
        *"# @SERVERS@"*)
            print_servers
            ;;
        *@PROXY_BIND@* | *@STATS_BIND@* | *@SERVER_OPTIONS@*)
            line=$(replace "$line" @PROXY_BIND@ "$proxy_bind")
            line=$(replace "$line" @STATS_BIND@ "$stats_bind")
            line=$(replace "$line" @SERVER_OPTIONS@ "$server_options")
            printf '%s\n' "$line"
            ;;
        *)
            printf '%s\n' "$line"
            ;;
    esac
done <"$template"
