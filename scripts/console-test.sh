#!/usr/bin/env bash
# Browser tests of the web console (Tests/Console, Playwright + pytest on Debian's Chromium).
#
#   scripts/console-test.sh [path/to/skiff]       (default .build/debug/skiff; build it first)
#
# Installs Chromium, Playwright and pytest if missing, starts the binary on a free loopback port
# with the in-memory backend, an admin key and a send-only key, and queue history sampled every
# second, waits until it is ready, runs the tests, and stops it on exit.
#
# CONSOLE_REDIS_URL=redis://... runs the server on that Redis instead, under a key prefix of its
# own (the history the charts show is then the one every replica shares through Redis).
# CONSOLE_SCREENSHOTS=docs/images also writes the console's screenshots there.
# CONSOLE_METRICS=file writes the page weight and first-render times measured there (JSON).
# SKIFF_URL=http://host:port runs the tests against a server already running instead (it must
# serve /ui; give its keys in SKIFF_ADMIN_KEY and SKIFF_SEND_KEY). Extra arguments after the
# binary go to pytest (e.g. -k sign_in).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

BINARY=${1:-.build/debug/skiff}
shift || true
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

ensure_tools() {
    if [ ! -x "$CHROMIUM" ]; then
        log "installing chromium"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq chromium >/dev/null
    fi
    # Pinned: the versions the tests were written against (Playwright drives the system's
    # Chromium through its DevTools protocol, which both keep compatible across versions).
    if ! python3 -c 'from importlib.metadata import version as v; assert (v("playwright"), v("pytest")) == ("1.65.3", "9.0.3")' 2>/dev/null; then
        log "installing playwright and pytest"
        python3 -m pip --version >/dev/null 2>&1 || apt-get install -y -qq python3-pip >/dev/null
        # Debian 12's system Python refuses a global pip install without --break-system-packages.
        # Playwright's own browser download is not used: the tests drive $CHROMIUM.
        python3 -m pip install --quiet playwright==1.65.3 pytest==9.0.3 2>/dev/null ||
            python3 -m pip install --quiet --break-system-packages playwright==1.65.3 pytest==9.0.3
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits up to 20 s for GET /ready to answer 200; fails at once if the server exited.
wait_ready() {
    for _ in $(seq 1 200); do
        if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$SKIFF_URL/ready" 2>/dev/null; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

ensure_tools

if [ -n "${CONSOLE_SCREENSHOTS:-}" ]; then
    mkdir -p "$CONSOLE_SCREENSHOTS"
    CONSOLE_SCREENSHOTS=$(cd "$CONSOLE_SCREENSHOTS" && pwd)
    export CONSOLE_SCREENSHOTS
fi

WORK=$(mktemp -d /tmp/skiff-console-test.XXXXXX)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -n "${SKIFF_URL:-}" ]; then
    log "testing the server at $SKIFF_URL"
    : "${SKIFF_ADMIN_KEY:?with SKIFF_URL, set SKIFF_ADMIN_KEY to an admin key of that server}"
    : "${SKIFF_SEND_KEY:?with SKIFF_URL, give a send+receive key in SKIFF_SEND_KEY}"
else
    [ -x "$BINARY" ] || {
        echo "no skiff binary at $BINARY: run swift build first, or pass its path" >&2
        exit 1
    }
    PORT=$(free_port)
    SKIFF_ADMIN_KEY=console-admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    SKIFF_SEND_KEY=console-send-$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    export SKIFF_URL="http://127.0.0.1:$PORT" SKIFF_ADMIN_KEY SKIFF_SEND_KEY
    # No Redis variables and no settings file: the in-memory backend, unless CONSOLE_REDIS_URL.
    BACKEND=()
    if [ -n "${CONSOLE_REDIS_URL:-}" ]; then
        BACKEND=(REDIS_URL="$CONSOLE_REDIS_URL" REDIS_KEY_PREFIX="console-$(python3 -c 'import secrets; print(secrets.token_hex(4))')")
    fi
    log "starting $BINARY on $SKIFF_URL (${CONSOLE_REDIS_URL:-in memory}, with API keys)"
    env -u REDIS_URL -u REDIS_HOST -u SKIFF_SETTINGS_FILE -u SKIFF_API_KEYS_FILE "${BACKEND[@]}" \
        HOST=127.0.0.1 PORT="$PORT" LOG_LEVEL=warning ACCESS_LOG=false QUEUE_HISTORY_INTERVAL_MS=1000 \
        SKIFF_API_KEYS="[{\"key\": \"$SKIFF_ADMIN_KEY\", \"scopes\": [\"send\", \"receive\", \"admin\"], \"name\": \"console-admin\"},
                         {\"key\": \"$SKIFF_SEND_KEY\", \"scopes\": [\"send\", \"receive\"], \"name\": \"console-send\"}]" \
        "$BINARY" serve >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    wait_ready || {
        echo "skiff did not become ready at $SKIFF_URL:" >&2
        cat "$WORK/server.log" >&2
        exit 1
    }
fi

log "running Tests/Console"
python3 -m pytest -q -p no:cacheprovider Tests/Console "$@" || {
    status=$?
    if [ -s "$WORK/server.log" ]; then
        echo "== server log (last lines)"
        tail -40 "$WORK/server.log"
    fi
    exit "$status"
}
