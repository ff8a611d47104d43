#!/usr/bin/env bash
# A throwaway Redis for a dev box or a CI machine, without Docker: no
# persistence, bound to 127.0.0.1, everything (pid, log) under one directory.
#
#   redis.sh up <dir> [port=16379]     installs redis-server with apt if missing
#   redis.sh down <dir>
#   redis.sh health <dir> [port]       the port defaults to the one `up` used
set -euo pipefail

UP_TIMEOUT_S=20
DOWN_TIMEOUT_S=10

die() {
    echo "redis.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

abs_dir() {
    [[ -d "$1" ]] || die "$1: no such directory"
    (cd "$1" && pwd)
}

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

# The server's pid if it is running; /proc guards against a recycled pid.
server_pid() {
    local pid
    [[ -f "$1/redis.pid" ]] || return 0
    pid="$(cat "$1/redis.pid")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -F redis-server >/dev/null; then
        echo "$pid"
    fi
}

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

pong() {
    [[ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]
}

cmd_up() {
    local dir port="${2:-16379}" pid
    [[ "$port" =~ ^[0-9]+$ && "$port" -ge 1024 && "$port" -le 65535 ]] ||
        die "port must be a number in 1024..65535, got: $port"
    mkdir -p "$1"
    dir="$(abs_dir "$1")"
    pid="$(server_pid "$dir")"
    if [[ -n "$pid" ]]; then
        local running
        running="$(cat "$dir/redis.port" 2>/dev/null || echo "?")"
        [[ "$running" == "$port" ]] || die "$dir already serves Redis on port $running (pid $pid)"
    else
        ensure_redis
        ! port_open "$port" || die "127.0.0.1:$port is taken by another process"
        echo "$port" >"$dir/redis.port"
        rm -f "$dir/redis.pid"
        redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
            --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
            --save '' --appendonly no ||
            die "redis-server did not start; see $dir/redis.log"
    fi
    local deadline=$((SECONDS + UP_TIMEOUT_S))
    until pong "$port"; do
        if [[ $SECONDS -ge $deadline ]]; then
            echo "redis.sh: no PONG on 127.0.0.1:$port after ${UP_TIMEOUT_S}s; last lines of $dir/redis.log:" >&2
            tail -n 30 "$dir/redis.log" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    echo "redis.sh: up: redis://127.0.0.1:$port/0"
}

cmd_down() {
    local dir pid
    # Nothing to stop is not an error: cleanup paths call down after a failed up.
    [[ -d "$1" ]] || return 0
    dir="$(abs_dir "$1")"
    pid="$(server_pid "$dir")"
    if [[ -n "$pid" ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + DOWN_TIMEOUT_S))
        while [[ -n "$(server_pid "$dir")" && $SECONDS -lt $deadline ]]; do sleep 0.1; done
        if [[ -n "$(server_pid "$dir")" ]]; then
            echo "redis.sh: still running after ${DOWN_TIMEOUT_S}s; SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            while [[ -n "$(server_pid "$dir")" ]]; do sleep 0.1; done
        fi
    fi
    rm -f "$dir/redis.pid"
}

cmd_health() {
    local dir port pid
    dir="$(abs_dir "$1")"
    port="${2:-$(cat "$dir/redis.port" 2>/dev/null || echo 16379)}"
    pid="$(server_pid "$dir")"
    if [[ -z "$pid" ]]; then
        echo "redis 127.0.0.1:$port down"
        return 1
    fi
    if ! pong "$port"; then
        echo "redis 127.0.0.1:$port not answering (pid $pid)"
        return 1
    fi
    echo "redis 127.0.0.1:$port up (pid $pid)"
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
