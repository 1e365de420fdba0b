#!/usr/bin/env bash
# Installs a real Confluent-compatible Schema Registry for the Avro tests (issue #13) into a
# persistent cache, once: Apicurio Registry's server, the already built Quarkus application that
# its project publishes on Maven Central (io.apicurio:apicurio-registry-app:<v>:tar.gz:all),
# fetched by Maven (registry/pom.xml) and unpacked into $GLASSBOX_REGISTRY_HOME (default
# ~/.cache/glassbox/registry/<version>/app). stack.sh runs it on the JVM as its `registry`
# service: the Confluent API is at /apis/ccompat/v7, storage is in-memory H2 (nothing survives a
# restart). Needs Maven and a Java 17+ runtime: 3.0.x runs on Java 17; 3.1 and later are
# compiled for Java 21 (set REGISTRY_JAVA to a newer java for those). Idempotent: a complete
# cache is kept as it is. About 20-30 s and 110 MB (plus the archive in ~/.m2) the first time.
#
#   install-registry.sh       install (or check) the cache; prints the jar to run on stdout
#
# Knobs: REGISTRY_VERSION (default 3.0.9), GLASSBOX_REGISTRY_HOME, REGISTRY_JAVA (the java that
# will run it, default java on PATH), INSTALL_REGISTRY_TIMEOUT (s, 600).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION="${REGISTRY_VERSION:-3.0.9}"
HOME_DIR="${GLASSBOX_REGISTRY_HOME:-$HOME/.cache/glassbox/registry/$VERSION}"
APP="$HOME_DIR/app"
JAVA="${REGISTRY_JAVA:-java}"
TIMEOUT="${INSTALL_REGISTRY_TIMEOUT:-600}"
ARTIFACT="io.apicurio:apicurio-registry-app:$VERSION:tar.gz:all"

log() { printf '[install-registry] %s\n' "$*" >&2; }
die() { printf '[install-registry] ERROR: %s\n' "$*" >&2; exit 1; }

java_major_of() {
  "$1" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}' | cut -d. -f1
}

# The Java release the registry's own classes are compiled for (class file major - 44), read
# from the first io/apicurio class of JAR; empty when it cannot be read.
bytecode_java() {
  local jar="$1"
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$jar" <<'EOF' 2>/dev/null || true
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in z.namelist():
        if n.startswith("io/apicurio/") and n.endswith(".class"):
            b = z.read(n)
            print(int.from_bytes(b[6:8], "big") - 44)
            break
EOF
  elif command -v unzip >/dev/null 2>&1; then
    local cls
    cls="$(unzip -Z1 "$jar" 2>/dev/null | grep -m1 '^io/apicurio/.*\.class$' || true)"
    [ -n "$cls" ] || return 0
    unzip -p "$jar" "$cls" 2>/dev/null | od -An -j6 -N2 -tu1 | awk '{print $1 * 256 + $2 - 44}'
  fi
}

# The first existing path among the arguments (an unmatched glob stays literal), or nothing.
first_file() {
  local f
  for f in "$@"; do
    if [ -f "$f" ]; then echo "$f"; return 0; fi
  done
}

# The jar to start (3.0.x: <artifact>-runner.jar beside lib/; later: fast-jar quarkus-run.jar)
# and the jar holding the registry's own classes.
find_jars() {
  if [ -f "$APP/quarkus-run.jar" ]; then
    RUN_JAR="$APP/quarkus-run.jar"
    CODE_JAR="$(first_file "$APP"/app/apicurio-registry-app-*.jar)"
  else
    RUN_JAR="$(first_file "$APP"/apicurio-registry-app-*-runner.jar)"
    CODE_JAR="$RUN_JAR"
  fi
}

# Fails unless JAVA can run this version (recorded in $HOME_DIR/java-major at install).
check_java() {
  local need="$1" have
  command -v "$JAVA" >/dev/null ||
    die "no java '$JAVA' (REGISTRY_JAVA or PATH): Apicurio Registry $VERSION needs a Java $need+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
  have="$(java_major_of "$JAVA")"
  [ "${have:-0}" -ge "$need" ] 2>/dev/null ||
    die "java '$JAVA' is version '${have:-unknown}': Apicurio Registry $VERSION needs Java $need or newer (set REGISTRY_JAVA to such a java, or REGISTRY_VERSION=3.0.9, which runs on 17)"
}

# Quarkus 3 needs Java 17 whatever the bytecode says; so does the rest of the stack.
check_java 17

if [ -f "$HOME_DIR/complete" ] && [ "$(cat "$HOME_DIR/complete")" = "$VERSION" ]; then
  find_jars
  [ -f "${RUN_JAR:-/nonexistent}" ] || die "cache $HOME_DIR is marked complete but has no jar to run; remove it and run again"
  check_java "$(cat "$HOME_DIR/java-major" 2>/dev/null || echo 17)"
  log "Apicurio Registry $VERSION already installed in $APP"
  echo "$RUN_JAR"
  exit 0
fi

command -v mvn >/dev/null ||
  die "no mvn on PATH: Maven fetches Apicurio Registry from Maven Central (Debian: apt-get install maven)"
command -v tar >/dev/null || die "no tar on PATH: needed to unpack the registry's archive"

t0=$SECONDS
log "fetching $ARTIFACT from Maven Central into $APP (first time only)"
mkdir -p "$HOME_DIR"
rm -rf "$APP" "$APP.tmp" "$HOME_DIR/download" "$HOME_DIR/complete" "$HOME_DIR/java-major"
sed -e "s/@REGISTRY_VERSION@/$VERSION/" -e "s|@OUTPUT_DIR@|$HOME_DIR/download|" \
  "$SCRIPT_DIR/registry/pom.xml" >"$HOME_DIR/pom.xml"
# Bounded: a registry that does not answer fails the install instead of hanging it.
if ! timeout "$TIMEOUT" mvn -B -f "$HOME_DIR/pom.xml" \
  -Dmaven.wagon.rto=30000 -Dmaven.wagon.http.retryHandler.count=3 \
  dependency:copy >"$HOME_DIR/mvn.log" 2>&1; then
  grep -E 'ERROR|Could not' "$HOME_DIR/mvn.log" | head -n 10 >&2 || tail -n 20 "$HOME_DIR/mvn.log" >&2 || true
  die "Maven could not fetch $ARTIFACT (no such version, no network to Maven Central, or no answer within ${TIMEOUT}s; its errors are above); log: $HOME_DIR/mvn.log"
fi
archive="$HOME_DIR/download/apicurio-registry-app-$VERSION-all.tar.gz"
[ -f "$archive" ] || die "Maven finished but $archive is missing; log: $HOME_DIR/mvn.log"
mkdir -p "$APP.tmp"
tar -xzf "$archive" -C "$APP.tmp" || die "could not unpack $archive"
rm -rf "$HOME_DIR/download" # Maven keeps its own copy in the local repository
mv "$APP.tmp" "$APP"
find_jars
[ -f "${RUN_JAR:-/nonexistent}" ] ||
  die "the archive of $VERSION has neither quarkus-run.jar nor apicurio-registry-app-*-runner.jar (an unknown layout); see $APP"
need="$(bytecode_java "${CODE_JAR:-$RUN_JAR}")"
[ "${need:-0}" -ge 17 ] 2>/dev/null || need=17
echo "$need" >"$HOME_DIR/java-major"
echo "$VERSION" >"$HOME_DIR/complete"
log "Apicurio Registry $VERSION installed in $((SECONDS - t0)) s: $RUN_JAR ($(find "$APP" -name '*.jar' | wc -l) jars, $(du -sh "$APP" | cut -f1)), needs Java $need+"
check_java "$need"
echo "$RUN_JAR"
