#!/usr/bin/env bash
# An S3-compatible object store on a dev box or a CI machine, without Docker:
# SeaweedFS (Apache-2.0), built from source with Go into a cache shared by
# every checkout, run as one `weed mini` process (master, volume, filer and S3
# gateway) with everything (data, log, pid, credentials) under one directory.
#
#   seaweedfs.sh build                       the binary only (once)
#   seaweedfs.sh up <dir> [s3_port=19000]
#   seaweedfs.sh down <dir>
#   seaweedfs.sh health <dir>
#
# The S3 API answers on 127.0.0.1:s3_port with Signature V4 and the one key
# pair $LAKEBED_S3_ACCESS_KEY / $LAKEBED_S3_SECRET_KEY (defaults: lakebed /
# lakebed-secret); `up` creates the bucket $LAKEBED_S3_BUCKET (default
# lakebed). The server's other ports follow from s3_port: master +1, volume +2,
# filer +3, and gRPC +10 (S3), +11 (master), +12 (volume), +13 (filer), +14
# (admin), all on 127.0.0.1; so servers whose s3 ports are 15 or more apart
# run side by side. <dir>/seaweedfs.env remembers the port.
set -euo pipefail

ME=seaweedfs.sh
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

SEAWEEDFS_MODULE="github.com/seaweedfs/seaweedfs"
# SeaweedFS tags releases as 4.x without a Go major-version path, so the module
# proxy knows a commit by its pseudo-version: this one is weed 4.53.
SEAWEEDFS_VERSION="v0.0.0-20261109003541-7506e5f91cd6"
GO_MIN_MINOR=26
CACHE="${LAKEBED_CACHE:-$HOME/.cache/lakebed}"
BIN_DIR="$CACHE/seaweedfs/bin"
BINARY="$BIN_DIR/weed"
UP_TIMEOUT_S=60
DOWN_TIMEOUT_S=20
ACCESS_KEY="${LAKEBED_S3_ACCESS_KEY:-lakebed}"
SECRET_KEY="${LAKEBED_S3_SECRET_KEY:-lakebed-secret}"
BUCKET="${LAKEBED_S3_BUCKET:-lakebed}"
S3_PORT=""
BUILD_TMP=""

cleanup() {
    if [[ -n "$BUILD_TMP" ]]; then rm -rf "$BUILD_TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cmd_build() {
    if [[ -x "$BINARY" && "$(cat "$BINARY.version" 2>/dev/null)" == "$SEAWEEDFS_VERSION" ]]; then
        return 0
    fi
    need_go SeaweedFS "$GO_MIN_MINOR"
    mkdir -p "$BIN_DIR"
    # Leftovers of builds that were SIGKILLed (no trap runs then).
    find "$BIN_DIR" -maxdepth 1 -name '.build.*' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
    # Into a temporary folder first: an interrupted build must never leave a
    # half-written binary where `up` would run it.
    BUILD_TMP="$(mktemp -d "$BIN_DIR/.build.XXXXXX")"
    echo "seaweedfs.sh: building SeaweedFS $SEAWEEDFS_VERSION into $BIN_DIR (once; takes several minutes)" >&2
    # Its go.mod has a replace directive, which `go install module@version`
    # refuses; so fetch the module through the module proxy and build it in place
    # (the module cache is read-only, the output goes elsewhere). The output is
    # only shown when the build fails (module downloads are noise).
    local src
    src="$(GOTOOLCHAIN=local go mod download -json "$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION" 2>"$BUILD_TMP/build.log" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')" || true
    [[ -n "$src" && -d "$src/weed" ]] || {
        tail -n 30 "$BUILD_TMP/build.log" >&2
        die "go mod download $SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION failed (output above)"
    }
    (cd "$src" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go build -o "$BUILD_TMP/weed" ./weed) \
        >>"$BUILD_TMP/build.log" 2>&1 || {
        tail -n 30 "$BUILD_TMP/build.log" >&2
        die "go build of $SEAWEEDFS_MODULE/weed@$SEAWEEDFS_VERSION failed (output above)"
    }
    mv -f "$BUILD_TMP/weed" "$BINARY"
    echo "$SEAWEEDFS_VERSION" >"$BINARY.version"
    echo "seaweedfs.sh: built $BINARY" >&2
}

# Ports the server opens, as "name=port" lines, derived from the S3 port.
ports() {
    echo "s3=$S3_PORT"
    echo "master=$((S3_PORT + 1))"
    echo "volume=$((S3_PORT + 2))"
    echo "filer=$((S3_PORT + 3))"
    echo "s3-grpc=$((S3_PORT + 10))"
    echo "master-grpc=$((S3_PORT + 11))"
    echo "volume-grpc=$((S3_PORT + 12))"
    echo "filer-grpc=$((S3_PORT + 13))"
    echo "admin-grpc=$((S3_PORT + 14))"
}

load_layout() {
    S3_PORT="$(sed -n 's/^S3_PORT=//p' "$1/seaweedfs.env" 2>/dev/null)"
    [[ -n "$S3_PORT" ]]
}

# The server's pid if it is running.
server_pid() { live_pid "$1/seaweedfs.pid" "$BINARY"; }

ready() {
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
        "http://127.0.0.1:$1/healthz" 2>/dev/null)" == 200 ]]
}

# PUT /<bucket>, signed (SigV4) by curl: 200 made it, 409 says it is there already.
create_bucket() {
    local code
    code="$(curl -s -o "$1/create-bucket.xml" -w '%{http_code}' --max-time 10 \
        --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
        -X PUT "http://127.0.0.1:$S3_PORT/$BUCKET")" || true
    [[ "$code" == 200 || "$code" == 409 ]] || {
        cat "$1/create-bucket.xml" >&2 2>/dev/null || true
        die "could not create the bucket $BUCKET (HTTP $code)"
    }
    rm -f "$1/create-bucket.xml"
}

# An object written and deleted: S3 answers /healthz well before it can store
# anything (the first volumes are grown on the first write, and a restarted
# master refuses writes for a 15 s warm-up while volume servers report in).
writable() {
    local url="http://127.0.0.1:$S3_PORT/$BUCKET/.lakebed-up" code
    code="$(echo up | curl -s -o /dev/null -w '%{http_code}' --max-time 30 \
        --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" -T - "$url")" || true
    [[ "$code" == 200 ]] || return 1
    curl -s -o /dev/null --max-time 10 --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$ACCESS_KEY:$SECRET_KEY" -X DELETE "$url" || true
}

start_server() {
    local dir="$1" name port
    while IFS='=' read -r name port; do
        port_free "$port" "$name"
    done < <(ports)
    # The keys go into JSON as they are: allow only what needs no escaping.
    [[ "$ACCESS_KEY" =~ ^[A-Za-z0-9._+/=-]+$ && "$SECRET_KEY" =~ ^[A-Za-z0-9._+/=-]+$ ]] ||
        die "the S3 keys may hold only letters, digits and . _ + / = -"
    [[ "$BUCKET" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "not a valid bucket name: $BUCKET"
    echo "S3_PORT=$S3_PORT" >"$dir/seaweedfs.env"
    (
        umask 077
        printf '{"identities": [{"name": "lakebed", "credentials": [{"accessKey": "%s", "secretKey": "%s"}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}\n' \
            "$ACCESS_KEY" "$SECRET_KEY" >"$dir/s3.json"
    )
    mkdir -p "$dir/data/master"
    rm -f "$dir/seaweedfs.pid"
    # `weed mini` is SeaweedFS's all-in-one mode for small setups. Everything
    # binds 127.0.0.1; WebDAV, the admin UI, the Iceberg REST and Lance ports
    # are off (the catalog is PostgreSQL's), and so is telemetry. The master's
    # state goes to data/master, not to a folder named after its port. The
    # servers also talk over unix sockets /tmp/seaweedfs-*-grpc-<port>.sock,
    # named by port and removed at exit.
    (
        cd "$dir"
        exec "$BINARY" -logtostderr=true -v=0 mini \
            -dir="$dir/data" -master.dir="$dir/data/master" \
            -ip=127.0.0.1 -ip.bind=127.0.0.1 \
            -s3.port="$S3_PORT" -s3.port.grpc="$((S3_PORT + 10))" \
            -master.port="$((S3_PORT + 1))" -master.port.grpc="$((S3_PORT + 11))" \
            -volume.port="$((S3_PORT + 2))" -volume.port.grpc="$((S3_PORT + 12))" \
            -filer.port="$((S3_PORT + 3))" -filer.port.grpc="$((S3_PORT + 13))" \
            -admin.port="$((S3_PORT + 4))" -admin.port.grpc="$((S3_PORT + 14))" \
            -admin.port.legacy=0 -admin.ui=false \
            -filer.localSocket="$dir/filer.sock" -s3.localSocket="$dir/s3.sock" \
            -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$dir/s3.json" \
            -master.electionTimeout=1s -webdav=false -master.telemetry=false
    ) >>"$dir/seaweedfs.log" 2>&1 </dev/null &
    echo $! >"$dir/seaweedfs.pid"
}

cmd_up() {
    local dir pid
    # The other ports go up to s3_port + 14.
    check_port s3_port "${2:-19000}" 65520
    mkdir -p "$1"
    dir="$(abs_dir "$1")"
    pid="$(server_pid "$dir")"
    if [[ -n "$pid" ]]; then
        load_layout "$dir" || die "$dir/seaweedfs.env is missing; stop pid $pid yourself"
        [[ "$S3_PORT" == "${2:-19000}" ]] ||
            die "$dir already serves SeaweedFS with S3 on port $S3_PORT (pid $pid)"
    else
        S3_PORT="${2:-19000}"
        cmd_build
        start_server "$dir"
    fi
    local deadline=$((SECONDS + UP_TIMEOUT_S))
    pid="$(cat "$dir/seaweedfs.pid")"
    until ready "$S3_PORT"; do
        # kill -0, not server_pid: for a moment after the start, the process is
        # still the shell that is about to exec the server.
        kill -0 "$pid" 2>/dev/null || die_with_log "$dir/seaweedfs.log" "the server exited"
        [[ $SECONDS -lt $deadline ]] ||
            die_with_log "$dir/seaweedfs.log" "S3 not ready on 127.0.0.1:$S3_PORT after ${UP_TIMEOUT_S}s"
        sleep 0.2
    done
    create_bucket "$dir"
    until writable; do
        [[ $SECONDS -lt $deadline ]] ||
            die_with_log "$dir/seaweedfs.log" "S3 on 127.0.0.1:$S3_PORT stores nothing after ${UP_TIMEOUT_S}s"
        sleep 0.5
    done
    echo "seaweedfs.sh: up: S3 at http://127.0.0.1:$S3_PORT, bucket $BUCKET"
}

cmd_down() {
    local dir
    # Nothing to stop is not an error: cleanup paths call down after a failed up.
    [[ -d "$1" ]] || return 0
    dir="$(abs_dir "$1")"
    # TERM lets the filer flush its metadata log; a KILL only costs replaying
    # the filer's LevelDB journal at the next start.
    stop_server TERM "$DOWN_TIMEOUT_S" server_pid "$dir"
    rm -f "$dir/seaweedfs.pid"
}

cmd_health() {
    local dir
    dir="$(abs_dir "$1")"
    load_layout "$dir" || { echo "seaweedfs $dir down (never started)"; return 1; }
    health_report "seaweedfs 127.0.0.1:$S3_PORT" "$(server_pid "$dir")" "not ready" "" ready "$S3_PORT"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd="$1"
    shift
    case "$cmd" in
        build) [[ $# -eq 0 ]] || usage; cmd_build ;;
        up) [[ $# -ge 1 && $# -le 2 ]] || usage; cmd_up "$@" ;;
        down) [[ $# -eq 1 ]] || usage; cmd_down "$@" ;;
        health) [[ $# -eq 1 ]] || usage; cmd_health "$@" ;;
        -h | --help | help) usage 0 ;;
        *) usage ;;
    esac
}

main "$@"
