# shellcheck shell=bash
# Sourced by scripts/cluster.sh: configure N [--reset] [KEY=VALUE...], extra
# environment for replica N only (native mode), kept in
# $OVERRIDES/skiff-N.env, read by replica_env (replicas.sh) at the next
# `start N` or `up`, and removed by `down`.

cmd_configure() {
    lock
    load_settings 0
    replica_arg "${1:-}"
    local n=$1 file arg key value
    shift
    file=$OVERRIDES/skiff-$n.env
    mkdir -p "$OVERRIDES"
    if [[ ${1:-} == --reset ]]; then
        rm -f "$file"
        shift
    fi
    # Earlier overrides first, in their order; a key given again keeps its place.
    declare -A values=()
    local order=()
    if [[ -f $file ]]; then
        while IFS= read -r arg; do
            [[ $arg =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
            key=${BASH_REMATCH[1]}
            [[ -n ${values[$key]+set} ]] || order+=("$key")
            values[$key]=${BASH_REMATCH[2]}
        done <"$file"
    fi
    for arg in "$@"; do
        [[ $arg =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || die "expected KEY=VALUE, got '$arg'"
        key=${BASH_REMATCH[1]}
        value=${BASH_REMATCH[2]}
        [[ $value =~ ^[^[:space:]\"\'\$\`\\]*$ ]] || die "$key: value must not contain spaces, quotes or \$"
        case $key in
            PORT | HOST | REPLICA_ID | PATH) die "$key is set by the cluster and cannot be overridden" ;;
        esac
        [[ -n ${values[$key]+set} ]] || order+=("$key")
        values[$key]=$value
    done
    {
        echo "# Written by scripts/cluster.sh configure $n; applied by 'start $n' and 'up'; removed by 'down'."
        for key in "${order[@]}"; do printf '%s=%s\n' "$key" "${values[$key]}"; done
    } >"$file.tmp"
    mv "$file.tmp" "$file"
    if ((${#order[@]} == 0)); then rm -f "$file"; fi
    log "skiff-$n overrides: ${order[*]:-none} (applied by 'scripts/cluster.sh start $n')"
}
