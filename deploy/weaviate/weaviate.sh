#!/usr/bin/env bash
# Weaviate on a dev box or a CI machine, without Docker: the server is built
# from source with `go install` into a cache shared by every checkout, and runs
# as a plain process with everything (data, log, pid) under one directory.
#
#   weaviate.sh build                                     the binary only (once)
#   weaviate.sh up <dir> [http_port=18080] [grpc_port=18081]
#   weaviate.sh down <dir>
#   weaviate.sh health <dir>
#
# REST listens on 127.0.0.1:http_port, gRPC on grpc_port. The cluster's own
# ports follow from the http port (gossip +2, data +3, raft +4, raft RPC +5),
# so servers whose http ports are 6 or more apart run side by side. The first
# `up` on a machine builds the server (several minutes, Go 1.26+);
# <dir>/weaviate.env remembers the ports, so later commands take only the dir.
set -euo pipefail

ME=weaviate.sh
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

WEAVIATE_VERSION="v1.38.0"
WEAVIATE_PACKAGE="github.com/weaviate/weaviate/cmd/weaviate-server"
GO_MIN_MINOR=26
CACHE="${LAKEBED_CACHE:-$HOME/.cache/lakebed}"
BIN_DIR="$CACHE/weaviate/bin"
BINARY="$BIN_DIR/weaviate-server"
UP_TIMEOUT_S=60
DOWN_TIMEOUT_S=20
# The layout, read from <dir>/weaviate.env by load_layout.
HTTP_PORT=""
GRPC_PORT=""
BUILD_TMP=""

cleanup() {
    if [[ -n "$BUILD_TMP" ]]; then rm -rf "$BUILD_TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The version the cached binary was built from, empty if go cannot tell.
built_version() {
    command -v go >/dev/null 2>&1 || return 0
    go version -m "$BINARY" 2>/dev/null |
        awk '$1 == "mod" && $2 == "github.com/weaviate/weaviate" { print $3 }'
}

cmd_build() {
    if [[ -x "$BINARY" ]]; then
        local built
        built="$(built_version)"
        # Without go, or on a binary go cannot read, trust what is there.
        [[ -z "$built" || "$built" == "$WEAVIATE_VERSION" ]] && return 0
        echo "weaviate.sh: cached server is $built, rebuilding as $WEAVIATE_VERSION" >&2
    fi
    need_go "Weaviate $WEAVIATE_VERSION" "$GO_MIN_MINOR"
    mkdir -p "$BIN_DIR"
    # Leftovers of builds that were SIGKILLed (no trap runs then).
    find "$BIN_DIR" -maxdepth 1 -name '.build.*' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
    # Into a temporary GOBIN first: an interrupted build must never leave a
    # half-written binary where `up` would run it.
    BUILD_TMP="$(mktemp -d "$BIN_DIR/.build.XXXXXX")"
    echo "weaviate.sh: building Weaviate $WEAVIATE_VERSION into $BIN_DIR (once; takes several minutes)" >&2
    # The output is only shown when the build fails (module downloads are noise).
    GOTOOLCHAIN=local GOBIN="$BUILD_TMP" go install "$WEAVIATE_PACKAGE@$WEAVIATE_VERSION" \
        >"$BUILD_TMP/build.log" 2>&1 || {
        tail -n 30 "$BUILD_TMP/build.log" >&2
        die "go install $WEAVIATE_PACKAGE@$WEAVIATE_VERSION failed (output above)"
    }
    mv -f "$BUILD_TMP/weaviate-server" "$BINARY"
    echo "weaviate.sh: built $BINARY" >&2
}

# Ports the server opens, as "name=port" lines, derived from the http port.
ports() {
    echo "http=$HTTP_PORT"
    echo "grpc=$GRPC_PORT"
    echo "gossip=$((HTTP_PORT + 2))"
    echo "data=$((HTTP_PORT + 3))"
    echo "raft=$((HTTP_PORT + 4))"
    echo "raft-rpc=$((HTTP_PORT + 5))"
}

load_layout() {
    [[ -f "$1/weaviate.env" ]] || return 1
    HTTP_PORT="$(sed -n 's/^HTTP_PORT=//p' "$1/weaviate.env")"
    GRPC_PORT="$(sed -n 's/^GRPC_PORT=//p' "$1/weaviate.env")"
    [[ -n "$HTTP_PORT" && -n "$GRPC_PORT" ]]
}

# The server's pid if it is running.
server_pid() { live_pid "$1/weaviate.pid" weaviate-server; }

ready() {
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
        "http://127.0.0.1:$1/v1/.well-known/ready" 2>/dev/null)" == 200 ]]
}

start_server() {
    local dir="$1" name port
    local -A seen=()
    while IFS='=' read -r name port; do
        [[ -z "${seen[$port]:-}" ]] ||
            die "the $name port $port is also the ${seen[$port]} port; pick a grpc_port outside $HTTP_PORT..$((HTTP_PORT + 5)) except $((HTTP_PORT + 1))"
        seen[$port]="$name"
        port_free "$port" "$name"
    done < <(ports)
    printf 'HTTP_PORT=%s\nGRPC_PORT=%s\n' "$HTTP_PORT" "$GRPC_PORT" >"$dir/weaviate.env"
    mkdir -p "$dir/data"
    rm -f "$dir/weaviate.pid"
    # Weaviate reads its whole configuration from the environment. Everything
    # that can bind to loopback does (REST by --host; gossip, raft and raft RPC
    # by CLUSTER_BIND_ADDR); gRPC and the cluster data port always bind every
    # interface in this version. Profiling would open :6060 on every interface
    # and collide between two servers, so it is off; metrics are off by default.
    (
        cd "$dir"
        exec env \
            PERSISTENCE_DATA_PATH="$dir/data" \
            AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED=true \
            DEFAULT_VECTORIZER_MODULE=none \
            ENABLE_MODULES= \
            DISABLE_TELEMETRY=true \
            GO_PROFILING_DISABLE=true \
            PROMETHEUS_MONITORING_ENABLED=false \
            GRPC_PORT="$GRPC_PORT" \
            CLUSTER_HOSTNAME=node1 \
            CLUSTER_IN_LOCALHOST=true \
            CLUSTER_BIND_ADDR=127.0.0.1 \
            CLUSTER_ADVERTISE_ADDR=127.0.0.1 \
            CLUSTER_GOSSIP_BIND_PORT="$((HTTP_PORT + 2))" \
            CLUSTER_DATA_BIND_PORT="$((HTTP_PORT + 3))" \
            RAFT_PORT="$((HTTP_PORT + 4))" \
            RAFT_INTERNAL_RPC_PORT="$((HTTP_PORT + 5))" \
            RAFT_JOIN="node1:$((HTTP_PORT + 4))" \
            RAFT_BOOTSTRAP_EXPECT=1 \
            RAFT_TIMEOUTS_MULTIPLIER=1 \
            LOG_LEVEL=info \
            "$BINARY" --host 127.0.0.1 --port "$HTTP_PORT" --scheme http
    ) >>"$dir/weaviate.log" 2>&1 </dev/null &
    echo $! >"$dir/weaviate.pid"
}

cmd_up() {
    local dir pid
    check_port http_port "${2:-18080}"
    check_port grpc_port "${3:-18081}"
    # The cluster ports go up to http_port + 5.
    [[ "${2:-18080}" -le 65530 ]] || die "http_port must be at most 65530, got: $2"
    mkdir -p "$1"
    dir="$(abs_dir "$1")"
    pid="$(server_pid "$dir")"
    if [[ -n "$pid" ]]; then
        load_layout "$dir" || die "$dir/weaviate.env is missing; stop pid $pid yourself"
        [[ "$HTTP_PORT" == "${2:-18080}" && "$GRPC_PORT" == "${3:-18081}" ]] ||
            die "$dir already serves Weaviate on ports $HTTP_PORT/$GRPC_PORT (pid $pid)"
    else
        HTTP_PORT="${2:-18080}"
        GRPC_PORT="${3:-18081}"
        cmd_build
        start_server "$dir"
    fi
    local deadline=$((SECONDS + UP_TIMEOUT_S))
    pid="$(cat "$dir/weaviate.pid")"
    until ready "$HTTP_PORT"; do
        # kill -0, not server_pid: for a moment after the start, the process is
        # still the shell that is about to exec the server.
        kill -0 "$pid" 2>/dev/null || die_with_log "$dir/weaviate.log" "the server exited"
        [[ $SECONDS -lt $deadline ]] ||
            die_with_log "$dir/weaviate.log" "not ready on 127.0.0.1:$HTTP_PORT after ${UP_TIMEOUT_S}s"
        sleep 0.2
    done
    echo "weaviate.sh: up: http://127.0.0.1:$HTTP_PORT (gRPC $GRPC_PORT)"
}

cmd_down() {
    local dir
    # Nothing to stop is not an error: cleanup paths call down after a failed up.
    [[ -d "$1" ]] || return 0
    dir="$(abs_dir "$1")"
    # TERM lets the server flush its write-ahead logs; a KILL only costs
    # replaying them at the next start.
    stop_server TERM "$DOWN_TIMEOUT_S" server_pid "$dir"
    rm -f "$dir/weaviate.pid"
}

cmd_health() {
    local dir
    dir="$(abs_dir "$1")"
    load_layout "$dir" || { echo "weaviate $dir down (never started)"; return 1; }
    health_report "weaviate 127.0.0.1:$HTTP_PORT" "$(server_pid "$dir")" "not ready" "gRPC $GRPC_PORT" \
        ready "$HTTP_PORT"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd="$1"
    shift
    case "$cmd" in
        build) [[ $# -eq 0 ]] || usage; cmd_build ;;
        up) [[ $# -ge 1 && $# -le 3 ]] || usage; cmd_up "$@" ;;
        down) [[ $# -eq 1 ]] || usage; cmd_down "$@" ;;
        health) [[ $# -eq 1 ]] || usage; cmd_health "$@" ;;
        -h | --help | help) usage 0 ;;
        *) usage ;;
    esac
}

main "$@"
