#!/usr/bin/env bash
# Fuzzes glassbox's decoders and its line-protocol renderer: ./integration/scripts/fuzz.sh
# [SECONDS_PER_TARGET (default 60)] [TARGET...] (default: every target of fuzz/Cargo.toml).
#
# Installs cargo-fuzz from crates.io when it is missing (into ~/.cargo/bin, where it stays),
# builds the targets of fuzz/ with the nightly toolchain (address sanitizer, release with
# debug assertions), then runs each target in turn for SECONDS_PER_TARGET seconds
# (libFuzzer's -max_total_time) on its corpus: fuzz/corpus/<target> (grown by the runs,
# ignored by git), the seeds in fuzz/seeds/<target> and the saved crashes in
# fuzz/regressions/<target>, which are replayed first. Exits non-zero if any target crashes,
# leaks, times out or runs out of memory; the input that did it is in fuzz/artifacts/<target>/.
# integration/README.md ("Fuzzing") says what each target asserts and what the long runs found.
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/glassbox/fuzz-target), FUZZ_JOBS (cargo build -j), and
# FUZZ_ARGS: extra libFuzzer flags, e.g. FUZZ_ARGS=-runs=10000000 for a run of a fixed size.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
cd "$REPO_ROOT"

SECONDS_PER_TARGET="${1:-60}"
[ "$#" -gt 0 ] && shift
case "$SECONDS_PER_TARGET" in
  '' | *[!0-9]*)
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
    ;;
esac

section() { printf '\n==== %s ====\n' "$*"; }

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 1
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  section "install cargo-fuzz (crates.io, into ~/.cargo/bin)"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
cargo fuzz --version

# Outside the clone, beside the project's other caches: a second run on the same machine (a
# developer's, or CI after a session) rebuilds only what changed; a cold build of the pipeline
# crate with the sanitizer takes tens of minutes on 2 cores.
TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/glassbox/fuzz-target}"
BUILD=(--target-dir "$TARGET_DIR")
[ -n "${FUZZ_JOBS:-}" ] && BUILD+=(--jobs "$FUZZ_JOBS")

if [ "$#" -gt 0 ]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi

# Only the renderer's target needs the pipeline crate (a long sanitizer build): the feature is
# on only when it is asked for.
if printf '%s\n' "${TARGETS[@]}" | grep -qx line_protocol; then
  BUILD+=(--features render)
fi

section "cargo +nightly fuzz build (${TARGETS[*]})"
if [ "$#" -gt 0 ]; then
  for target in "${TARGETS[@]}"; do
    cargo +nightly fuzz build "${BUILD[@]}" "$target"
  done
else
  cargo +nightly fuzz build "${BUILD[@]}"
fi

# -rss_limit_mb: no input may make a target hold 2 GiB (nor allocate it at once:
# -malloc_limit_mb defaults to the same). -timeout: no input may take 10 s. -max_len: 64 KiB,
# enough for any record shape (a Kafka record of glassbox's is at most its broker's
# message.max.bytes, 1 MiB by default).
# shellcheck disable=SC2206 # FUZZ_ARGS is a list of flags
FLAGS=(-max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -max_len=65536 -timeout=10
  -print_final_stats=1 ${FUZZ_ARGS:-})

failed=()
summary=()
for target in "${TARGETS[@]}"; do
  section "fuzz $target for ${SECONDS_PER_TARGET}s"
  corpus=("fuzz/corpus/$target")
  mkdir -p "fuzz/corpus/$target"
  for extra in "fuzz/seeds/$target" "fuzz/regressions/$target"; do
    [ -d "$extra" ] && corpus+=("$extra")
  done
  log="$(mktemp "${TMPDIR:-/tmp}/glassbox-fuzz-$target.XXXXXX")"
  set +e
  cargo +nightly fuzz run "${BUILD[@]}" "$target" "${corpus[@]}" -- "${FLAGS[@]}" 2>&1 |
    tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  runs="$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)"
  secs="$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | grep -o 'in [0-9]*' | grep -o '[0-9]*' || true)"
  rm -f "$log"
  summary+=("$(printf '%-14s %12s runs %6s s  exit %s' "$target" "${runs:-?}" "${secs:-?}" "$rc")")
  if [ "$rc" -ne 0 ]; then
    failed+=("$target")
    echo "fuzz.sh: $target FAILED (exit $rc); the input is in fuzz/artifacts/$target/" >&2
  fi
done

section "fuzz summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz.sh: failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: ${#TARGETS[@]} targets, no crash"
