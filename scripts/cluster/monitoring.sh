# shellcheck shell=bash
# Sourced by scripts/cluster.sh: the local picture of docs/operations.md (in
# the native mode; docker-compose.yml's `monitoring` profile is the same pair,
# fed the same files by write_monitoring_files). Prometheus (Debian's `prometheus`) scrapes every replica and
# evaluates deploy/prometheus/alerts.yml, the conditions of the Cloud
# Monitoring alert policies; Grafana, when `grafana-server` is installed (it is
# not a Debian package), shows deploy/grafana/skiff.json on top of it.
#
# MONITORING=auto (default) starts what is installed and says how to get the
# rest (and skips one whose port is taken, by another cluster's, say); on
# installs Prometheus with apt when missing; off starts neither and stops what
# an earlier `up` started. Prometheus listens on 127.0.0.1:9090
# (PROMETHEUS_PORT), Grafana on 127.0.0.1:3000 (GRAFANA_PORT); both keep their
# data in $STATE/prometheus and $STATE/grafana.

monitoring_mode() {
    case ${MONITORING:-auto} in
        auto | on | off) echo "${MONITORING:-auto}" ;;
        *) die "MONITORING must be auto, on or off, got '$MONITORING'" ;;
    esac
}

# write_monitoring_files PROMETHEUS_URL GRAFANA_DASHBOARDS HOST:PORT...: what Prometheus and
# Grafana read, in $STATE/prometheus and $STATE/grafana, for either mode: the configuration and
# rules of deploy/prometheus with the replicas to scrape (targets.json, file_sd: replaced whole,
# by a rename, so Prometheus never reads half of it), and Grafana's provisioning (the data
# source at PROMETHEUS_URL, the dashboards found in GRAFANA_DASHBOARDS) with deploy/grafana's
# dashboard.
write_monitoring_files() {
    local prometheus_url=$1 dashboards=$2 json="" target
    shift 2
    local prometheus=$STATE/prometheus grafana=$STATE/grafana
    mkdir -p "$prometheus" "$grafana/provisioning/datasources" "$grafana/provisioning/dashboards" "$grafana/dashboards"
    for target in "$@"; do json+="${json:+,}\"$target\""; done
    printf '[{"targets":[%s],"labels":{"cluster":"local"}}]\n' "$json" >"$prometheus/targets.json.new"
    mv "$prometheus/targets.json.new" "$prometheus/targets.json"
    cp "$ROOT/deploy/prometheus/prometheus.yml" "$ROOT/deploy/prometheus/alerts.yml" "$prometheus/"
    sed "s|@PROMETHEUS_URL@|$prometheus_url|" "$ROOT/deploy/grafana/datasource.yml" >"$grafana/provisioning/datasources/skiff.yml"
    sed "s|@DASHBOARDS@|$dashboards|" "$ROOT/deploy/grafana/dashboards.yml" >"$grafana/provisioning/dashboards/skiff.yml"
    cp "$ROOT/deploy/grafana/skiff.json" "$grafana/dashboards/"
}

prometheus_ready() { curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" 2>/dev/null; }

start_monitoring() {
    local mode
    mode=$(monitoring_mode)
    if [[ $mode == off ]]; then
        stop_monitoring
        return 0
    fi
    if ! command -v prometheus >/dev/null; then
        if [[ $mode == on ]]; then
            ensure_packages prometheus
        else
            log "Prometheus is not installed: no local metrics or alerts (apt-get install prometheus, or MONITORING=on to have up install it; MONITORING=off to skip this)"
            return 0
        fi
    fi
    local dir=$STATE/prometheus n targets=()
    for ((n = 1; n <= REPLICAS; n++)); do targets+=("127.0.0.1:$(replica_port "$n")"); done
    write_monitoring_files "http://127.0.0.1:$PROMETHEUS_PORT" "$STATE/grafana/dashboards" "${targets[@]}"
    if is_running prometheus; then
        # New rules or targets: SIGHUP rereads the configuration without losing the data.
        kill -HUP "$(pid_of prometheus)" 2>/dev/null || true
    else
        if [[ $mode == auto ]] && port_in_use "$PROMETHEUS_PORT"; then
            log "port $PROMETHEUS_PORT is taken (another cluster's Prometheus?): no Prometheus for this cluster (PROMETHEUS_PORT=... to choose another)"
            return 0
        fi
        require_free_port prometheus "$PROMETHEUS_PORT"
        spawn prometheus prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
            --storage.tsdb.retention.time=2d --web.listen-address="127.0.0.1:$PROMETHEUS_PORT"
        wait_for prometheus /-/ready $((SECONDS + UP_TIMEOUT)) prometheus_ready
        log "started prometheus on 127.0.0.1:$PROMETHEUS_PORT (pid $(pid_of prometheus || echo '?'))"
    fi
    start_grafana
}

# Grafana with the Prometheus data source and the Skiff dashboard provisioned, anonymous
# viewers allowed (it listens on 127.0.0.1 only).
start_grafana() {
    local server
    server=$(command -v grafana-server || command -v grafana || true)
    if [[ -z $server ]]; then
        log "Grafana is not installed (no Debian package: https://grafana.com/docs/grafana/latest/setup-grafana/installation/debian/, or run the cluster under Docker Compose); Prometheus alone: http://127.0.0.1:$PROMETHEUS_PORT"
        return 0
    fi
    is_running grafana && return 0
    if [[ $(monitoring_mode) == auto ]] && port_in_use "$GRAFANA_PORT"; then
        log "port $GRAFANA_PORT is taken: no Grafana for this cluster (GRAFANA_PORT=... to choose another)"
        return 0
    fi
    local dir=$STATE/grafana
    mkdir -p "$dir/data" "$dir/logs"
    local subcommand=()
    [[ $(basename "$server") == grafana ]] && subcommand=(server)
    require_free_port grafana "$GRAFANA_PORT"
    spawn grafana env GF_PATHS_DATA="$dir/data" GF_PATHS_LOGS="$dir/logs" GF_PATHS_PROVISIONING="$dir/provisioning" \
        GF_SERVER_HTTP_ADDR=127.0.0.1 GF_SERVER_HTTP_PORT="$GRAFANA_PORT" \
        GF_AUTH_ANONYMOUS_ENABLED=true GF_AUTH_ANONYMOUS_ORG_ROLE=Viewer GF_ANALYTICS_REPORTING_ENABLED=false \
        "$server" "${subcommand[@]}" --homepath "${GRAFANA_HOME:-/usr/share/grafana}"
    wait_for grafana /api/health $((SECONDS + UP_TIMEOUT)) curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$GRAFANA_PORT/api/health"
    log "started grafana on 127.0.0.1:$GRAFANA_PORT (pid $(pid_of grafana || echo '?'))"
}

stop_monitoring() {
    stop_process grafana TERM 15
    stop_process prometheus TERM 15
}

# One line each for `status` (nothing when neither runs).
monitoring_status() {
    local ok=0
    if [[ -f $PIDS/prometheus.pid ]]; then
        if prometheus_ready; then
            printf '  %-9s %-10s http://127.0.0.1:%s (alerts: /alerts)\n' prometheus healthy "$PROMETHEUS_PORT"
        else
            printf '  %-9s %-10s\n' prometheus unhealthy
            ok=1
        fi
    fi
    if [[ -f $PIDS/grafana.pid ]]; then
        if curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$GRAFANA_PORT/api/health" 2>/dev/null; then
            printf '  %-9s %-10s http://127.0.0.1:%s/d/skiff\n' grafana healthy "$GRAFANA_PORT"
        else
            printf '  %-9s %-10s\n' grafana unhealthy
            ok=1
        fi
    fi
    return $ok
}
