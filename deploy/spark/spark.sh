#!/usr/bin/env bash
# The jars PySpark needs beside its own for the cluster profile: Iceberg's Spark
# runtime and AWS bundle (S3FileIO), PostgreSQL's JDBC driver (the Iceberg JDBC
# catalog) and the Structured Streaming Kafka source. They come from Maven Central
# (pom.xml beside this script) into a cache shared by every checkout, and Spark
# gets them as local files (spark.jars): nothing is resolved when a session starts.
#
#   spark.sh fetch          jars into the cache (once); prints their folder
#   spark.sh jars           the cached jars, comma-separated (fetches if missing)
#   spark.sh version        the Spark version the jars are built for
#
# Spark itself is the pyspark wheel, whose version must equal <spark.version> in
# the pom: the Kafka connector is built per Spark release.
set -euo pipefail

ME=spark.sh
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/pom.xml"
SETTINGS="$HERE/maven-settings.xml"
CACHE="${LAKEBED_CACHE:-$HOME/.cache/lakebed}"
pom_property() { sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" "$POM"; }
SPARK_VERSION="$(pom_property spark.version)"
ICEBERG_VERSION="$(pom_property iceberg.version)"
# Keyed by everything the pom pins, so a changed pin fetches a fresh set.
DEST="$CACHE/spark/jars-$(sha256sum "$POM" | cut -c1-12)"
FETCH_TMP=""

cleanup() {
    if [[ -n "$FETCH_TMP" ]]; then rm -rf "$FETCH_TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cmd_fetch() {
    if [[ ! -f "$DEST/.complete" ]]; then
        command -v mvn >/dev/null 2>&1 ||
            die "mvn not found; it fetches the Spark jars once (apt-get install -y maven)"
        mkdir -p "$CACHE/spark"
        # Leftovers of fetches that were SIGKILLed (no trap runs then).
        find "$CACHE/spark" -maxdepth 1 -name '.fetch-*' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
        # Into a temporary folder first: an interrupted fetch must never look complete.
        FETCH_TMP="$(mktemp -d "$CACHE/spark/.fetch-XXXXXX")"
        echo "$ME: fetching Iceberg $ICEBERG_VERSION and the Kafka source for Spark $SPARK_VERSION from Maven Central into $DEST (once)" >&2
        # Maven's output is only shown when it fails (even -q prints colour codes).
        if ! mvn -q -B -gs "$SETTINGS" -f "$POM" \
            dependency:copy-dependencies -DoutputDirectory="$FETCH_TMP" -DincludeScope=runtime \
            >"$FETCH_TMP.log" 2>&1; then
            cat "$FETCH_TMP.log" >&2
            rm -f "$FETCH_TMP.log"
            die "mvn could not fetch the Spark jars (see above)"
        fi
        rm -f "$FETCH_TMP.log"
        [[ -f "$FETCH_TMP/iceberg-spark-runtime-$(pom_property spark.minor)_2.13-$ICEBERG_VERSION.jar" ]] ||
            die "mvn finished but the Iceberg Spark runtime jar is missing"
        touch "$FETCH_TMP/.complete"
        if ! mv -T "$FETCH_TMP" "$DEST" 2>/dev/null; then
            # Another fetch may have finished first; its copy is as good as ours.
            [[ -f "$DEST/.complete" ]] || die "$DEST exists but is incomplete; remove it and retry"
            rm -rf "$FETCH_TMP"
        fi
        FETCH_TMP=""
    fi
    echo "$DEST"
}

cmd_jars() {
    cmd_fetch >/dev/null
    local jars=("$DEST"/*.jar)
    local IFS=,
    echo "${jars[*]}"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd="$1"
    shift
    [[ $# -eq 0 ]] || usage
    case "$cmd" in
        fetch) cmd_fetch ;;
        jars) cmd_jars ;;
        version) echo "$SPARK_VERSION" ;;
        -h | --help | help) usage 0 ;;
        *) usage ;;
    esac
}

main "$@"
