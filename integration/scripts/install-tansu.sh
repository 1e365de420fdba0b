#!/usr/bin/env bash
# Installs the tansu Kafka-API broker (Apache-2.0, crates.io) into a persistent cache,
# once. Idempotent: skips when the binary is already there. 16-22 min on 2 cores the
# first time (see shared/DESIGN.md §1).
set -euo pipefail
TOOLS="${GLASSBOX_TOOLS:-$HOME/.cache/glassbox/tools}"
VERSION="${TANSU_VERSION:-0.6.0}"
if [ -x "$TOOLS/bin/tansu" ] && "$TOOLS/bin/tansu" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "tansu $VERSION already installed at $TOOLS/bin/tansu"
  exit 0
fi
command -v cargo >/dev/null || { echo "install-tansu.sh: cargo not found on PATH" >&2; exit 1; }
mkdir -p "$TOOLS"
echo "building tansu $VERSION into $TOOLS (first time only: 16-22 min on 2 cores)" >&2
# A fixed target dir keeps partial builds across interrupted runs.
cargo install tansu --version "$VERSION" --locked --features dynostore,libsql \
  --root "$TOOLS" --target-dir "${GLASSBOX_TOOLS_TARGET:-$HOME/.cache/glassbox/tansu-target}"
"$TOOLS/bin/tansu" --version
