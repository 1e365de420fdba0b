#!/usr/bin/env bash
# A local stack for running `glassbox run` by hand, without Docker: Apache Kafka 4.x (KRaft,
# single node; or tansu with GLASSBOX_TEST_BROKER=tansu), redis, influxdb 1.x and victoria-metrics, each on a FREE loopback port (a thin wrapper over
# integration/scripts/stack.sh), plus the `llm.spans` topic and the `glassbox` database.
#
#   deploy/local-stack.sh up       start what is not running, create topic and database,
#                                  print the GLASSBOX_… exports on stdout
#   deploy/local-stack.sh env      print the exports again (the stack must be up)
#   deploy/local-stack.sh status   state of each server
#   deploy/local-stack.sh down     stop every server of this stack
#
# Typical use:
#   eval "$(deploy/local-stack.sh up)"
#   cargo run --release -p glassbox -- run            # in one terminal
#   cargo run --release -p glassbox -- loadgen --brokers "$GLASSBOX_KAFKA__BROKERS" --rate 500
#
# Servers come from integration/scripts/install.sh (Debian packages; Apache Kafka's jars from
# Maven Central through install-kafka.sh, cached in ~/.cache/glassbox/kafka; tansu, only when
# asked for, built once into ~/.cache/glassbox/tools). Its state lives in $LOCAL_STACK_DIR
# (default deploy/.stack), apart from the test stack (<repo>/.stack), so `down` never stops
# servers that tests are using. Knobs: LOCAL_STACK_DIR, LOCAL_STACK_TOPIC (llm.spans),
# LOCAL_STACK_PARTITIONS (4), LOCAL_STACK_INFLUX_DB (glassbox); STACK_READY_TIMEOUT and
# STACK_TANSU_STORAGE are passed on to stack.sh. Apache Kafka's storage is fresh at every `up`.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
STACK_SH="$REPO_ROOT/integration/scripts/stack.sh"
STACK_DIR="${LOCAL_STACK_DIR:-$SCRIPT_DIR/.stack}"
BROKER="${GLASSBOX_TEST_BROKER:-kafka}"
TOPIC="${LOCAL_STACK_TOPIC:-llm.spans}"
PARTITIONS="${LOCAL_STACK_PARTITIONS:-4}"
INFLUX_DB="${LOCAL_STACK_INFLUX_DB:-glassbox}"
export STACK_DIR

log() { printf '[local-stack] %s\n' "$*" >&2; }
die() { printf '[local-stack] ERROR: %s\n' "$*" >&2; exit 1; }

[ -f "$STACK_SH" ] || die "missing $STACK_SH"

# Loads GLASSBOX_TEST_* from the env file stack.sh writes; fails when a server is missing.
load_stack_env() {
  [ -f "$STACK_DIR/env" ] || die "the stack is not up ($STACK_DIR/env missing): run $0 up"
  # shellcheck disable=SC1091
  . "$STACK_DIR/env"
  local v
  for v in GLASSBOX_TEST_BROKERS GLASSBOX_TEST_REDIS_URL \
    GLASSBOX_TEST_INFLUX_V1_URL GLASSBOX_TEST_VM_URL; do
    [ -n "${!v:-}" ] || die "$v not in $STACK_DIR/env: a server is down; run $0 up"
  done
}

# Creates the input topic unless the broker already has it. Apache Kafka: its own TopicCommand
# (--if-not-exists). tansu: `tansu topic create` fails on an existing topic, and `tansu topic
# list` prints the topics as one line of JSON.
ensure_topic() {
  if [ "$BROKER" = kafka ]; then
    timeout 60 bash "$REPO_ROOT/integration/scripts/kafka-tool.sh" topics \
      --bootstrap-server "$GLASSBOX_TEST_BROKERS" --create --if-not-exists \
      --topic "$TOPIC" --partitions "$PARTITIONS" >&2 ||
      die "could not create topic $TOPIC on $GLASSBOX_TEST_BROKERS"
    log "topic $TOPIC ready ($PARTITIONS partitions when created now)"
    return 0
  fi
  local broker="tcp://$GLASSBOX_TEST_BROKERS" listing
  listing="$(timeout 40 "$GLASSBOX_TEST_TANSU_BIN" topic list --broker "$broker")" \
    || die "tansu topic list failed against $broker"
  if grep -Fq "\"name\":\"$TOPIC\"" <<<"$listing"; then
    log "topic $TOPIC already exists"
    return 0
  fi
  timeout 40 "$GLASSBOX_TEST_TANSU_BIN" topic create "$TOPIC" --partitions "$PARTITIONS" \
    --broker "$broker" >&2 || die "could not create topic $TOPIC on $broker"
  log "topic $TOPIC created with $PARTITIONS partitions"
}

# glassbox does not create InfluxDB databases; CREATE DATABASE is idempotent in InfluxQL.
ensure_influx_db() {
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -XPOST \
    "$GLASSBOX_TEST_INFLUX_V1_URL/query" --data-urlencode "q=CREATE DATABASE \"$INFLUX_DB\"")"
  [ "$code" = 200 ] || die "CREATE DATABASE $INFLUX_DB answered HTTP $code"
  log "influxdb database $INFLUX_DB ready"
}

print_exports() {
  cat <<EOF
# glassbox against the local stack in $STACK_DIR ($0 env prints this again)
export GLASSBOX_KAFKA__BROKERS=$GLASSBOX_TEST_BROKERS
export GLASSBOX_KAFKA__INPUT_TOPIC=$TOPIC
EOF
  if [ "$BROKER" = tansu ]; then
    cat <<EOF
# tansu does not serve a fetch that starts inside a record batch: resume from the partition start
export GLASSBOX_SOURCE__RESUME_REWIND_RECORDS=-1
# tansu drops commit metadata: the durable frontier goes to the state topic's offset
export GLASSBOX_KAFKA__FRONTIER_STORE=state_topic
EOF
  fi
  cat <<EOF
export GLASSBOX_INFLUX__ENABLED=true
export GLASSBOX_INFLUX__API=v1
export GLASSBOX_INFLUX__URL=$GLASSBOX_TEST_INFLUX_V1_URL
export GLASSBOX_INFLUX__DATABASE=$INFLUX_DB
export GLASSBOX_REDIS__ENABLED=true
export GLASSBOX_REDIS__URL=$GLASSBOX_TEST_REDIS_URL
# To write to victoria-metrics (InfluxDB v2 write API) instead of influxdb, use:
#   export GLASSBOX_INFLUX__API=v2 GLASSBOX_INFLUX__URL=$GLASSBOX_TEST_VM_URL GLASSBOX_INFLUX__ORG=local
export GLASSBOX_LOCAL_VM_URL=$GLASSBOX_TEST_VM_URL
EOF
}

print_hints() {
  log "next steps:"
  log "  eval \"\$($0 env)\""
  log "  cargo run --release -p glassbox -- run"
  log "  cargo run --release -p glassbox -- loadgen --brokers $GLASSBOX_TEST_BROKERS --topic $TOPIC --rate 500"
  log "  curl -G $GLASSBOX_TEST_INFLUX_V1_URL/query --data-urlencode db=$INFLUX_DB --data-urlencode 'q=SELECT sum(rpm) FROM glassbox_requests WHERE time > now() - 10m GROUP BY time(1m), view'"
  log "  redis-cli -u $GLASSBOX_TEST_REDIS_URL --scan --pattern 'glassbox:latest:*'"
}

cmd_up() {
  log "starting $BROKER, redis, influxdb and victoria-metrics (state in $STACK_DIR)"
  bash "$STACK_SH" start "$BROKER" redis influxdb victoria-metrics
  load_stack_env
  ensure_topic
  ensure_influx_db
  print_exports | tee "$STACK_DIR/glassbox.env"
  print_hints
}

cmd_env() {
  bash "$STACK_SH" status >/dev/null || die "the stack is not (fully) up: $0 status; $0 up"
  load_stack_env
  print_exports
}

cmd_down() {
  bash "$STACK_SH" stop
  rm -f "$STACK_DIR/glassbox.env"
}

case "${1:-}" in
  up) cmd_up ;;
  env) cmd_env ;;
  status) bash "$STACK_SH" status ;;
  down) cmd_down ;;
  *)
    echo "usage: $0 up | env | status | down" >&2
    exit 2
    ;;
esac
