#!/usr/bin/env bash
# Kafka (KRaft) on a dev box or a CI machine, without Docker and without the
# Kafka tarball: the broker's jars come from Maven Central (pom.xml beside this
# script) into a cache shared by every checkout, and each node is a plain JVM.
#
#   kafka.sh fetch                               jars into the cache (once)
#   kafka.sh up <dir> [brokers=1] [base_port=19092]
#   kafka.sh down <dir>
#   kafka.sh health <dir>
#   kafka.sh kill <dir> <i>                      SIGKILL node i (fault tests)
#   kafka.sh start-node <dir> <i>                start node i again
#
# Nodes are numbered from 0. Node i listens on 127.0.0.1:base_port+i (clients)
# and 127.0.0.1:base_port+100+i (controller quorum); every node is both broker
# and controller. <dir>/cluster.env remembers the layout, so commands after
# `up` take only the directory.
set -euo pipefail

ME=kafka.sh
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/pom.xml"
LOG4J="$HERE/log4j2.properties"
CACHE="${LAKEBED_CACHE:-$HOME/.cache/lakebed}"
# The pom is the single place the version is written; the cache is keyed by it.
POM_KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
KAFKA_VERSION="$POM_KAFKA_VERSION"
UP_TIMEOUT_S=60
DOWN_TIMEOUT_S=20
QUORUMLESS_GRACE_S=6
FETCH_TMP=""
# The cluster's layout, read from <dir>/cluster.env by load_cluster.
CLUSTER_KAFKA_VERSION=""
CLUSTER_ID=""
BROKERS=""
BASE_PORT=""
CONTROLLERS=""
INITIAL_CONTROLLERS=""

cleanup() {
    if [[ -n "$FETCH_TMP" ]]; then rm -rf "$FETCH_TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

libs_dir() { echo "$CACHE/kafka/$KAFKA_VERSION/libs"; }

need_java() {
    command -v java >/dev/null 2>&1 ||
        die "java not found; Kafka $KAFKA_VERSION needs Java 17+ (apt-get install -y openjdk-17-jre-headless)"
    local major
    major="$(java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p')"
    major="${major%%$'\n'*}"
    if [[ -z "$major" || "$major" -lt 17 ]]; then
        die "Kafka $KAFKA_VERSION needs Java 17+, found: $(java -version 2>&1 | head -n 1)"
    fi
}

cmd_fetch() {
    local dest="$CACHE/kafka/$KAFKA_VERSION"
    [[ -f "$dest/.complete" ]] && return 0
    command -v mvn >/dev/null 2>&1 ||
        die "mvn not found; it fetches the Kafka jars once (apt-get install -y maven)"
    mkdir -p "$CACHE/kafka"
    # Leftovers of fetches that were SIGKILLed (no trap runs then).
    find "$CACHE/kafka" -maxdepth 1 -name '.fetch-*' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
    # Into a temporary folder first: an interrupted fetch must never look complete.
    FETCH_TMP="$(mktemp -d "$CACHE/kafka/.fetch-$KAFKA_VERSION.XXXXXX")"
    chmod 755 "$FETCH_TMP"
    echo "kafka.sh: fetching Kafka $KAFKA_VERSION from Maven Central into $dest (once)" >&2
    # Maven's output is only shown when it fails (even -q prints colour codes).
    if ! mvn -q -B -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DoutputDirectory="$FETCH_TMP/libs" -DincludeScope=runtime \
        >"$FETCH_TMP/mvn.log" 2>&1; then
        cat "$FETCH_TMP/mvn.log" >&2
        die "mvn could not fetch Kafka $KAFKA_VERSION (see above)"
    fi
    rm -f "$FETCH_TMP/mvn.log"
    [[ -f "$FETCH_TMP/libs/kafka_2.13-$KAFKA_VERSION.jar" ]] ||
        die "mvn finished but kafka_2.13-$KAFKA_VERSION.jar is missing"
    touch "$FETCH_TMP/.complete"
    if ! mv -T "$FETCH_TMP" "$dest" 2>/dev/null; then
        # Another fetch may have finished first; its copy is as good as ours.
        [[ -f "$dest/.complete" ]] || die "$dest exists but is incomplete; remove it and retry"
        rm -rf "$FETCH_TMP"
    fi
    FETCH_TMP=""
}

# A Kafka Uuid (base64url, 22 characters), made here rather than by starting a
# JVM for `StorageTool random-uuid`. Kafka refuses ids that start with '-'.
kafka_uuid() {
    local u
    while :; do
        u="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        if [[ "$u" != -* ]]; then
            echo "$u"
            return
        fi
    done
}

load_cluster() {
    local dir="$1"
    [[ -f "$dir/cluster.env" ]] || die "$dir holds no cluster (start one with: kafka.sh up $dir)"
    # shellcheck source=/dev/null
    source "$dir/cluster.env"
    KAFKA_VERSION="$CLUSTER_KAFKA_VERSION"
}

broker_port() { echo $((BASE_PORT + $1)); }
controller_port() { echo $((BASE_PORT + 100 + $1)); }

check_index() {
    [[ "$1" =~ ^[0-9]+$ && "$1" -lt "$BROKERS" ]] || die "no node $1: nodes are 0..$((BROKERS - 1))"
}

# The node's pid if its JVM is running.
node_pid() { live_pid "$1/node-$2/pid" "$1/node-$2/server.properties"; }

# The client port opens before the broker is unfenced (and so before it can
# host new replicas); "Kafka Server started" is logged after. Only lines written
# since this start count.
node_started() {
    local nd="$1/node-$2" offset=0
    [[ -f "$nd/log.offset" ]] && offset="$(cat "$nd/log.offset")"
    # (No grep -q after a pipe: see live_pid in ../lib.sh.)
    tail -c +"$((offset + 1))" "$nd/server.log" 2>/dev/null | grep -F 'Kafka Server started' >/dev/null
}

node_ready() {
    [[ -n "$(node_pid "$1" "$2")" ]] && port_open "$(broker_port "$2")" && node_started "$1" "$2"
}

write_config() {
    local dir="$1" i="$2" nd="$1/node-$2" rf isr
    rf=$((BROKERS < 3 ? BROKERS : 3))
    isr=$((BROKERS >= 3 ? 2 : 1))
    mkdir -p "$nd"
    cat >"$nd/server.properties.tmp" <<EOF
# Written by deploy/kafka/kafka.sh on every up/start-node: edit the script, not this.
process.roles=broker,controller
node.id=$i
controller.quorum.bootstrap.servers=$CONTROLLERS
listeners=PLAINTEXT://127.0.0.1:$(broker_port "$i"),CONTROLLER://127.0.0.1:$(controller_port "$i")
advertised.listeners=PLAINTEXT://127.0.0.1:$(broker_port "$i"),CONTROLLER://127.0.0.1:$(controller_port "$i")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$nd/data

# A dev box: few threads, small internal topics, no surprise topics, and a
# killed broker fenced (its partitions moved) after 4 s rather than 9 s.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
num.partitions=4
default.replication.factor=$rf
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
offsets.topic.num.partitions=8
offsets.topic.replication.factor=$rf
transaction.state.log.num.partitions=8
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr

# Compaction that a test can watch happen: the cleaner looks every second and
# cleans as soon as anything is dirty (topics still need a small segment.ms,
# since the active segment is never cleaned).
log.cleaner.threads=1
log.cleaner.backoff.ms=1000
log.cleaner.min.cleanable.ratio=0.01
log.cleaner.min.compaction.lag.ms=0
log.cleaner.dedupe.buffer.size=16777216
EOF
    mv "$nd/server.properties.tmp" "$nd/server.properties"
}

format_node() {
    local dir="$1" i="$2" nd="$1/node-$2"
    [[ -f "$nd/data/meta.properties" ]] && return 0
    local quorum=(--standalone)
    if [[ "$BROKERS" -gt 1 ]]; then quorum=(--initial-controllers "$INITIAL_CONTROLLERS"); fi
    java -cp "$(libs_dir)/*" -Dlog4j2.configurationFile="$dir/config/log4j2.properties" \
        -Dlakebed.kafka.log="$nd/server.log" \
        kafka.tools.StorageTool format --config "$nd/server.properties" \
        --cluster-id "$CLUSTER_ID" "${quorum[@]}" >"$nd/format.log" 2>&1 || {
        cat "$nd/format.log" >&2
        die "could not format $nd/data"
    }
}

launch_node() {
    local dir="$1" i="$2" nd="$1/node-$2" port
    for port in "$(broker_port "$i")" "$(controller_port "$i")"; do
        port_free "$port" "node $i of $dir"
    done
    touch "$nd/server.log"
    stat -c %s "$nd/server.log" >"$nd/log.offset"
    rm -f "$nd/pid"
    # ZGC, not G1: on two cores shared with its clients, G1's young pauses (13 ms
    # on average, up to 141 ms, about one a second under 20k transactional
    # events/s) made the slowest commits. With ZGC the engine's Kafka loop with
    # no work (benchmarks/bench_stream.py's floor) went from a p99 of 88 to 21 ms
    # at 20k events/s, for the same broker CPU. LAKEBED_KAFKA_GC_OPTS replaces
    # the choice (e.g. "-XX:+UseG1GC -XX:MaxGCPauseMillis=20").
    local gc="${LAKEBED_KAFKA_GC_OPTS:--XX:+UseZGC}"
    # setsid: the node outlives this script and ignores a Ctrl-C aimed at the
    # caller. The pid is written by the process that then becomes the JVM.
    # shellcheck disable=SC2016  # $$ and $@ belong to the inner bash
    # shellcheck disable=SC2086  # the GC options are words, split on purpose
    setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$nd/pid" \
        java -Xmx512m $gc -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true \
        -cp "$(libs_dir)/*:$dir/config" \
        -Dlog4j2.configurationFile="$dir/config/log4j2.properties" \
        -Dlakebed.kafka.log="$nd/server.log" \
        kafka.Kafka "$nd/server.properties" </dev/null >>"$nd/server.log" 2>&1 &
    local _
    for _ in $(seq 50); do
        [[ -s "$nd/pid" ]] && return 0
        sleep 0.1
    done
    die "node $i did not start (see $nd/server.log)"
}

wait_ready() {
    local dir="$1" i
    shift
    local deadline=$((SECONDS + UP_TIMEOUT_S))
    for i in "$@"; do
        until node_ready "$dir" "$i"; do
            [[ -n "$(node_pid "$dir" "$i")" ]] ||
                die_with_log "$dir/node-$i/server.log" "node $i exited while starting"
            [[ $SECONDS -lt $deadline ]] ||
                die_with_log "$dir/node-$i/server.log" "node $i not up after ${UP_TIMEOUT_S}s"
            sleep 0.5
        done
    done
}

cmd_up() {
    local dir brokers="${2:-1}" base_port="${3:-19092}" i
    [[ "$brokers" == 1 || "$brokers" == 3 ]] ||
        die "brokers must be 1 or 3 (a 3-voter quorum survives one failure; 2 would not), got: $brokers"
    # Controller ports go up to base_port + 102.
    check_port base_port "$base_port" 65000
    mkdir -p "$1"
    dir="$(abs_dir "$1")"
    if [[ -f "$dir/cluster.env" ]]; then
        load_cluster "$dir"
        [[ "$BROKERS" == "$brokers" && "$BASE_PORT" == "$base_port" ]] ||
            die "$dir holds a cluster of $BROKERS broker(s) on port $BASE_PORT; use those, or another directory"
    else
        # First start: decide the cluster's identity once, so that a node
        # formatted later (say, after an interrupted up) joins the same quorum.
        BROKERS="$brokers"
        BASE_PORT="$base_port"
        KAFKA_VERSION="$POM_KAFKA_VERSION"
        local controllers=() initial=()
        for ((i = 0; i < BROKERS; i++)); do
            controllers+=("127.0.0.1:$(controller_port "$i")")
            initial+=("$i@127.0.0.1:$(controller_port "$i"):$(kafka_uuid)")
        done
        cat >"$dir/cluster.env.tmp" <<EOF
# Written by kafka.sh up; the cluster's identity. Remove <dir> to start afresh.
CLUSTER_KAFKA_VERSION=$KAFKA_VERSION
CLUSTER_ID=$(kafka_uuid)
BROKERS=$BROKERS
BASE_PORT=$BASE_PORT
CONTROLLERS=$(IFS=,; echo "${controllers[*]}")
INITIAL_CONTROLLERS=$(IFS=,; echo "${initial[*]}")
EOF
        mv "$dir/cluster.env.tmp" "$dir/cluster.env"
        load_cluster "$dir"
    fi
    need_java
    cmd_fetch
    mkdir -p "$dir/config"
    cp "$LOG4J" "$dir/config/log4j2.properties"
    local all=() formats=() job
    for ((i = 0; i < BROKERS; i++)); do
        all+=("$i")
        [[ -n "$(node_pid "$dir" "$i")" ]] && continue
        write_config "$dir" "$i"
        format_node "$dir" "$i" &
        formats+=("$!")
    done
    for job in "${formats[@]}"; do wait "$job" || exit 1; done
    for i in "${all[@]}"; do
        [[ -n "$(node_pid "$dir" "$i")" ]] || launch_node "$dir" "$i"
    done
    wait_ready "$dir" "${all[@]}"
    echo "kafka.sh: $BROKERS broker(s) up: $(bootstrap)"
}

bootstrap() {
    local i out=()
    for ((i = 0; i < BROKERS; i++)); do out+=("127.0.0.1:$(broker_port "$i")"); done
    (IFS=,; echo "${out[*]}")
}

cmd_start_node() {
    local dir i="$2"
    dir="$(abs_dir "$1")"
    load_cluster "$dir"
    check_index "$i"
    if [[ -z "$(node_pid "$dir" "$i")" ]]; then
        need_java
        cmd_fetch
        mkdir -p "$dir/config"
        cp "$LOG4J" "$dir/config/log4j2.properties"
        write_config "$dir" "$i"
        format_node "$dir" "$i"
        launch_node "$dir" "$i"
    fi
    wait_ready "$dir" "$i"
}

gone() { [[ -z "$(node_pid "$1" "$2")" ]]; }

cmd_down() {
    local dir i pid
    # Nothing to stop is not an error: cleanup paths call down after a failed up.
    if [[ ! -f "$1/cluster.env" ]]; then
        echo "kafka.sh: no cluster in $1; nothing to stop" >&2
        return 0
    fi
    dir="$(abs_dir "$1")"
    load_cluster "$dir"
    # All at once: one by one, the last node waits minutes for a controller
    # quorum that has already gone. Even so, the last node or two standing
    # sometimes hang for the same reason; once fewer than a majority remain they
    # get the raft client's own 5 s to finish, then SIGKILL. That loses nothing
    # the OS has not already been handed; the next start just recovers the logs.
    for ((i = 0; i < BROKERS; i++)); do
        pid="$(node_pid "$dir" "$i")"
        if [[ -n "$pid" ]]; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    local deadline=$((SECONDS + DOWN_TIMEOUT_S)) majority=$((BROKERS / 2 + 1))
    local alive quorum_lost_at=""
    while :; do
        alive=0
        for ((i = 0; i < BROKERS; i++)); do gone "$dir" "$i" || alive=$((alive + 1)); done
        [[ $alive -eq 0 || $SECONDS -ge $deadline ]] && break
        if [[ $BROKERS -gt 1 && $alive -lt $majority ]]; then
            [[ -n "$quorum_lost_at" ]] || quorum_lost_at=$SECONDS
            [[ $((SECONDS - quorum_lost_at)) -ge $QUORUMLESS_GRACE_S ]] && break
        fi
        sleep 0.2
    done
    for ((i = 0; i < BROKERS; i++)); do
        pid="$(node_pid "$dir" "$i")"
        if [[ -n "$pid" ]]; then
            echo "kafka.sh: node $i did not stop in time (quorum gone or ${DOWN_TIMEOUT_S}s up); SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for ((i = 0; i < BROKERS; i++)); do
        while ! gone "$dir" "$i"; do sleep 0.1; done
        rm -f "$dir/node-$i/pid"
    done
}

cmd_kill() {
    local dir i="$2" pid
    dir="$(abs_dir "$1")"
    load_cluster "$dir"
    check_index "$i"
    pid="$(node_pid "$dir" "$i")"
    if [[ -n "$pid" ]]; then
        kill -KILL "$pid" 2>/dev/null || true
        while ! gone "$dir" "$i"; do sleep 0.1; done
    fi
    rm -f "$dir/node-$i/pid"
}

cmd_health() {
    local dir i pid rc=0 where state
    dir="$(abs_dir "$1")"
    load_cluster "$dir"
    for ((i = 0; i < BROKERS; i++)); do
        pid="$(node_pid "$dir" "$i")"
        where="127.0.0.1:$(broker_port "$i")"
        if [[ -z "$pid" ]]; then
            state="down"
        elif ! port_open "$(broker_port "$i")"; then
            state="starting (pid $pid, port closed)"
        elif ! node_started "$dir" "$i"; then
            state="starting (pid $pid, not yet unfenced)"
        else
            state="up (pid $pid)"
        fi
        echo "node-$i $where $state"
        [[ "$state" == up* ]] || rc=1
    done
    return "$rc"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd="$1"
    shift
    case "$cmd" in
        fetch) [[ $# -eq 0 ]] || usage; cmd_fetch ;;
        up) [[ $# -ge 1 && $# -le 3 ]] || usage; cmd_up "$@" ;;
        down) [[ $# -eq 1 ]] || usage; cmd_down "$@" ;;
        health) [[ $# -eq 1 ]] || usage; cmd_health "$@" ;;
        kill) [[ $# -eq 2 ]] || usage; cmd_kill "$@" ;;
        start-node) [[ $# -eq 2 ]] || usage; cmd_start_node "$@" ;;
        -h | --help | help) usage 0 ;;
        *) usage ;;
    esac
}

main "$@"
