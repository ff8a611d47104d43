# Helpers shared by the service scripts (kafka, redis, weaviate, postgres,
# seaweedfs). Not a script of its own: each one sets ME (its name, for
# messages) and then sources this file after its own `set -euo pipefail`,
# whose settings apply here too.
#
#   ME=redis.sh
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck shell=bash

die() {
    echo "$ME: $*" >&2
    exit 1
}

# die, after showing the end of the server's log: why it failed is usually there.
die_with_log() {
    local log="$1"
    shift
    echo "$ME: $*; last lines of $log:" >&2
    tail -n 30 "$log" >&2 || true
    exit 1
}

# The sourcing script's header comment, from line 2 down to `set -euo`, is its help.
usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[-1]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

# Absolute, so that pid checks against /proc match however the dir was named.
abs_dir() {
    [[ -d "$1" ]] || die "$1: no such directory"
    (cd "$1" && pwd)
}

# check_port NAME VALUE [MAX]: dies unless VALUE is an unprivileged port <= MAX
# (a server that opens ports above its base one needs a lower MAX).
check_port() {
    local max="${3:-65535}"
    [[ "$2" =~ ^[0-9]+$ && "$2" -ge 1024 && "$2" -le "$max" ]] ||
        die "$1 must be a number in 1024..$max, got: $2"
}

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# port_free PORT [WHAT]: dies if something already listens on 127.0.0.1:PORT.
port_free() {
    ! port_open "$1" || die "127.0.0.1:$1${2:+ ($2)} is taken by another process"
}

# need_go WHAT MIN_MINOR: dies unless a Go 1.MIN_MINOR+ toolchain can build WHAT.
need_go() {
    local what="$1" min="$2" version minor
    command -v go >/dev/null 2>&1 ||
        die "go not found; building $what needs Go 1.$min+ (https://go.dev/dl/)"
    # GOTOOLCHAIN=local: an older go must not try to download a newer one mid-build.
    version="$(GOTOOLCHAIN=local go env GOVERSION)"
    minor="$(sed -n 's/^go1\.\([0-9]*\).*/\1/p' <<<"$version")"
    if [[ -z "$minor" || "$minor" -lt "$min" ]]; then
        die "building $what needs Go 1.$min+, found: $version"
    fi
}

# live_pid PIDFILE PATTERN: the pid in PIDFILE's first line if that process is
# running and its command line holds PATTERN. /proc's command line guards
# against a recycled pid and a zombie (whose command line is empty).
live_pid() {
    local pid
    [[ -f "$1" ]] || return 0
    pid="$(head -n 1 "$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    # (No grep -q after a pipe: it can exit before the writer is done, and
    # under pipefail the writer's SIGPIPE fails the whole check.)
    if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -F -- "$2" >/dev/null; then
        echo "$pid"
    fi
}

# stop_server SIGNAL TIMEOUT_S PID_COMMAND...: sends SIGNAL to the pid that
# PID_COMMAND prints (nothing to do if none), waits up to TIMEOUT_S for it to
# go, then SIGKILLs it and waits again. PID_COMMAND (a script's server_pid)
# prints nothing once the server has gone, even if its pid was reused.
stop_server() {
    local signal="$1" timeout_s="$2" pid
    shift 2
    pid="$("$@")"
    [[ -n "$pid" ]] || return 0
    kill -"$signal" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + timeout_s))
    while [[ -n "$("$@")" && $SECONDS -lt $deadline ]]; do sleep 0.1; done
    if [[ -n "$("$@")" ]]; then
        echo "$ME: still running after ${timeout_s}s; SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        while [[ -n "$("$@")" ]]; do sleep 0.1; done
    fi
}

# health_report WHAT PID NOT_READY UP_DETAIL PROBE...: the one line `health`
# prints ("WHAT down", "WHAT NOT_READY (pid P)" or "WHAT up (UP_DETAIL, pid P)")
# and its status, 0 only when PID is set and PROBE succeeds.
health_report() {
    local what="$1" pid="$2" not_ready="$3" detail="$4"
    shift 4
    if [[ -z "$pid" ]]; then
        echo "$what down"
        return 1
    fi
    if ! "$@"; then
        echo "$what $not_ready (pid $pid)"
        return 1
    fi
    echo "$what up (${detail:+$detail, }pid $pid)"
}
