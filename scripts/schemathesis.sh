#!/usr/bin/env bash
# Runs schemathesis (property-based API testing, from PyPI) against a live replica on Redis, for
# every operation in openapi.yaml: every generated case must get a documented status, no 5xx,
# and responses that conform to the document.
#
#   scripts/schemathesis.sh             uses SKIFF_BIN (default .build/release/skiff)
#   ST_MAX_TIME=600 scripts/schemathesis.sh   a longer run
#
# Long-polls: the replica runs with MAX_TIMEOUT=500 and the document it is tested against says
# so (the one difference from openapi.yaml), so the longest wait schemathesis can generate stays
# well under its request timeout while still exercising waits.
#
# The event feed (`GET /api/{queue}/events`) is left out: its answer never ends while the client
# stays, which no request timeout can tell from a hang. StreamTests and EventStreamTests cover it.
#
# `positive_data_acceptance` is not checked: some schema-valid requests are refused by the queue's
# own settings (a delay beyond the queue's retention, a dead-letter queue naming the queue itself),
# with a documented 400 that says why.
set -euo pipefail
cd "$(dirname "$0")/.."

SKIFF_BIN=${SKIFF_BIN:-$PWD/.build/release/skiff}
TOOLS=${TOOLS_DIR:-$PWD/.cluster/tools}
VENV=$TOOLS/schemathesis-venv
WORK=$(mktemp -d "${TMPDIR:-/tmp}/skiff-schemathesis.XXXXXX")
PIDS=()
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ ! -x $VENV/bin/st ]]; then
    echo "schemathesis: installing schemathesis==4.32.5 into $VENV"
    mkdir -p "$TOOLS"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check schemathesis==4.32.5
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$WORK" --logfile "$WORK/redis.log" &
PIDS+=($!)
PORT=$(free_port)
# With a payload store that signs links, so that /payloads and payload=url are exercised too.
REDIS_URL="redis://127.0.0.1:$REDIS_PORT" HOST=127.0.0.1 PORT=$PORT MAX_TIMEOUT=500 DEFAULT_TIMEOUT=100 \
    PAYLOADS_STORE="file://$WORK/payloads" PAYLOADS_URL_SECRET=schemathesis-secret-of-at-least-32-bytes \
    "$SKIFF_BIN" serve >"$WORK/skiff.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do
    curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
    sleep 0.05
done

sed 's/maximum: 60000 }/maximum: 500 }/' openapi.yaml >"$WORK/openapi.yaml"
status=0
"$VENV/bin/st" run "$WORK/openapi.yaml" --url "http://127.0.0.1:$PORT" \
    --checks all --exclude-checks positive_data_acceptance --exclude-operation-id events \
    --request-timeout 5 --max-time "${ST_MAX_TIME:-150}" --workers 2 \
    --phases examples,fuzzing --max-examples "${ST_MAX_EXAMPLES:-60}" \
    --seed "${ST_SEED:-20261123}" || status=$?
if [[ $status != 0 ]]; then
    echo "== replica log (last lines)"
    tail -40 "$WORK/skiff.log"
fi
exit $status
