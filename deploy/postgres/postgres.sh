#!/usr/bin/env bash
# A PostgreSQL for a dev box or a CI machine, without Docker: Debian's server
# binaries, one cluster under one directory (data, log, socket), bound to
# 127.0.0.1. It holds the Iceberg SQL catalog of the cluster profile.
#
#   postgres.sh up <dir> [port=15432]     installs postgresql with apt if missing
#   postgres.sh down <dir>
#   postgres.sh health <dir>
#
# `up` creates the role $LAKEBED_PG_USER (default lakebed) with the password
# $LAKEBED_PG_PASSWORD (default lakebed) and the database $LAKEBED_PG_DATABASE
# (default lakebed) that it owns: postgresql://lakebed:lakebed@127.0.0.1:<port>/lakebed. TCP clients
# authenticate with that password (scram-sha-256); the unix socket in <dir> is
# trusted, and only the server's owner can open <dir>. PostgreSQL refuses to
# run as root: as root, the cluster runs as the `postgres` system user, which
# then owns <dir> and must be able to reach it.
set -euo pipefail

ME=postgres.sh
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

UP_TIMEOUT_S=30
DOWN_TIMEOUT_S=20
PG_USER="${LAKEBED_PG_USER:-lakebed}"
PG_PASSWORD="${LAKEBED_PG_PASSWORD:-lakebed}"
PG_DATABASE="${LAKEBED_PG_DATABASE:-lakebed}"
PG_BIN=""
# How the server's commands run: as the postgres user when we are root.
AS=()

# The newest server Debian installed, e.g. /usr/lib/postgresql/15/bin.
find_bin() {
    local dir
    dir="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null |
        sort -V | tail -n 1)"
    [[ -n "$dir" ]] && PG_BIN="$(dirname "$dir")"
}

ensure_postgres() {
    find_bin && return 0
    [[ "$(id -u)" -eq 0 ]] ||
        die "the PostgreSQL server is not installed and installing it needs root: sudo apt-get install -y postgresql"
    command -v apt-get >/dev/null 2>&1 || die "the PostgreSQL server is not installed and there is no apt-get to install it"
    echo "postgres.sh: installing postgresql with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2 ||
        { apt-get update -q >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2; } ||
        die "apt-get could not install postgresql"
    # The package starts a system-wide cluster on 5432 where an init system runs;
    # this script's servers are the only ones wanted, so stop that one.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet postgresql 2>/dev/null; then
        systemctl disable --now postgresql >&2 || true
    fi
    find_bin || die "postgresql is installed but no /usr/lib/postgresql/<version>/bin/initdb exists"
}

# Root runs the server as `postgres`, and that user must own and reach the directory.
set_runner() {
    local dir="$1" path
    [[ "$(id -u)" -eq 0 ]] || return 0
    id postgres >/dev/null 2>&1 ||
        die "running as root, but there is no postgres system user to run the server as (apt-get install postgresql creates it)"
    AS=(runuser -u postgres --)
    # From the root down, so the message names the first folder that blocks it.
    path=""
    while IFS= read -r -d / part; do
        path="$path/$part"
        path="${path#/}"
        path="/${path#/}"
        "${AS[@]}" test -x "$path" ||
            die "the postgres user cannot enter $path, so it cannot reach $dir; use a folder it can reach (e.g. under /tmp) or chmod o+x $path"
    done <<<"${dir%/*}/"
    chown postgres: "$dir"
}

port_of() {
    sed -n 's/^PORT=//p' "$1/postgres.env" 2>/dev/null
}

# The postmaster's pid if it is running.
server_pid() { live_pid "$1/data/postmaster.pid" postgres; }

accepting() {
    find_bin || return 1
    timeout 3 "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -d postgres -t 2 2>/dev/null
}

init_cluster() {
    local dir="$1"
    echo "postgres.sh: initdb $dir/data" >&2
    "${AS[@]}" mkdir -p "$dir/data"
    # No fsync at initdb: it halves the time of a first `up`, and a cluster
    # whose machine dies during initdb is simply made again.
    "${AS[@]}" "$PG_BIN/initdb" -D "$dir/data" -U postgres --no-sync \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1 || {
        tail -n 20 "$dir/initdb.log" >&2
        die "initdb failed (output above)"
    }
    # Loopback only, the socket beside the data, a small footprint for a dev box.
    # The port comes from lakebed.conf, rewritten by every `up`.
    cat >>"$dir/data/postgresql.conf" <<EOF

# lakebed (deploy/postgres/postgres.sh)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
shared_buffers = 64MB
max_connections = 50
logging_collector = off
include_if_exists = 'lakebed.conf'
EOF
}

create_role_and_database() {
    local dir="$1" port="$2"
    # psql quotes the values itself (%I, %L), so any name or password is safe.
    "$PG_BIN/psql" -h "$dir" -p "$port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
        -v user="$PG_USER" -v pw="$PG_PASSWORD" -v db="$PG_DATABASE" >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'user', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
}

cmd_up() {
    local dir port="${2:-15432}" pid
    check_port port "$port"
    mkdir -p "$1"
    dir="$(abs_dir "$1")"
    # The socket path (<dir>/.s.PGSQL.<port>) must fit in a sockaddr_un.
    [[ ${#dir} -le 90 ]] || die "$dir is too long for a unix socket path (at most 90 characters)"
    ensure_postgres
    set_runner "$dir"
    pid="$(server_pid "$dir")"
    if [[ -n "$pid" ]]; then
        local running
        running="$(port_of "$dir")"
        [[ "$running" == "$port" ]] || die "$dir already serves PostgreSQL on port ${running:-?} (pid $pid)"
    else
        port_free "$port"
        [[ -f "$dir/data/PG_VERSION" ]] || init_cluster "$dir"
        echo "PORT=$port" >"$dir/postgres.env"
        echo "port = $port" | "${AS[@]}" tee "$dir/data/lakebed.conf" >/dev/null
        # pg_ctl -w returns once the server accepts connections (or failed).
        "${AS[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
            -t "$UP_TIMEOUT_S" start >/dev/null 2>&1 ||
            die_with_log "$dir/postgres.log" "the server did not start"
    fi
    local deadline=$((SECONDS + UP_TIMEOUT_S))
    until accepting "$port"; do
        [[ $SECONDS -lt $deadline ]] ||
            die_with_log "$dir/postgres.log" "not accepting connections on 127.0.0.1:$port after ${UP_TIMEOUT_S}s"
        sleep 0.1
    done
    create_role_and_database "$dir" "$port" || die "could not create the role $PG_USER and the database $PG_DATABASE"
    echo "postgres.sh: up: postgresql://$PG_USER@127.0.0.1:$port/$PG_DATABASE"
}

cmd_down() {
    local dir
    # Nothing to stop is not an error: cleanup paths call down after a failed up.
    [[ -d "$1" ]] || return 0
    dir="$(abs_dir "$1")"
    # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions,
    # checkpoint, exit. KILL only costs crash recovery at the next start.
    # postmaster.pid is PostgreSQL's own (it guards the data directory): left alone.
    stop_server INT "$DOWN_TIMEOUT_S" server_pid "$dir"
}

cmd_health() {
    local dir port
    dir="$(abs_dir "$1")"
    port="$(port_of "$dir")"
    [[ -n "$port" ]] || { echo "postgres $dir down (never started)"; return 1; }
    health_report "postgres 127.0.0.1:$port" "$(server_pid "$dir")" "not accepting connections" "" accepting "$port"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd="$1"
    shift
    case "$cmd" in
        up) [[ $# -ge 1 && $# -le 2 ]] || usage; cmd_up "$@" ;;
        down) [[ $# -eq 1 ]] || usage; cmd_down "$@" ;;
        health) [[ $# -eq 1 ]] || usage; cmd_health "$@" ;;
        -h | --help | help) usage 0 ;;
        *) usage ;;
    esac
}

main "$@"
