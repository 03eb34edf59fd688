#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft) on 127.0.0.1 for tests, fetched from Maven Central.
#
#   scripts/kafka.sh fetch     download Kafka's jars into the cache (once)
#   scripts/kafka.sh start     format storage if new, start the broker, wait until it answers
#   scripts/kafka.sh stop      stop it (SIGTERM, then wait)
#   scripts/kafka.sh restart   stop + start, keeping its data
#   scripts/kafka.sh status    say whether it runs
#
# Environment: KAFKA_VERSION (4.1.1), KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093): below
# Linux's ephemeral range, so that a client retrying a closed port cannot connect to itself;
# KAFKA_STATE_DIR (data, config, log and pid; default $HOME/.cache/metal-automata/kafka-state),
# KAFKA_CACHE (jars; default $HOME/.cache/metal-automata/kafka).
set -euo pipefail

VERSION=${KAFKA_VERSION:-4.1.1}
PORT=${KAFKA_PORT:-19092}
CPORT=${KAFKA_CONTROLLER_PORT:-19093}
CACHE=${KAFKA_CACHE:-$HOME/.cache/metal-automata/kafka}
STATE=${KAFKA_STATE_DIR:-$HOME/.cache/metal-automata/kafka-state}
LIB=$CACHE/$VERSION/lib
PIDFILE=$STATE/broker.pid

say() { echo "kafka.sh: $*" >&2; }

fetch() {
    if [ -f "$LIB/.complete" ]; then return 0; fi
    command -v mvn >/dev/null || { say "maven (mvn) is needed: apt-get install maven"; exit 1; }
    say "fetching Apache Kafka $VERSION from Maven Central into $LIB"
    local work; work=$(mktemp -d)
    cat > "$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.metalautomata.test</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$VERSION</version></dependency>
    <!-- Kafka 4.1 logs through slf4j 1.7: this is the log4j2 binding that matches it. -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
    rm -rf "$LIB"; mkdir -p "$LIB"
    (cd "$work" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$LIB" -DincludeScope=runtime)
    rm -rf "$work"
    touch "$LIB/.complete"
    say "fetched $(ls "$LIB" | wc -l) jars"
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

configure() {
    mkdir -p "$STATE/data"
    cat > "$STATE/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$STATE/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
# Tests watch compaction happen: let the cleaner look often.
log.cleaner.backoff.ms=1000
auto.create.topics.enable=false
PROPS
    cat > "$STATE/log4j2.yaml" <<LOG
Configuration:
  Appenders:
    File:
      name: file
      fileName: "$STATE/broker.log"
      PatternLayout: { pattern: "[%d] %p %m (%c)%n" }
  Loggers:
    Root: { level: INFO, AppenderRef: [ { ref: file } ] }
    Logger:
      - { name: kafka, level: INFO }
      - { name: org.apache.kafka, level: WARN }
LOG
}

start() {
    fetch
    if running; then say "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; return 0; fi
    configure
    if [ ! -f "$STATE/data/meta.properties" ]; then
        local id; id=$(java -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
        java -cp "$LIB/*" kafka.tools.StorageTool format -t "$id" -c "$STATE/server.properties" >/dev/null
    fi
    say "starting Kafka $VERSION on 127.0.0.1:$PORT (state in $STATE)"
    nohup java -Xms256m -Xmx512m -Dlog4j2.configurationFile="$STATE/log4j2.yaml" \
        -cp "$LIB/*" kafka.Kafka "$STATE/server.properties" >"$STATE/stdout.log" 2>&1 &
    echo $! > "$PIDFILE"
    for _ in $(seq 1 120); do
        if port_open && grep -q "Kafka Server started" "$STATE/broker.log" 2>/dev/null; then
            say "ready (pid $(cat "$PIDFILE"))"; return 0
        fi
        if ! running; then break; fi
        sleep 0.5
    done
    say "the broker did not come up; last lines of its log:"
    tail -n 40 "$STATE/broker.log" "$STATE/stdout.log" >&2 || true
    exit 1
}

stop() {
    if ! running; then say "not running"; rm -f "$PIDFILE"; return 0; fi
    local pid; pid=$(cat "$PIDFILE")
    kill -TERM "$pid"
    for _ in $(seq 1 60); do
        if ! kill -0 "$pid" 2>/dev/null; then rm -f "$PIDFILE"; say "stopped"; return 0; fi
        sleep 0.5
    done
    say "still running after 30 s; killing"; kill -KILL "$pid" 2>/dev/null || true; rm -f "$PIDFILE"
}

case "${1:-}" in
    fetch) fetch ;;
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    status) if running; then say "running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; else say "not running"; exit 3; fi ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
