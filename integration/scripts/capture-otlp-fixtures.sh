#!/usr/bin/env bash
# Captures REAL OTLP records, as the OpenTelemetry Collector's Kafka exporter writes them, for
# glassbox's decoder tests (issue #12). Nothing here writes a span by hand:
#
#   fake OpenAI server  <-  openai SDK app (llm_client.py), instrumented by OpenLLMetry or
#   OpenInference  --OTLP/HTTP-->  otelcol-glassbox (otlp receiver, 3 kafka exporters)
#   --> Kafka topics <lib>-proto, <lib>-json (partition_traces_by_id: false) and
#       <lib>-proto-byid (partition_traces_by_id: true)  --> kafka_capture.py --> fixtures
#
#   bash integration/scripts/capture-otlp-fixtures.sh [DEST]   (default schemas/testdata/otlp)
#
# Knobs: STACK_DIR (default /tmp/st-otlp; a private stack, stopped at the end), CAPTURE_CALLS
# (default 9), CAPTURE_FLUSH_EVERY (default 3: one OTLP export, so one Kafka record, per 3
# calls), CAPTURE_SEED (default 7), CAPTURE_KEEP=1 keeps the stack and the work dir.
# Needs: install-otelcol.sh, integration/clients/install-pyclients.sh, install-kafka.sh (run
# here on demand; each is idempotent).
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
CLIENTS="$REPO_ROOT/integration/clients"
DEST="${1:-$REPO_ROOT/schemas/testdata/otlp}"
export STACK_DIR="${STACK_DIR:-/tmp/st-otlp}"
CALLS="${CAPTURE_CALLS:-9}"
FLUSH_EVERY="${CAPTURE_FLUSH_EVERY:-3}"
SEED="${CAPTURE_SEED:-7}"
WORK="$STACK_DIR/capture"
log() { printf '[capture] %s\n' "$*" >&2; }
die() { printf '[capture] ERROR: %s\n' "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

OTELCOL="$(bash "$SCRIPT_DIR/install-otelcol.sh" | tail -1)"
PY="$(bash "$CLIENTS/install-pyclients.sh" | tail -1)"
[ -x "$OTELCOL" ] || die "no collector binary"
[ -x "$PY" ] || die "no python client venv"

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${CAPTURE_KEEP:-0}" != 1 ]; then
    bash "$SCRIPT_DIR/stack.sh" stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

rm -rf "$WORK"; mkdir -p "$WORK"
bash "$SCRIPT_DIR/stack.sh" start kafka
# shellcheck disable=SC1091
. "$STACK_DIR/env"
BROKERS="$GLASSBOX_TEST_BROKERS"
log "broker $BROKERS"

"$PY" "$CLIENTS/fake_openai.py" --seed "$SEED" --port-file "$WORK/fake.port" >"$WORK/fake.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$WORK/fake.port" ] && break; sleep 0.1; done
[ -s "$WORK/fake.port" ] || die "fake OpenAI server did not start: $(cat "$WORK/fake.log")"
FAKE="http://127.0.0.1:$(cat "$WORK/fake.port")/v1"

for lib in openllmetry openinference; do
  for t in "$lib-proto" "$lib-json" "$lib-proto-byid"; do
    bash "$SCRIPT_DIR/kafka-tool.sh" topics --bootstrap-server "$BROKERS" --create --if-not-exists \
      --topic "$t" --partitions 2 --replication-factor 1 >/dev/null
  done
  port="$(free_port)"
  cfg="$WORK/otelcol-$lib.yaml"
  cat >"$cfg" <<EOF
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:$port
exporters:
  kafka/proto:
    brokers: ["$BROKERS"]
    traces:
      topic: $lib-proto
      encoding: otlp_proto
    partition_traces_by_id: false
  kafka/json:
    brokers: ["$BROKERS"]
    traces:
      topic: $lib-json
      encoding: otlp_json
    partition_traces_by_id: false
  kafka/proto-byid:
    brokers: ["$BROKERS"]
    traces:
      topic: $lib-proto-byid
      encoding: otlp_proto
    partition_traces_by_id: true
service:
  telemetry:
    logs:
      level: info
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [kafka/proto, kafka/json, kafka/proto-byid]
EOF
  : >"$WORK/otelcol-$lib.log"
  "$OTELCOL" --config "$cfg" >"$WORK/otelcol-$lib.log" 2>&1 &
  cpid=$!
  PIDS+=($cpid)
  up=0
  for _ in $(seq 1 100); do
    if grep -q "Everything is ready" "$WORK/otelcol-$lib.log"; then up=1; break; fi
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.2
  done
  [ "$up" = 1 ] || { tail -20 "$WORK/otelcol-$lib.log" >&2; die "collector did not start"; }
  log "$lib: collector up on 127.0.0.1:$port"
  t0=$(date +%s)
  since_ms=$(( t0 * 1000 - 1000 ))
  timeout 300 "$PY" "$CLIENTS/llm_client.py" --instrumentation "$lib" \
    --otlp-endpoint "http://127.0.0.1:$port" --openai-base-url "$FAKE" \
    --calls "$CALLS" --flush-every "$FLUSH_EVERY" --seed "$SEED" --truth "$WORK/$lib.truth.json"
  spans="$("$PY" -c 'import json,sys; print(sum(len(c["spans"]) for c in json.load(open(sys.argv[1]))["calls"]))' "$WORK/$lib.truth.json")"
  timeout 120 "$PY" "$CLIENTS/kafka_capture.py" dump --brokers "$BROKERS" \
    --topic "$lib-proto" --topic "$lib-json" --topic "$lib-proto-byid" \
    --expect-spans "$spans" --since-ms "$since_ms" --out "$WORK/dump"
  log "$lib: $spans spans in each topic after $(( $(date +%s) - t0 )) s (client + read back)"
  kill "$cpid"; wait "$cpid" 2>/dev/null || true
done

mkdir -p "$DEST"
for lib in openllmetry openinference; do
  for enc in proto json; do
    "$PY" "$CLIENTS/kafka_capture.py" fixtures --dump "$WORK/dump" --truth "$WORK/$lib.truth.json" \
      --prefix "$lib" --encoding "$enc" --topic "$lib-$enc" --dest "$DEST" --max-records 3
  done
  # one trace per record, keyed by trace id: keep the one of a streamed, successful call (i=1)
  "$PY" "$CLIENTS/kafka_capture.py" fixtures --dump "$WORK/dump" --truth "$WORK/$lib.truth.json" \
    --prefix "$lib" --encoding proto --topic "$lib-proto-byid" --dest "$DEST" --max-records 1 \
    --tag byid --only-call 1
  cp "$WORK/$lib.truth.json" "$DEST/$lib-client.truth.json"
done
"$OTELCOL" --version >"$WORK/otelcol.version"
log "fixtures in $DEST ($(du -sh "$DEST" | cut -f1)); work dir $WORK"
