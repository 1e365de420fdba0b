#!/usr/bin/env bash
# Apache Kafka's own operator tools, from the jars install-kafka.sh cached (no Kafka
# distribution needed):
#
#   kafka-tool.sh topics          --bootstrap-server HOST:PORT --list | --create --topic T ...
#   kafka-tool.sh consumer-groups --bootstrap-server HOST:PORT --describe --group G
#
# e.g. the consumer lag of glassbox's group, per partition, against the test stack:
#   . .stack/env; integration/scripts/kafka-tool.sh consumer-groups \
#     --bootstrap-server "$GLASSBOX_TEST_BROKERS" --describe --group glassbox
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION="${KAFKA_VERSION:-4.4.0}"
LIBS="${GLASSBOX_KAFKA_HOME:-$HOME/.cache/glassbox/kafka/$VERSION}/libs"
[ -f "$LIBS/kafka-tools-$VERSION.jar" ] ||
  { echo "kafka-tool.sh: Apache Kafka $VERSION not in $LIBS (run integration/scripts/install-kafka.sh)" >&2; exit 1; }
case "${1:-}" in
  topics) class=org.apache.kafka.tools.TopicCommand ;;
  consumer-groups) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  *) echo "usage: $0 topics|consumer-groups ARGS... (the arguments of kafka-topics.sh / kafka-consumer-groups.sh)" >&2; exit 2 ;;
esac
shift
# Warnings and errors only, on stderr.
exec java -Xmx256m -Dlog4j2.configurationFile="$SCRIPT_DIR/kafka/log4j2-tools.properties" -cp "$LIBS/*" "$class" "$@"
