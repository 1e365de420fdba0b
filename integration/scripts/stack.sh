#!/usr/bin/env bash
# Local test stack for glassbox: a Kafka broker (Apache Kafka 4.x in KRaft mode by default, or
# tansu), redis, influxdb 1.x, victoria-metrics, prometheus-alertmanager and a Confluent-compatible
# Schema Registry (Apicurio Registry on the JVM, in-memory storage), each on a FREE loopback port,
# so it can run beside a developer's own stack.
#
#   stack.sh start [kafka|tansu|redis|influxdb|victoria-metrics|alertmanager|registry ...]
#                  (default: the broker GLASSBOX_TEST_BROKER names, kafka unless it says tansu,
#                   the four stores and the registry)
#   stack.sh stop                                                 (stops every service)
#   stack.sh status
#
# State dir: $STACK_DIR, else <repo>/.stack. Per service: <name>.log, <name>.pid, <name>.port.
# Writes $STACK_DIR/env (sourceable) with GLASSBOX_TEST_BROKER (kafka|tansu),
# GLASSBOX_TEST_BROKERS, GLASSBOX_TEST_REDIS_URL, GLASSBOX_TEST_INFLUX_V1_URL,
# GLASSBOX_TEST_VM_URL, GLASSBOX_TEST_ALERTMANAGER_URL, GLASSBOX_TEST_REGISTRY_URL (the
# registry's Confluent API, http://127.0.0.1:PORT/apis/ccompat/v7; with
# STACK_REGISTRY_BASIC_AUTH also GLASSBOX_TEST_REGISTRY_USER and GLASSBOX_TEST_REGISTRY_PASSWORD)
# (and GLASSBOX_TEST_TANSU_BIN with tansu),
# and, whichever services run, the OTLP tests' clients once install.sh installed them:
# GLASSBOX_TEST_OTELCOL (the Collector of install-otelcol.sh: $GLASSBOX_TOOLS/otelcol-glassbox,
# default ~/.cache/glassbox/tools) and GLASSBOX_TEST_PYTHON (the python of install-pyclients.sh's
# venv: $GLASSBOX_PYCLIENTS/bin/python, default ~/.cache/glassbox/pyclients), each only when its
# install finished (its stamp exists); set either variable to use another executable.
# Knobs: STACK_READY_TIMEOUT (s, default 60), STACK_TANSU_STORAGE (default memory://tansu/),
# STACK_KAFKA_HEAP (default 768m), KAFKA_VERSION (default 4.4.0); for the registry (installed
# by install-registry.sh): REGISTRY_VERSION (default 3.0.9), REGISTRY_JAVA (default java on
# PATH; 3.1 and later need Java 21), STACK_REGISTRY_HEAP (default 384m),
# STACK_REGISTRY_READY_TIMEOUT (s, default 120 or STACK_READY_TIMEOUT if larger: a Quarkus start
# takes 10-25 s on 2 cores), STACK_REGISTRY_BASIC_AUTH=user:password (its API then requires
# HTTP basic auth with that user; default: no auth at all, as Apicurio's own default; a running
# registry is kept as it is, so stop it to switch).
# Idempotent: a running, healthy service is kept as it is. Servers come from install.sh.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
STACK_DIR="${STACK_DIR:-$REPO_ROOT/.stack}"
TOOLS="${GLASSBOX_TOOLS:-$HOME/.cache/glassbox/tools}"
TANSU_BIN="${GLASSBOX_TEST_TANSU_BIN:-$TOOLS/bin/tansu}"
PYCLIENTS="${GLASSBOX_PYCLIENTS:-$HOME/.cache/glassbox/pyclients}"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_LIBS="${GLASSBOX_KAFKA_HOME:-$HOME/.cache/glassbox/kafka/$KAFKA_VERSION}/libs"
REGISTRY_VERSION="${REGISTRY_VERSION:-3.0.9}"
REGISTRY_HOME="${GLASSBOX_REGISTRY_HOME:-$HOME/.cache/glassbox/registry/$REGISTRY_VERSION}"
REGISTRY_JAVA="${REGISTRY_JAVA:-java}"
REGISTRY_AUTH="${STACK_REGISTRY_BASIC_AUTH:-}"
READY_TIMEOUT="${STACK_READY_TIMEOUT:-60}" # seconds, per service
ALL_SERVICES=(kafka tansu redis influxdb victoria-metrics alertmanager registry)
case "${GLASSBOX_TEST_BROKER:-kafka}" in
  kafka | tansu) BROKER="${GLASSBOX_TEST_BROKER:-kafka}" ;;
  *) printf '[stack] ERROR: GLASSBOX_TEST_BROKER must be kafka or tansu, got %s\n' "$GLASSBOX_TEST_BROKER" >&2; exit 2 ;;
esac
DEFAULT_SERVICES=("$BROKER" redis influxdb victoria-metrics alertmanager registry)

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# Executable name that must appear in /proc/PID/cmdline (guards against pid reuse).
service_exe() {
  case "$1" in
    kafka) echo kafka.Kafka ;;
    tansu) echo tansu ;;
    redis) echo redis-server ;;
    influxdb) echo influxd ;;
    victoria-metrics) echo victoria-metrics ;;
    alertmanager) echo prometheus-alertmanager ;;
    registry) echo glassbox.stack.service=registry ;; # a marker property on its java command line
    *) die "unknown service '$1' (known: ${ALL_SERVICES[*]})" ;;
  esac
}

# Prints a free TCP port on 127.0.0.1 (the kernel picks it).
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "could not find a free port"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True while PID exists and is not a zombie (an unreaped child would look alive to kill -0).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

pid_of() { cat "$STACK_DIR/$1.pid" 2>/dev/null || true; }
port_of() { cat "$STACK_DIR/$1.port" 2>/dev/null || true; }

# True when the service's recorded pid is alive and is really that server.
is_running() {
  local pid exe
  pid="$(pid_of "$1")"
  [ -n "$pid" ] && alive "$pid" || return 1
  exe="$(service_exe "$1")"
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$exe"
}

# One readiness probe (a real request, not only an open port).
probe() {
  local name="$1" port="$2"
  port_open "$port" || return 1
  case "$name" in
    redis) [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] ;;
    influxdb) [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/ping")" = 204 ] ;;
    victoria-metrics) [ "$(curl -s --max-time 2 "http://127.0.0.1:$port/health")" = OK ] ;;
    alertmanager) [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/-/ready")" = 200 ] ;;
    tansu) timeout 10 "$TANSU_BIN" topic list --broker "tcp://127.0.0.1:$port" >/dev/null 2>&1 ;;
    # The broker logs this once its listeners accept requests and it has registered with its
    # controller (KafkaRaftServer.startup); glassbox's own clients then do the real requests.
    kafka) grep -q 'Kafka Server started' "$STACK_DIR/kafka.log" 2>/dev/null ;;
    # A real request to the Confluent API (its storage answers once the app is up).
    registry)
      local auth=()
      [ -z "$REGISTRY_AUTH" ] || auth=(-u "$REGISTRY_AUTH")
      [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${auth[@]}" "http://127.0.0.1:$port/apis/ccompat/v7/subjects")" = 200 ]
      ;;
  esac
}

# The jar that starts the registry (install-registry.sh's cache: 3.0.x's runner jar, later
# versions' quarkus-run.jar); empty when not installed.
registry_jar() {
  [ "$(cat "$REGISTRY_HOME/complete" 2>/dev/null)" = "$REGISTRY_VERSION" ] || return 0
  local f
  for f in "$REGISTRY_HOME/app/quarkus-run.jar" "$REGISTRY_HOME"/app/apicurio-registry-app-*-runner.jar; do
    if [ -f "$f" ]; then echo "$f"; return 0; fi
  done
}

wait_ready() {
  local name="$1" port="$2" pid="$3" timeout="$READY_TIMEOUT"
  if [ "$name" = registry ]; then
    timeout="${STACK_REGISTRY_READY_TIMEOUT:-$((READY_TIMEOUT > 120 ? READY_TIMEOUT : 120))}"
  fi
  local deadline=$((SECONDS + timeout))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! alive "$pid"; then
      log "$name (pid $pid) exited during start-up; last lines of $STACK_DIR/$name.log:"
      tail -n 20 "$STACK_DIR/$name.log" >&2 || true
      return 1
    fi
    if probe "$name" "$port"; then return 0; fi
    sleep 0.3
  done
  log "$name did not become ready on 127.0.0.1:$port within ${timeout}s; last lines of $STACK_DIR/$name.log:"
  tail -n 20 "$STACK_DIR/$name.log" >&2 || true
  return 1
}

write_influx_conf() {
  local dir="$1" port="$2" rpc_port="$3"
  cat >"$dir/influxdb.conf" <<EOF
# Generated by integration/scripts/stack.sh
reporting-enabled = false
bind-address = "127.0.0.1:$rpc_port"

[meta]
  dir = "$dir/meta"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:$port"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false
  unix-socket-enabled = false
  bind-socket = "$dir/influxdb.sock"

[logging]
  suppress-logo = true

[ifql]
  enabled = false

[continuous_queries]
  enabled = false
EOF
}

# The single-node KRaft broker+controller's config: topics are never auto-created, so
# glassbox's own topic creation is what the tests exercise.
write_kafka_conf() {
  local dir="$1" port="$2" cport="$3"
  cat >"$dir/server.properties" <<EOF
# Generated by integration/scripts/stack.sh
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
auto.create.topics.enable=false
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  # Logs to stdout, which launch() appends to kafka.log in the stack dir.
  cat >"$dir/log4j2.properties" <<EOF
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
}

# Launches one service in the background on a fresh free port; records pid and port.
launch() {
  local name="$1" port log_file pid
  port="$(free_port)"
  log_file="$STACK_DIR/$name.log"
  : >"$log_file"
  case "$name" in
    redis)
      command -v redis-server >/dev/null || die "redis-server not installed (run integration/scripts/install.sh)"
      mkdir -p "$STACK_DIR/redis"
      nohup redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
        --daemonize no --dir "$STACK_DIR/redis" </dev/null >>"$log_file" 2>&1 &
      ;;
    influxdb)
      command -v influxd >/dev/null || die "influxd not installed (run integration/scripts/install.sh)"
      local idir="$STACK_DIR/influxdb"
      mkdir -p "$idir"
      write_influx_conf "$idir" "$port" "$(free_port)"
      nohup influxd run -config "$idir/influxdb.conf" </dev/null >>"$log_file" 2>&1 &
      ;;
    victoria-metrics)
      command -v victoria-metrics >/dev/null || die "victoria-metrics not installed (run integration/scripts/install.sh)"
      mkdir -p "$STACK_DIR/vm"
      # Default retention is one month: older points would be silently dropped.
      # latencyOffset 0s: freshly written points are visible to /api/v1/query at once.
      nohup victoria-metrics -httpListenAddr "127.0.0.1:$port" -storageDataPath "$STACK_DIR/vm" \
        -retentionPeriod 100y -search.latencyOffset 0s \
        </dev/null >>"$log_file" 2>&1 &
      ;;
    alertmanager)
      command -v prometheus-alertmanager >/dev/null || die "prometheus-alertmanager not installed (run integration/scripts/install.sh)"
      local adir="$STACK_DIR/alertmanager"
      mkdir -p "$adir"
      # One receiver that sends nowhere: tests read alerts back through the API.
      printf 'route:\n  receiver: "null"\n  group_wait: 1s\nreceivers:\n  - name: "null"\n' >"$adir/alertmanager.yml"
      nohup prometheus-alertmanager --config.file "$adir/alertmanager.yml" \
        --storage.path "$adir" --web.listen-address "127.0.0.1:$port" \
        --cluster.listen-address "" </dev/null >>"$log_file" 2>&1 &
      ;;
    kafka)
      command -v java >/dev/null || die "java not installed (Apache Kafka needs a Java 17+ runtime; run integration/scripts/install.sh)"
      [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] ||
        die "Apache Kafka $KAFKA_VERSION not found in $KAFKA_LIBS (run integration/scripts/install-kafka.sh)"
      local kdir="$STACK_DIR/kafka" cluster_id
      rm -rf "$kdir"
      mkdir -p "$kdir"
      write_kafka_conf "$kdir" "$port" "$(free_port)"
      # A fresh cluster id and empty storage at every launch: tests want nothing left over.
      cluster_id="$(java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>>"$log_file" | tail -n 1)"
      java -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$kdir/log4j2.properties" \
        kafka.tools.StorageTool format -t "$cluster_id" -c "$kdir/server.properties" >>"$log_file" 2>&1 ||
        { tail -n 20 "$log_file" >&2; die "could not format the Kafka storage in $kdir/data"; }
      nohup java "-Xmx${STACK_KAFKA_HEAP:-768m}" -Xms256m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true -Dlog4j2.configurationFile="$kdir/log4j2.properties" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$kdir/server.properties" </dev/null >>"$log_file" 2>&1 &
      ;;
    tansu)
      [ -x "$TANSU_BIN" ] || die "tansu not found at $TANSU_BIN (run integration/scripts/install-tansu.sh)"
      # Storage: in-memory by default (dynostore feature; nothing survives a restart, which
      # is what tests want). STACK_TANSU_STORAGE=sqlite://tansu.db keeps data across restarts
      # (libsql feature); its path is relative to the broker's cwd, the state dir (an absolute
      # sqlite:///path is mangled by tansu). Env vars tansu reads itself are cleared.
      (cd "$STACK_DIR" && exec nohup env -u OTEL_EXPORTER_OTLP_ENDPOINT -u SCHEMA_REGISTRY \
        -u CLUSTER_ID "$TANSU_BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "${STACK_TANSU_STORAGE:-memory://tansu/}" </dev/null >>"$log_file" 2>&1) &
      ;;
    registry)
      command -v "$REGISTRY_JAVA" >/dev/null ||
        die "no java '$REGISTRY_JAVA' (REGISTRY_JAVA or PATH): the registry needs a Java 17+ runtime (run integration/scripts/install.sh)"
      local jar need have
      jar="$(registry_jar)"
      [ -f "${jar:-/nonexistent}" ] ||
        die "Apicurio Registry $REGISTRY_VERSION not installed in $REGISTRY_HOME (run integration/scripts/install-registry.sh)"
      need="$(cat "$REGISTRY_HOME/java-major" 2>/dev/null || echo 17)"
      have="$("$REGISTRY_JAVA" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}' | cut -d. -f1)"
      [ "${have:-0}" -ge "$need" ] 2>/dev/null ||
        die "Apicurio Registry $REGISTRY_VERSION needs Java $need+, but '$REGISTRY_JAVA' is ${have:-unknown} (set REGISTRY_JAVA)"
      # Optional basic auth: Quarkus' own HTTP permissions over embedded users guard the APIs.
      local auth_opts=()
      if [ -n "$REGISTRY_AUTH" ]; then
        local user="${REGISTRY_AUTH%%:*}" pass="${REGISTRY_AUTH#*:}"
        [[ "$REGISTRY_AUTH" == *:* && "$user" =~ ^[A-Za-z0-9_-]+$ && -n "$pass" && "$pass" != *"'"* ]] ||
          die "STACK_REGISTRY_BASIC_AUTH must be user:password (user of letters, digits, _ and -; no ' in the password)"
        auth_opts=(-Dquarkus.http.auth.basic=true -Dquarkus.security.users.embedded.plain-text=true
          "-Dquarkus.security.users.embedded.users.$user=$pass"
          "-Dquarkus.security.users.embedded.roles.$user=sr-admin"
          "-Dquarkus.http.auth.permission.glassbox.paths=/apis/*"
          -Dquarkus.http.auth.permission.glassbox.policy=authenticated)
      fi
      # Small and quick to start beside Kafka on 2 cores: C1 only and the serial GC (it serves a
      # few schema look-ups), and a small H2 pool (Apicurio's default keeps 20 connections).
      # Storage: SQL on in-memory H2, Apicurio's default: nothing survives a restart.
      (cd "$STACK_DIR" && exec nohup "$REGISTRY_JAVA" "-Xmx${STACK_REGISTRY_HEAP:-384m}" -Xms64m \
        -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dglassbox.stack.service=registry \
        -Dquarkus.http.host=127.0.0.1 "-Dquarkus.http.port=$port" \
        -Dapicurio.datasource.jdbc.initial-size=2 -Dapicurio.datasource.jdbc.min-size=2 \
        -Dapicurio.datasource.jdbc.max-size=20 \
        "${auth_opts[@]}" -jar "$jar" </dev/null >>"$log_file" 2>&1) &
      ;;
  esac
  pid=$!
  echo "$pid" >"$STACK_DIR/$name.pid"
  echo "$port" >"$STACK_DIR/$name.port"
  if wait_ready "$name" "$port" "$pid"; then
    log "$name ready on 127.0.0.1:$port (pid $pid, log $log_file)"
    return 0
  fi
  stop_one "$name"
  return 1
}

start_one() {
  local name="$1" attempt
  if is_running "$name" && probe "$name" "$(port_of "$name")"; then
    log "$name already running on 127.0.0.1:$(port_of "$name") (pid $(pid_of "$name"))"
    return 0
  fi
  is_running "$name" && stop_one "$name"   # running but unhealthy: restart it
  # A free port can be taken between picking and binding: retry on a new port then only.
  for attempt in 1 2 3; do
    if launch "$name"; then return 0; fi
    grep -qi 'in use' "$STACK_DIR/$name.log" 2>/dev/null || break
    log "$name: port taken meanwhile (attempt $attempt), retrying on another port"
  done
  die "could not start $name; see $STACK_DIR/$name.log"
}

stop_one() {
  local name="$1" pid
  pid="$(pid_of "$name")"
  if [ -n "$pid" ] && is_running "$name"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      log "$name (pid $pid) did not stop in 10s: SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    fi
    log "$name stopped (pid $pid)"
  fi
  rm -f "$STACK_DIR/$name.pid" "$STACK_DIR/$name.port"
}

# The Collector binary of install-otelcol.sh (GLASSBOX_TEST_OTELCOL overrides), if installed:
# the binary is moved into place, and its stamp written, only after a build succeeded.
otelcol_bin() {
  local bin="${GLASSBOX_TEST_OTELCOL:-$TOOLS/otelcol-glassbox}"
  [ -n "${GLASSBOX_TEST_OTELCOL:-}" ] || [ -f "$bin.stamp" ] || return 0
  if [ -x "$bin" ]; then
    echo "$bin"
  elif [ -n "${GLASSBOX_TEST_OTELCOL:-}" ]; then
    log "warning: GLASSBOX_TEST_OTELCOL=$bin is not executable: not written to the env file"
  fi
}

# The python of install-pyclients.sh's venv (GLASSBOX_TEST_PYTHON overrides), if installed: its
# stamp is written only after pip installed every requirement.
pyclients_python() {
  local py="${GLASSBOX_TEST_PYTHON:-$PYCLIENTS/bin/python}"
  [ -n "${GLASSBOX_TEST_PYTHON:-}" ] || [ -f "$PYCLIENTS/.requirements.sha256" ] || return 0
  if [ -x "$py" ]; then
    echo "$py"
  elif [ -n "${GLASSBOX_TEST_PYTHON:-}" ]; then
    log "warning: GLASSBOX_TEST_PYTHON=$py is not executable: not written to the env file"
  fi
}

write_env() {
  local tmp="$STACK_DIR/env.tmp" p
  {
    echo "# Generated by integration/scripts/stack.sh; source it: . $STACK_DIR/env"
    echo "export GLASSBOX_TEST_STACK_DIR='$STACK_DIR'"
    # The broker the tests use: GLASSBOX_TEST_BROKER's, else whichever one runs.
    local broker="$BROKER"
    if ! is_running "$broker"; then
      for p in kafka tansu; do is_running "$p" && broker="$p" && break; done
    fi
    if is_running "$broker"; then
      echo "export GLASSBOX_TEST_BROKER=$broker"
      echo "export GLASSBOX_TEST_BROKERS=127.0.0.1:$(port_of "$broker")"
    fi
    if is_running tansu; then
      echo "export GLASSBOX_TEST_TANSU_BIN='$TANSU_BIN'"
    fi
    if is_running redis; then
      echo "export GLASSBOX_TEST_REDIS_URL=redis://127.0.0.1:$(port_of redis)"
    fi
    if is_running influxdb; then
      echo "export GLASSBOX_TEST_INFLUX_V1_URL=http://127.0.0.1:$(port_of influxdb)"
    fi
    if is_running victoria-metrics; then
      echo "export GLASSBOX_TEST_VM_URL=http://127.0.0.1:$(port_of victoria-metrics)"
    fi
    if is_running alertmanager; then
      echo "export GLASSBOX_TEST_ALERTMANAGER_URL=http://127.0.0.1:$(port_of alertmanager)"
    fi
    if is_running registry; then
      echo "export GLASSBOX_TEST_REGISTRY_URL=http://127.0.0.1:$(port_of registry)/apis/ccompat/v7"
      if [ -n "$REGISTRY_AUTH" ]; then
        echo "export GLASSBOX_TEST_REGISTRY_USER='${REGISTRY_AUTH%%:*}'"
        echo "export GLASSBOX_TEST_REGISTRY_PASSWORD='${REGISTRY_AUTH#*:}'"
      fi
    fi
    # Not servers: the OTLP tests start these themselves (same paths as the install scripts).
    local otelcol python
    otelcol="$(otelcol_bin)"
    python="$(pyclients_python)"
    if [ -n "$otelcol" ]; then echo "export GLASSBOX_TEST_OTELCOL='$otelcol'"; fi
    if [ -n "$python" ]; then echo "export GLASSBOX_TEST_PYTHON='$python'"; fi
  } >"$tmp"
  mv "$tmp" "$STACK_DIR/env"
}

cmd_start() {
  local services=("$@") s
  [ "${#services[@]}" -gt 0 ] || services=("${DEFAULT_SERVICES[@]}")
  for s in "${services[@]}"; do service_exe "$s" >/dev/null; done # validate names first
  mkdir -p "$STACK_DIR"
  for s in "${services[@]}"; do start_one "$s"; done
  write_env
  log "env written to $STACK_DIR/env:"
  grep '^export' "$STACK_DIR/env" >&2
}

cmd_stop() {
  local s
  [ -d "$STACK_DIR" ] || { log "nothing to stop ($STACK_DIR does not exist)"; return 0; }
  for s in "${ALL_SERVICES[@]}"; do stop_one "$s"; done
  rm -f "$STACK_DIR/env"
}

cmd_status() {
  local s port state rc=0
  echo "stack dir: $STACK_DIR"
  for s in "${ALL_SERVICES[@]}"; do
    port="$(port_of "$s")"
    if is_running "$s"; then
      if probe "$s" "$port"; then state=ready; else state="running, NOT answering"; rc=1; fi
      printf '  %-17s %-24s pid %-8s 127.0.0.1:%s\n' "$s" "$state" "$(pid_of "$s")" "$port"
    elif [ -e "$STACK_DIR/$s.pid" ]; then
      printf '  %-17s DEAD (pid %s gone; see %s)\n' "$s" "$(pid_of "$s")" "$STACK_DIR/$s.log"
      rc=1
    else
      printf '  %-17s stopped\n' "$s"
    fi
  done
  return "$rc"
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start [${ALL_SERVICES[*]}] | stop | status" >&2; exit 2 ;;
esac
