#!/usr/bin/env bash
# The Debian packages that the tests of the cluster profile's services need, installed
# when missing: redis-server (the Redis feature store), postgresql (the Iceberg catalog's
# database), kcat (an outside Kafka client for the dead-letter test), and chromium (the
# browser of the dashboard's end-to-end tests, driven by Playwright: no browser
# download). Kafka itself comes from Maven Central (deploy/kafka/kafka.sh).
set -euo pipefail

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v kcat >/dev/null || missing+=(kcat)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
[ -x /usr/lib/chromium/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}; install them (as root: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing ${missing[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
  || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
# Debian starts a system Redis on 6379 and a PostgreSQL on 5432; the tests start their own.
for service in redis-server postgresql; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
    systemctl disable --now "$service" >/dev/null 2>&1 || true
  fi
done
