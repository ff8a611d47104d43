#!/usr/bin/env bash
# A throwaway Redis for a dev box or a CI machine, without Docker: no
# persistence, bound to 127.0.0.1, everything (pid, log) under one directory.
#
#   redis.sh up <dir> [port=16379]     installs redis-server with apt if missing
#   redis.sh down <dir>
#   redis.sh health <dir> [port]       the port defaults to the one `up` used
set -euo pipefail

ME=redis.sh
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

UP_TIMEOUT_S=20
DOWN_TIMEOUT_S=10

ensure_redis() {
    command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return 0
    [[ "$(id -u)" -eq 0 ]] ||
        die "redis-server is not installed and installing it needs root: sudo apt-get install -y redis-server"
    command -v apt-get >/dev/null 2>&1 || die "redis-server is not installed and there is no apt-get to install it"
    echo "redis.sh: installing redis-server with apt-get" >&2
    # A fresh image may have no package lists yet; only then pay for an update.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >&2 ||
        { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >&2; } ||
        die "apt-get could not install redis-server"
    # The package starts a system-wide Redis on 6379 where an init system runs;
    # this script's servers are the only ones wanted, so stop that one.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
        systemctl disable --now redis-server >&2 || true
    fi
}

# The server's pid if it is running.
server_pid() { live_pid "$1/redis.pid" redis-server; }

pong() {
    [[ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]
}

cmd_up() {
    local dir port="${2:-16379}" pid
    check_port port "$port"
    mkdir -p "$1"
    dir="$(abs_dir "$1")"
    pid="$(server_pid "$dir")"
    if [[ -n "$pid" ]]; then
        local running
        running="$(cat "$dir/redis.port" 2>/dev/null || echo "?")"
        [[ "$running" == "$port" ]] || die "$dir already serves Redis on port $running (pid $pid)"
    else
        ensure_redis
        port_free "$port"
        echo "$port" >"$dir/redis.port"
        rm -f "$dir/redis.pid"
        redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
            --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
            --save '' --appendonly no ||
            die "redis-server did not start; see $dir/redis.log"
    fi
    local deadline=$((SECONDS + UP_TIMEOUT_S))
    until pong "$port"; do
        [[ $SECONDS -lt $deadline ]] ||
            die_with_log "$dir/redis.log" "no PONG on 127.0.0.1:$port after ${UP_TIMEOUT_S}s"
        sleep 0.1
    done
    echo "redis.sh: up: redis://127.0.0.1:$port/0"
}

cmd_down() {
    local dir
    # Nothing to stop is not an error: cleanup paths call down after a failed up.
    [[ -d "$1" ]] || return 0
    dir="$(abs_dir "$1")"
    stop_server TERM "$DOWN_TIMEOUT_S" server_pid "$dir"
    rm -f "$dir/redis.pid"
}

cmd_health() {
    local dir port
    dir="$(abs_dir "$1")"
    port="${2:-$(cat "$dir/redis.port" 2>/dev/null || echo 16379)}"
    health_report "redis 127.0.0.1:$port" "$(server_pid "$dir")" "not answering" "" pong "$port"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd="$1"
    shift
    case "$cmd" in
        up) [[ $# -ge 1 && $# -le 2 ]] || usage; cmd_up "$@" ;;
        down) [[ $# -eq 1 ]] || usage; cmd_down "$@" ;;
        health) [[ $# -ge 1 && $# -le 2 ]] || usage; cmd_health "$@" ;;
        -h | --help | help) usage 0 ;;
        *) usage ;;
    esac
}

main "$@"
