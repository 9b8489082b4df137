#!/usr/bin/env bash
# `make loadtest`: the Locust load test (bench/locust/locustfile.py) headless against the local
# cluster's proxy for a bounded time; writes bench/out/locust/{stats.csv,...,report.html}.
#
#   LOCUST_HOST        the proxy (default: the running `make up` cluster's, from scripts/cluster.sh)
#   LOADTEST_SECONDS   how long (60)
#   LOADTEST_USERS     users (30: producers, plain and acknowledged consumers, 2:1:1)
#   LOADTEST_OUT       where the report goes (bench/out/locust)
# Installs the pinned Locust (bench/locust/requirements.txt) into .cluster/tools/locust-venv.
# Fails when a request failed or nothing was delivered end to end.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TO_RUN=${LOADTEST_SECONDS:-60}
USERS=${LOADTEST_USERS:-30}
OUT=${LOADTEST_OUT:-bench/out/locust}
VENV=${TOOLS_DIR:-$PWD/.cluster/tools}/locust-venv

if [ -z "${LOCUST_HOST:-}" ]; then
    LOCUST_HOST=$(scripts/cluster.sh url 2>/dev/null || true)
    if [ -z "$LOCUST_HOST" ]; then
        echo "loadtest: no local cluster is running; start it with \`make up\`, or set LOCUST_HOST" >&2
        exit 2
    fi
fi
if ! curl -fsS -o /dev/null "$LOCUST_HOST/health"; then
    echo "loadtest: $LOCUST_HOST/health does not answer 200; is the cluster up (\`make up\`)?" >&2
    exit 2
fi

if [ ! -x "$VENV/bin/locust" ] || ! cmp -s bench/locust/requirements.txt "$VENV/requirements.txt"; then
    echo "== installing Locust into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r bench/locust/requirements.txt
    cp bench/locust/requirements.txt "$VENV/requirements.txt"
fi

mkdir -p "$OUT"
echo "== locust: $USERS users for ${SECONDS_TO_RUN}s against $LOCUST_HOST (report in $OUT)"
LOCUST_QUEUE=${LOCUST_QUEUE:-locust-$(date +%s)} "$VENV/bin/locust" -f bench/locust/locustfile.py --headless \
    -u "$USERS" -r "$USERS" -t "${SECONDS_TO_RUN}s" --host "$LOCUST_HOST" \
    --csv "$OUT/locust" --html "$OUT/report.html" --only-summary --exit-code-on-error 1 --stop-timeout 10
python3 - "$OUT/locust_stats.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
e2e = [r for r in rows if r["Type"] == "E2E"]
delivered = sum(int(r["Request Count"]) - int(r["Failure Count"]) for r in e2e)
for r in e2e:
    print(f"end to end, {r['Name']}: {r['Request Count']} messages, median {r['Median Response Time']} ms, "
          f"p95 {r['95%']} ms, p99 {r['99%']} ms")
if delivered == 0:
    sys.exit("loadtest: no message was delivered end to end")
PY
