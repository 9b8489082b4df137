# shellcheck shell=bash
# Sourced by scripts/cluster.sh: what the native mode needs installed, the
# Debian packages and the skiff binary.

package_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# ensure_packages PKG...: installs the missing ones with apt, without starting
# their system services (a packaged redis-server or haproxy started by the
# install would take the very ports this cluster uses).
ensure_packages() {
    local missing=() pkg
    for pkg in "$@"; do package_installed "$pkg" || missing+=("$pkg"); done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "missing ${missing[*]}: run as root or install them"
        sudo=(sudo)
    fi
    log "installing ${missing[*]} with apt"
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        # Debian's documented switch: exit status 101 = "do not start services".
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        made_policy=1
    fi
    local status=0
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have no package lists yet: update once on failure.
    if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1; then
        "${sudo[@]}" apt-get update -q >>"$STATE/apt.log" 2>&1 &&
            "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$STATE/apt.log" 2>&1 || status=$?
    fi
    if ((made_policy)); then "${sudo[@]}" rm -f "$policy"; fi
    ((status == 0)) || {
        tail -n 20 "$STATE/apt.log" >&2
        die "apt-get install ${missing[*]} failed (full output in $STATE/apt.log)"
    }
}

# Sets SKIFF: $SKIFF_BIN if given, otherwise .build/release/skiff, built first
# when it is missing or older than any source file.
resolve_binary() {
    if [[ -n ${SKIFF_BIN:-} ]]; then
        [[ -x $SKIFF_BIN ]] || die "SKIFF_BIN=$SKIFF_BIN is not an executable file"
        SKIFF=$(cd "$(dirname "$SKIFF_BIN")" && pwd)/$(basename "$SKIFF_BIN")
        return
    fi
    SKIFF=$ROOT/.build/release/skiff
    local stale=""
    if [[ -x $SKIFF ]]; then
        stale=$(cd "$ROOT" && find Package.swift Sources -newer "$SKIFF" -print -quit 2>/dev/null)
        [[ -z $stale ]] && return
        log "$SKIFF is older than $stale: rebuilding"
    else
        log "$SKIFF not found: building it"
    fi
    command -v swift >/dev/null || die "swift not found: install a Swift toolchain, or set SKIFF_BIN"
    ensure_packages libhiredis-dev pkg-config
    (cd "$ROOT" && swift build -c release --product skiff) || die "swift build failed"
    [[ -x $SKIFF ]] || die "swift build did not produce $SKIFF"
}
