#!/usr/bin/env bash
# Installs Apache Kafka (the broker of the tests, benchmarks and local stack) into a persistent
# cache, once: Maven fetches org.apache.kafka:kafka_2.13 with its runtime dependencies and a
# log4j2 binding from Maven Central into $GLASSBOX_KAFKA_HOME (default
# ~/.cache/glassbox/kafka/<version>/libs). Needs a Java 17+ runtime and Maven. Idempotent: a
# complete cache is kept as it is. About 35 s and 40 MB the first time.
#
#   install-kafka.sh          install (or check) the cache; prints the libs dir on stdout
#
# Knobs: KAFKA_VERSION (default 4.4.0), GLASSBOX_KAFKA_HOME, INSTALL_KAFKA_TIMEOUT (s, 600).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION="${KAFKA_VERSION:-4.4.0}"
HOME_DIR="${GLASSBOX_KAFKA_HOME:-$HOME/.cache/glassbox/kafka/$VERSION}"
LIBS="$HOME_DIR/libs"
TIMEOUT="${INSTALL_KAFKA_TIMEOUT:-600}"

log() { printf '[install-kafka] %s\n' "$*" >&2; }
die() { printf '[install-kafka] ERROR: %s\n' "$*" >&2; exit 1; }

# A Java 17+ runtime: Kafka 4.x brokers need it.
command -v java >/dev/null ||
  die "no java on PATH: Apache Kafka $VERSION needs a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
java_major="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}' | cut -d. -f1)"
[ -n "$java_major" ] && [ "$java_major" -ge 17 ] 2>/dev/null ||
  die "java on PATH is version '${java_major:-unknown}': Apache Kafka $VERSION needs Java 17 or newer"

if [ -f "$HOME_DIR/complete" ] && [ "$(cat "$HOME_DIR/complete")" = "$VERSION" ]; then
  log "Apache Kafka $VERSION already installed in $LIBS"
  echo "$LIBS"
  exit 0
fi

command -v mvn >/dev/null ||
  die "no mvn on PATH: Maven fetches the Kafka jars from Maven Central (Debian: apt-get install maven)"

log "fetching Apache Kafka $VERSION and its dependencies from Maven Central into $LIBS (first time only)"
mkdir -p "$HOME_DIR"
rm -rf "$LIBS" "$HOME_DIR/complete"
sed "s/@KAFKA_VERSION@/$VERSION/" "$SCRIPT_DIR/kafka/pom.xml" >"$HOME_DIR/pom.xml"
# Bounded: a registry that does not answer fails the install instead of hanging it.
# Maven's own read/connect timeouts (ms) make a dead connection fail early; `timeout` bounds the whole.
if ! timeout "$TIMEOUT" mvn -B -q -f "$HOME_DIR/pom.xml" \
  -Dmaven.wagon.rto=30000 -Dmaven.wagon.http.retryHandler.count=3 \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS" \
  >"$HOME_DIR/mvn.log" 2>&1; then
  tail -n 30 "$HOME_DIR/mvn.log" >&2 || true
  die "Maven could not fetch org.apache.kafka:kafka_2.13:$VERSION (no such version, no network to Maven Central, or no answer within ${TIMEOUT}s; its last lines are above); log: $HOME_DIR/mvn.log"
fi
ls "$LIBS"/kafka_2.13-"$VERSION".jar >/dev/null 2>&1 ||
  die "Maven finished but $LIBS has no kafka_2.13-$VERSION.jar; log: $HOME_DIR/mvn.log"
echo "$VERSION" >"$HOME_DIR/complete"
log "Apache Kafka $VERSION installed: $(find "$LIBS" -name '*.jar' | wc -l) jars, $(du -sh "$LIBS" | cut -f1)"
echo "$LIBS"
