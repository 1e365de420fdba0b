#!/usr/bin/env bash
# Builds, once, glassbox's small OpenTelemetry Collector distribution (OTLP receiver + contrib
# Kafka exporter) from the Go module in integration/scripts/otelcol/ and caches the binary:
#
#   ~/.cache/glassbox/tools/otelcol-glassbox          (GLASSBOX_TOOLS overrides the dir)
#
# Idempotent: skipped when the cached binary reports the expected version and was built from
# the same go.mod, go.sum and *.go (stamp file beside it). Prints the binary's path on stdout.
# Knobs: OTELCOL_BUILD_TIMEOUT (s, default 1500). Gentle on shared machines: one compile job
# at a time (-p=1) and nice 10. Measured here (2 cores, shared): see schemas/testdata/otlp/README.md.
# Go (only for a build): the go on PATH, else $GOROOT/bin, /usr/local/go/bin or /usr/lib/go/bin,
# at least the version of otelcol/go.mod; GOTOOLCHAIN=local, so no toolchain is downloaded.
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$SCRIPT_DIR/otelcol"
TOOLS="${GLASSBOX_TOOLS:-$HOME/.cache/glassbox/tools}"
BIN="$TOOLS/otelcol-glassbox"
WANT_VERSION="$(sed -n 's/^const Version = "\(.*\)"$/\1/p' "$SRC/main.go")"
TIMEOUT="${OTELCOL_BUILD_TIMEOUT:-1500}"
log() { printf '[install-otelcol] %s\n' "$*" >&2; }
die() { printf '[install-otelcol] ERROR: %s\n' "$*" >&2; exit 1; }

stamp_want="$(cat "$SRC/go.mod" "$SRC/go.sum" "$SRC"/*.go | sha256sum | cut -d' ' -f1)"
if [[ -x "$BIN" && -f "$BIN.stamp" && "$(cat "$BIN.stamp")" == "$stamp_want" ]] &&
  "$BIN" --version 2>/dev/null | grep -q "version $WANT_VERSION"; then
  log "cached: $BIN ($("$BIN" --version))"
  echo "$BIN"; exit 0
fi

# Go: the one on PATH, else the usual install places (/usr/local/go on this project's machines,
# where a non-login shell may not have it on PATH). Never a toolchain download: GOTOOLCHAIN=local.
WANT_GO="$(sed -n 's/^go \([0-9][0-9.]*\)$/\1/p' "$SRC/go.mod")"
if ! command -v go >/dev/null 2>&1; then
  for d in ${GOROOT:+"$GOROOT/bin"} /usr/local/go/bin /usr/lib/go/bin; do
    if [ -x "$d/go" ]; then PATH="$d:$PATH"; export PATH; break; fi
  done
fi
command -v go >/dev/null 2>&1 ||
  die "Go is not installed: needs go >= $WANT_GO on PATH or in /usr/local/go/bin (Debian's golang package is too old); the OTLP tests need this Collector"
export GOTOOLCHAIN=local
have_go="$(go env GOVERSION 2>/dev/null | sed 's/^go//')"
[ "$(printf '%s\n' "$WANT_GO" "$have_go" | sort -V | head -n 1)" = "$WANT_GO" ] ||
  die "$(command -v go) is go ${have_go:-(unknown version)}; building the Collector needs go >= $WANT_GO (go.mod)"
log "$(go version) ($(command -v go))"
mkdir -p "$TOOLS"
export GOFLAGS="-p=1 -buildvcs=false -mod=readonly"
export CGO_ENABLED=0
start=$(date +%s)
# Modules first (network), so a proxy that does not answer fails clearly and soon.
if ! (cd "$SRC" && timeout 600 nice -n 10 go mod download) >"$TOOLS/otelcol-glassbox.build.log" 2>&1; then
  tail -5 "$TOOLS/otelcol-glassbox.build.log" >&2
  die "go mod download failed or timed out (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
fi
log "modules ready in $(( $(date +%s) - start )) s; compiling (one job, nice 10)…"
if ! (cd "$SRC" && timeout "$TIMEOUT" nice -n 10 go build -trimpath -ldflags='-s -w' -o "$BIN.tmp" .) >>"$TOOLS/otelcol-glassbox.build.log" 2>&1; then
  tail -20 "$TOOLS/otelcol-glassbox.build.log" >&2
  rm -f "$BIN.tmp"
  die "go build failed or exceeded ${TIMEOUT}s (log: $TOOLS/otelcol-glassbox.build.log)"
fi
mv "$BIN.tmp" "$BIN"
echo "$stamp_want" >"$BIN.stamp"
log "built $BIN in $(( $(date +%s) - start )) s: $("$BIN" --version)"
echo "$BIN"
