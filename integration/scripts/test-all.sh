#!/usr/bin/env bash
# The single test command of glassbox: ./integration/scripts/test-all.sh [cargo test args...]
# Installs what is missing (install.sh: Debian packages, Apache Kafka's jars and Apicurio
# Registry from Maven Central, the embedding models, the OpenTelemetry Collector built from the Go module proxy and the
# Python OTLP clients' venv from PyPI), starts a private stack (Apache Kafka 4.x in KRaft mode,
# or tansu with GLASSBOX_TEST_BROKER=tansu; redis, influxdb, victoria-metrics, alertmanager, and
# the Schema Registry) on
# free ports in a fresh temp dir, exports its GLASSBOX_TEST_* variables (stack.sh's header lists
# them; GLASSBOX_TEST_OTELCOL and GLASSBOX_TEST_PYTHON name the Collector and the clients'
# python, which the OTLP tests, integration/tests/otlp.rs, start themselves),
# runs clippy when GLASSBOX_LINT=1 or CI=true, then `cargo test --workspace "$@"` with the
# `servers` features on (without them, plain `cargo test` ignores the tests that need the stack).
# The stack is always stopped on exit; the exit code is cargo's.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
cd "$REPO_ROOT"

# The tests that need the stack are behind these features (ignored without them).
SERVERS="glassbox/servers,glassbox-integration/servers"

section() { printf '\n==== %s ====\n' "$*"; }

section "install (integration/scripts/install.sh)"
bash "$SCRIPT_DIR/install.sh" 2>&1

# A stack of our own, so a developer's .stack (or a second test-all run) is never touched.
STACK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/glassbox-test-stack.XXXXXX")"
export STACK_DIR
status=1
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  section "stop stack"
  bash "$SCRIPT_DIR/stack.sh" stop 2>&1 || true
  if [ "$status" -eq 0 ]; then
    rm -rf "$STACK_DIR"
  else
    echo "server logs kept in $STACK_DIR"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section "start stack in $STACK_DIR"
bash "$SCRIPT_DIR/stack.sh" start 2>&1
# shellcheck source=/dev/null
. "$STACK_DIR/env"

if [ "${GLASSBOX_LINT:-0}" = 1 ] || [ "${CI:-}" = true ]; then
  section "cargo fmt --all -- --check"
  cargo fmt --all -- --check || {
    rc=$?
    section "cargo fmt FAILED (exit $rc)"
    exit "$rc"
  }
  section "cargo clippy --workspace --all-targets --features $SERVERS -- -D warnings"
  cargo clippy --workspace --all-targets --features "$SERVERS" -- -D warnings || {
    rc=$?
    section "cargo clippy FAILED (exit $rc)"
    exit "$rc"
  }
fi

section "cargo test --workspace --features $SERVERS $*"
set +e
cargo test --workspace --features "$SERVERS" "$@"
status=$?
set -e
section "cargo test exit code: $status"
exit "$status"
