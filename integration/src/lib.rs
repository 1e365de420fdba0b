//! Helpers for glassbox's tests against real servers. The servers are started by
//! `integration/scripts/stack.sh` (which `test-all.sh` runs); their addresses come from the
//! environment it writes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use glassbox_operators::Views;
use glassbox_operators::metrics::sketch::{ALPHA, QUANTILES, rank};
pub use glassbox_support::broker::BrokerQuirks;
use glassbox_support::loadgen::GenSpan;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The Kafka API address of the test broker (Apache Kafka, or tansu when
/// `GLASSBOX_TEST_BROKER=tansu`).
pub fn brokers() -> String {
    std::env::var("GLASSBOX_TEST_BROKERS").expect(
        "GLASSBOX_TEST_BROKERS is not set: run the tests with ./integration/scripts/test-all.sh, \
         or start the servers with integration/scripts/stack.sh and source its env file",
    )
}

/// Which broker the stack runs: `kafka` (Apache Kafka, the default) or `tansu`.
pub fn broker_kind() -> String {
    std::env::var("GLASSBOX_TEST_BROKER").unwrap_or_else(|_| "kafka".into())
}

/// What the test broker needs from glassbox's configuration.
pub fn broker_quirks() -> BrokerQuirks {
    BrokerQuirks::of(&broker_kind())
}

/// The `GLASSBOX_…` settings the test broker needs ([`broker_quirks`]).
pub fn broker_settings() -> [(&'static str, String); 2] {
    let quirks = broker_quirks();
    [
        (
            "GLASSBOX_SOURCE__RESUME_REWIND_RECORDS",
            quirks.resume_rewind_records.to_string(),
        ),
        (
            "GLASSBOX_KAFKA__FRONTIER_STORE",
            quirks.frontier_store.to_owned(),
        ),
    ]
}

/// A topic name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Polls `done` every 100 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `read` every 100 ms until it equals `want`; after `timeout`, panics naming `what` and
/// every entry that still differs (got / want), so a failure says what went wrong.
pub fn wait_for_map<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    want: &BTreeMap<K, V>,
    mut read: impl FnMut() -> BTreeMap<K, V>,
) {
    let start = Instant::now();
    loop {
        let got = read();
        if &got == want {
            return;
        }
        if start.elapsed() >= timeout {
            let differ: Vec<String> = want
                .iter()
                .filter(|(k, v)| got.get(k) != Some(v))
                .map(|(k, v)| format!("{k:?}: got {:?}, want {v:?}", got.get(k)))
                .chain(
                    got.iter()
                        .filter(|(k, _)| !want.contains_key(k))
                        .map(|(k, v)| format!("{k:?}: got {v:?}, want nothing")),
                )
                .collect();
            panic!(
                "timed out waiting for {what}: {} of {} entries differ: {}",
                differ.len(),
                want.len(),
                differ.join("; ")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The topics and store names of one test that runs the real `glassbox` process, all unique
/// to it, against the test stack (Apache Kafka or tansu, InfluxDB 1.x and Redis).
#[derive(Clone, Debug)]
pub struct Run {
    /// Input topic (created with 4 partitions by [`Run::new`]).
    pub input: String,
    /// Consumer group.
    pub group: String,
    /// Metrics topic.
    pub metrics: String,
    /// Dead-letter topic.
    pub dlq: String,
    /// Alerts topic.
    pub alerts: String,
    /// InfluxDB 1.x URL.
    pub influx_url: String,
    /// InfluxDB database (created by [`Run::new`]).
    pub influx_db: String,
    /// Redis URL.
    pub redis_url: String,
    /// Redis key prefix.
    pub prefix: String,
}

impl Run {
    /// Names for a test called `name`; creates its input topic and InfluxDB database.
    pub fn new(name: &str) -> Self {
        let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
        let run = Self {
            input: unique(&format!("{name}-in")),
            group: unique(&format!("{name}-group")),
            metrics: unique(&format!("{name}-metrics")),
            dlq: unique(&format!("{name}-dlq")),
            alerts: unique(&format!("{name}-alerts")),
            influx_url: env("GLASSBOX_TEST_INFLUX_V1_URL"),
            influx_db: unique(name).replace('-', "_"),
            redis_url: env("GLASSBOX_TEST_REDIS_URL"),
            prefix: unique(name),
        };
        stores::influx_query(
            &run.influx_url,
            "",
            &format!("CREATE DATABASE {}", run.influx_db),
        );
        create_topic(&run.input, 4);
        run
    }

    /// `bin run` (the `glassbox-it` binary of the calling test) configured for this run: its
    /// topics, InfluxDB (v1) and Redis on, 2 s idle timeout, commits every 200 ms, rewind to
    /// the committed offset on Apache Kafka (to the start of the partition on tansu), stdout and stderr discarded. Callers add
    /// their own `GLASSBOX_…` settings.
    pub fn command(&self, bin: &str) -> std::process::Command {
        let mut c = std::process::Command::new(bin);
        c.arg("run")
            .env("GLASSBOX_KAFKA__BROKERS", brokers())
            .env("GLASSBOX_KAFKA__INPUT_TOPIC", &self.input)
            .env("GLASSBOX_KAFKA__GROUP_ID", &self.group)
            .env("GLASSBOX_KAFKA__METRICS_TOPIC", &self.metrics)
            .env("GLASSBOX_KAFKA__DEADLETTER_TOPIC", &self.dlq)
            .env("GLASSBOX_KAFKA__ALERTS_TOPIC", &self.alerts)
            .env("GLASSBOX_INFLUX__ENABLED", "true")
            .env("GLASSBOX_INFLUX__API", "v1")
            .env("GLASSBOX_INFLUX__URL", &self.influx_url)
            .env("GLASSBOX_INFLUX__DATABASE", &self.influx_db)
            .env("GLASSBOX_REDIS__ENABLED", "true")
            .env("GLASSBOX_REDIS__URL", &self.redis_url)
            .env("GLASSBOX_REDIS__KEY_PREFIX", &self.prefix)
            .env("GLASSBOX_SOURCE__IDLE_TIMEOUT_MS", "2000")
            .env("GLASSBOX_SOURCE__COMMIT_INTERVAL_MS", "200")
            .envs(broker_settings())
            .env("GLASSBOX_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    }
}

/// The configuration of an in-process pipeline (`glassbox::run::run`) on the test broker that
/// reads `input`, with a consumer group, metrics and dead-letter topics of its own (named after
/// `name`), a 2 s idle timeout and no periodic counters line. Callers change what they test.
pub fn pipeline_config(name: &str, input: &str) -> glassbox::config::Config {
    let mut config = glassbox::config::Config::default();
    config.kafka.brokers = brokers();
    config.kafka.input_topic = input.to_owned();
    config.kafka.group_id = unique(&format!("{name}-group"));
    config.kafka.metrics_topic = unique(&format!("{name}-metrics"));
    config.kafka.deadletter_topic = unique(&format!("{name}-dlq"));
    config.source.idle_timeout_ms = 2_000;
    config.telemetry.log_interval_ms = 0;
    config
}

/// Creates a topic through the admin API (the broker does not create topics on produce).
pub fn create_topic(name: &str, partitions: u32) {
    let mut base = ClientConfig::new();
    base.set("bootstrap.servers", brokers());
    let partitions = i32::try_from(partitions).expect("partition count");
    glassbox::kafka::admin::create_topics(&base, &[(name, partitions)], 1)
        .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
}

/// Publishes `(key, payload)` records with a real producer and waits for every acknowledgement.
pub fn produce(topic: &str, records: &[(String, Vec<u8>)]) {
    produce_with(topic, records, &[("linger.ms", "20")]);
}

/// Publishes `records` so that each partition's records are written in record batches of
/// exactly `per_batch` records (the last one may be shorter): a batch closes only when full, or
/// at the final flush. On a fresh topic, batch `i` of a partition then starts at offset
/// `i * per_batch`.
pub fn produce_in_batches(topic: &str, records: &[(String, Vec<u8>)], per_batch: usize) {
    let per_batch = per_batch.to_string();
    produce_with(
        topic,
        records,
        &[
            ("batch.num.messages", per_batch.as_str()),
            ("batch.size", "10000000"),
            ("linger.ms", "60000"),
        ],
    );
}

/// [`produce`] with these producer properties.
pub fn produce_with(topic: &str, records: &[(String, Vec<u8>)], properties: &[(&str, &str)]) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers())
        .set("acks", "all");
    for (k, v) in properties {
        config.set(*k, *v);
    }
    let producer: ThreadedProducer<DefaultProducerContext> = config.create().expect("producer");
    for (key, payload) in records {
        loop {
            match producer.send(BaseRecord::to(topic).key(key).payload(payload)) {
                Ok(()) => break,
                Err(_) => producer.poll(Duration::from_millis(10)),
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
}

/// The offsets `group` has committed for each partition of `topic` (`None`: nothing yet).
pub fn committed_offsets(group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
    committed(group, topic)
        .into_iter()
        .map(|(p, c)| (p, c.map(|(o, _)| o)))
        .collect()
}

/// The committed `(offset, metadata)` of each partition of `topic` that `group` committed.
pub fn committed_with_metadata(group: &str, topic: &str) -> BTreeMap<i32, (i64, String)> {
    committed(group, topic)
        .into_iter()
        .filter_map(|(p, c)| Some((p, c?)))
        .collect()
}

/// A consumer in `group` that commits nothing by itself, and the partitions of `topic`.
fn group_consumer(group: &str, topic: &str) -> (BaseConsumer, Vec<i32>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    (consumer, partitions)
}

fn committed(group: &str, topic: &str) -> BTreeMap<i32, Option<(i64, String)>> {
    let (consumer, partitions) = group_consumer(group, topic);
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => (e.partition(), Some((o, e.metadata().to_owned()))),
            _ => (e.partition(), None),
        })
        .collect()
}

/// Whether the broker has `topic`.
pub fn topic_exists(topic: &str) -> bool {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    md.topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none())
}

/// One record read back.
#[derive(Clone, Debug)]
pub struct Consumed {
    /// Partition.
    pub partition: i32,
    /// Key.
    pub key: Vec<u8>,
    /// Payload.
    pub payload: Vec<u8>,
    /// Headers.
    pub headers: BTreeMap<String, String>,
}

/// Reads every record of `topic` from the beginning until nothing new arrives for `quiet`.
pub fn consume_all(topic: &str, quiet: Duration) -> Vec<Consumed> {
    let (consumer, partitions) = group_consumer(&unique("reader"), topic);
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Consumed {
                    partition: m.partition(),
                    key: m.key().unwrap_or_default().to_vec(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
                last = Instant::now();
            }
            Some(Err(e)) => panic!("consume {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// What one window of one series must report, computed from the generated spans.
#[derive(Debug, Default)]
pub struct Truth {
    /// Requests.
    pub requests: i64,
    /// Errors.
    pub errors: i64,
    /// Truncations.
    pub truncations: i64,
    /// Token totals: input, output, cache_read, reasoning.
    pub tokens: [i64; 4],
    /// Errors per class.
    pub errors_by_type: BTreeMap<String, i64>,
    /// Latencies, µs.
    pub latency: Vec<u64>,
    /// TTFTs, µs.
    pub ttft: Vec<u64>,
    /// TPOTs, µs.
    pub tpot: Vec<u64>,
}

/// `(view name, series "provider=…,model=…,tenant=…,feature=…", window start ms)`.
pub type WindowId = (String, String, u64);

/// The series key of the default dimensions, as glassbox writes it (the Kafka key):
/// `provider=…,model=…,tenant=…,feature=…`; `get` reads a dimension's value.
pub fn series_key<'a>(get: impl Fn(&str) -> &'a str) -> String {
    ["provider", "model", "tenant", "feature"]
        .map(|d| format!("{d}={}", get(d)))
        .join(",")
}

/// The ground truth of every (view, series, window) for the default dimensions.
pub fn ground_truth(spans: &[GenSpan], views: &Views) -> BTreeMap<WindowId, Truth> {
    let mut truth: BTreeMap<WindowId, Truth> = BTreeMap::new();
    for s in spans.iter().filter(|s| s.kind == "llm") {
        let series = series_key(|d| match d {
            "provider" => s.provider,
            "model" => s.model,
            "tenant" => s.tenant,
            _ => s.feature,
        });
        let start_ms = s.start_ns / 1_000_000;
        let pane_end = (start_ms / views.pane_ms + 1) * views.pane_ms;
        let latency = s.duration_ns / 1_000;
        let ttft = s.ttft_ns.map(|t| t / 1_000);
        let tpot = ttft
            .filter(|t| s.output_tokens > 1 && *t <= latency)
            .map(|t| (latency - t) / (s.output_tokens - 1));
        for v in &views.views {
            for end in (pane_end..pane_end + v.length_ms).step_by(views.pane_ms as usize) {
                let t = truth
                    .entry((v.name.clone(), series.clone(), end - v.length_ms))
                    .or_default();
                t.requests += 1;
                t.errors += i64::from(s.error_type.is_some());
                t.truncations += i64::from(s.finish_reason == "length");
                t.tokens[0] += s.input_tokens as i64;
                t.tokens[1] += s.output_tokens as i64;
                t.tokens[2] += s.cache_read_tokens as i64;
                t.tokens[3] += s.reasoning_tokens as i64;
                if let Some(e) = s.error_type {
                    *t.errors_by_type.entry(e.to_owned()).or_default() += 1;
                }
                t.latency.push(latency);
                t.ttft.extend(ttft);
                t.tpot.extend(tpot);
            }
        }
    }
    truth
}

fn check_distribution(record: &serde_json::Value, values: &mut [u64], slack_us: f64, what: &str) {
    if values.is_empty() {
        assert!(
            record.is_null(),
            "{what}: a distribution without values: {record}"
        );
        return;
    }
    values.sort_unstable();
    assert_eq!(
        record["count"].as_i64(),
        Some(values.len() as i64),
        "{what}: count"
    );
    let close = |got: f64, exact: u64| {
        (got * 1_000.0 - exact as f64).abs() <= ALPHA * exact as f64 + slack_us + 0.5
    };
    for (name, q) in ["p50", "p90", "p95", "p99"].iter().zip(QUANTILES) {
        let exact = values[rank(q, values.len() as i64) as usize];
        let got = record[name].as_f64().unwrap();
        assert!(
            close(got, exact),
            "{what} {name}: {got} ms vs exact {exact} µs"
        );
    }
    assert!(
        close(record["min"].as_f64().unwrap(), values[0]),
        "{what}: min"
    );
    assert!(
        close(record["max"].as_f64().unwrap(), *values.last().unwrap()),
        "{what}: max"
    );
}

/// Asserts that the metrics records (JSON) are exactly the ground truth: one distinct record per
/// window (identical re-emissions allowed), the same set of windows, exact counts and tokens,
/// exact latency means, and percentiles within the sketch's bound.
pub fn assert_metrics_match(records: &[Consumed], mut truth: BTreeMap<WindowId, Truth>) {
    let mut seen: BTreeMap<WindowId, serde_json::Value> = BTreeMap::new();
    for r in records {
        let v: serde_json::Value =
            serde_json::from_slice(&r.payload).expect("metrics record is JSON");
        let s = &v["series"];
        let series = series_key(|d| s[d].as_str().unwrap());
        assert_eq!(
            String::from_utf8_lossy(&r.key),
            series,
            "records are keyed by series"
        );
        let id = (
            v["view"].as_str().unwrap().to_owned(),
            series,
            v["window_start_ms"].as_u64().unwrap(),
        );
        if let Some(previous) = seen.get(&id) {
            assert_eq!(
                previous, &v,
                "a re-emitted window must be identical: {id:?}"
            );
        }
        seen.insert(id, v);
    }
    let missing: Vec<_> = truth
        .keys()
        .filter(|k| !seen.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = seen
        .keys()
        .filter(|k| !truth.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "windows missing: {missing:?}; windows extra: {extra:?}"
    );
    assert_eq!(seen.len(), truth.len());
    for (id, v) in &seen {
        let t = truth.get_mut(id).unwrap();
        let i = |k: &str| v[k].as_i64().unwrap();
        assert_eq!(
            (i("requests"), i("errors"), i("truncations")),
            (t.requests, t.errors, t.truncations),
            "{id:?}"
        );
        let tok = &v["tokens"];
        let tokens =
            ["input", "output", "cache_read", "reasoning"].map(|k| tok[k].as_i64().unwrap());
        assert_eq!(tokens, t.tokens, "{id:?} tokens");
        let by_type: BTreeMap<String, i64> = v["errors_by_type"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, n)| (k.clone(), n.as_i64().unwrap()))
            .collect();
        assert_eq!(by_type, t.errors_by_type, "{id:?} errors by type");
        let mean =
            (t.latency.iter().sum::<u64>() as f64 / t.latency.len() as f64).round() / 1_000.0;
        assert_eq!(
            v["latency_ms"]["mean"].as_f64(),
            Some(mean),
            "{id:?} exact mean latency"
        );
        check_distribution(&v["latency_ms"], &mut t.latency, 0.0, "latency");
        // TTFT travels as float seconds: allow a microsecond of rounding on top of the bound.
        check_distribution(&v["ttft_ms"], &mut t.ttft, 1.0, "ttft");
        check_distribution(&v["tpot_ms"], &mut t.tpot, 1.0, "tpot");
    }
}

pub mod stores;

/// The distinct metrics records by window, parsed (re-emissions are identical; see
/// [`assert_metrics_match`]).
pub fn records_by_window(records: &[Consumed]) -> BTreeMap<WindowId, serde_json::Value> {
    records
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            let id = (
                v["view"].as_str().unwrap().to_owned(),
                String::from_utf8_lossy(&r.key).into_owned(),
                v["window_start_ms"].as_u64().unwrap(),
            );
            (id, v)
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The record's figures that every store carries: `(measurement suffix, field, value)`.
pub fn stored_fields(v: &serde_json::Value) -> Vec<(&'static str, &'static str, f64)> {
    let mut out = Vec::new();
    for f in [
        "requests",
        "errors",
        "truncations",
        "error_rate",
        "truncation_rate",
        "rpm",
        "tpm",
    ] {
        out.push(("requests", f, v[f].as_f64().unwrap()));
    }
    for f in ["input", "output", "cache_read", "cache_write", "reasoning"] {
        out.push(("tokens", f, v["tokens"][f].as_f64().unwrap()));
    }
    for (m, key) in [
        ("latency_ms", "latency_ms"),
        ("ttft_ms", "ttft_ms"),
        ("tpot_ms", "tpot_ms"),
    ] {
        if v[key].is_object() {
            for f in ["count", "mean", "min", "max", "p50", "p90", "p95", "p99"] {
                out.push((m, f, v[key][f].as_f64().unwrap()));
            }
        }
    }
    let c = &v["cost"];
    if c.is_object() {
        out.push(("cost", "total_pico", c["total_pico"].as_f64().unwrap()));
        for (field, class) in [
            ("input_pico", "input"),
            ("cache_read_pico", "cache_read"),
            ("cache_write_pico", "cache_write"),
            ("output_pico", "output"),
            ("reasoning_pico", "reasoning"),
        ] {
            out.push(("cost", field, c["by_class_pico"][class].as_f64().unwrap()));
        }
        out.push(("cost", "usd", c["usd"].as_f64().unwrap()));
        out.push((
            "cost",
            "unpriced_calls",
            c["unpriced_calls"].as_f64().unwrap(),
        ));
    }
    out
}

/// An InfluxDB point: column → value.
pub type Point = BTreeMap<String, serde_json::Value>;

/// Asserts that InfluxDB 1.x holds exactly one point per window record and measurement, with
/// the record's values (the records were checked against the ground truth already).
pub fn assert_influx_v1_matches(
    url: &str,
    db: &str,
    prefix: &str,
    records: &BTreeMap<WindowId, serde_json::Value>,
) {
    let mut by_measurement: BTreeMap<&str, BTreeMap<WindowId, Point>> = BTreeMap::new();
    for m in [
        "requests",
        "tokens",
        "latency_ms",
        "ttft_ms",
        "tpot_ms",
        "cost",
    ] {
        let points = stores::influx_points(url, db, &format!("{prefix}_{m}"));
        let mut keyed = BTreeMap::new();
        for p in points {
            let series = series_key(|d| p[d].as_str().unwrap());
            let id = (
                p["view"].as_str().unwrap().to_owned(),
                series,
                p["time"].as_u64().unwrap(),
            );
            assert!(
                keyed.insert(id.clone(), p).is_none(),
                "two points for {m} {id:?}"
            );
        }
        by_measurement.insert(m, keyed);
    }
    let requests = &by_measurement["requests"];
    assert_eq!(
        requests.len(),
        records.len(),
        "one {prefix}_requests point per window"
    );
    for (id, v) in records {
        for (m, field, want) in stored_fields(v) {
            let point = by_measurement[m]
                .get(id)
                .unwrap_or_else(|| panic!("no {prefix}_{m} point for {id:?}"));
            let got = point[field]
                .as_f64()
                .unwrap_or_else(|| panic!("{m}.{field} missing for {id:?}"));
            assert!(
                close(got, want),
                "{id:?} {m}.{field}: influx {got}, record {want}"
            );
        }
    }
}

/// Asserts that VictoriaMetrics (written through the v2 API) holds every window record's
/// values: series `{prefix}_{measurement}_{field}`, sample at the window start. The same
/// value may be stored twice (a replay); a different value never.
pub fn assert_vm_matches(url: &str, prefix: &str, records: &BTreeMap<WindowId, serde_json::Value>) {
    let exported = stores::vm_export(url, &format!("{{__name__=~\"{prefix}_.*\"}}"));
    let mut samples: BTreeMap<(String, WindowId), Vec<f64>> = BTreeMap::new();
    for (labels, values) in exported {
        let series = series_key(|d| labels[d].as_str());
        for (t, x) in values {
            samples
                .entry((
                    labels["__name__"].clone(),
                    (labels["view"].clone(), series.clone(), t),
                ))
                .or_default()
                .push(x);
        }
    }
    let mut expected = 0;
    for (id, v) in records {
        for (m, field, want) in stored_fields(v) {
            expected += 1;
            let name = format!("{prefix}_{m}_{field}");
            let got = samples
                .get(&(name.clone(), id.clone()))
                .unwrap_or_else(|| panic!("no {name} sample for {id:?}"));
            // VictoriaMetrics keeps about 12 significant digits of a float.
            assert!(
                got.iter()
                    .all(|g| (g - want).abs() <= 1e-11 * want.abs().max(1.0)),
                "{id:?} {name}: {got:?} vs {want}"
            );
        }
    }
    // Per error type and per unpriced model: checked by the record tests, not counted here.
    let errors = samples
        .keys()
        .filter(|(n, _)| {
            n.starts_with(&format!("{prefix}_errors_"))
                || n.starts_with(&format!("{prefix}_unpriced_"))
        })
        .count();
    assert_eq!(
        samples.len() - errors,
        expected,
        "no sample without a window record"
    );
}

/// Asserts that Redis holds, per view and series, the latest window's record; the latest
/// window end per view; and the RPM ranking of every window.
pub fn assert_redis_matches(
    url: &str,
    prefix: &str,
    records: &BTreeMap<WindowId, serde_json::Value>,
) {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let mut latest: BTreeMap<(String, String), &serde_json::Value> = BTreeMap::new();
    let mut last_window: BTreeMap<String, u64> = BTreeMap::new();
    let mut ranking: BTreeMap<(String, u64), BTreeMap<String, f64>> = BTreeMap::new();
    for ((view, series, _), v) in records {
        let end = v["window_end_ms"].as_u64().unwrap();
        let slot = latest.entry((view.clone(), series.clone())).or_insert(v);
        if slot["window_end_ms"].as_u64().unwrap() < end {
            *slot = v;
        }
        let lw = last_window.entry(view.clone()).or_default();
        *lw = (*lw).max(end);
        ranking
            .entry((view.clone(), end))
            .or_default()
            .insert(series.clone(), v["rpm"].as_f64().unwrap());
    }
    for ((view, series), v) in &latest {
        let key = format!("{prefix}:latest:{view}:{series}");
        let json: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg("json")
            .query(&mut con)
            .unwrap();
        let got: serde_json::Value =
            serde_json::from_str(&json.unwrap_or_else(|| panic!("no {key}"))).unwrap();
        assert_eq!(&got, *v, "{key} holds the latest window");
        let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut con).unwrap();
        assert!(ttl > 0, "{key} has a TTL");
    }
    for (view, end) in &last_window {
        let got: Option<u64> = redis::cmd("GET")
            .arg(format!("{prefix}:last_window:{view}"))
            .query(&mut con)
            .unwrap();
        assert_eq!(got, Some(*end), "last window of {view}");
    }
    for ((view, end), want) in &ranking {
        let key = format!("{prefix}:rpm:{view}:{end}");
        let got: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(&mut con)
            .unwrap();
        let got: BTreeMap<String, f64> = got.into_iter().collect();
        assert_eq!(&got, want, "{key}");
    }
}

/// The outputs of a run that must be exact: no dead letter (their reasons, sinks and errors
/// are shown otherwise), and the metrics topic, InfluxDB (v1) and Redis of `t` equal to the
/// ground truth of `spans` under the default views. Returns (metrics records, windows).
pub fn assert_outputs_exact(t: &Run, spans: &[GenSpan]) -> (usize, usize) {
    let dlq = consume_all(&t.dlq, Duration::from_secs(1));
    let mut reasons = BTreeMap::new();
    for r in &dlq {
        let key = (
            r.headers.get("glassbox.reason").cloned(),
            r.headers.get("glassbox.sink").cloned(),
            r.headers.get("glassbox.error").cloned(),
        );
        *reasons.entry(key).or_insert(0) += 1;
    }
    assert!(dlq.is_empty(), "{} dead letters: {reasons:?}", dlq.len());
    let metrics = consume_all(&t.metrics, Duration::from_secs(3));
    let windows = records_by_window(&metrics);
    assert_metrics_match(
        &metrics,
        ground_truth(spans, &glassbox::config::Config::default().metrics.views()),
    );
    assert_influx_v1_matches(&t.influx_url, &t.influx_db, "glassbox", &windows);
    assert_redis_matches(&t.redis_url, &t.prefix, &windows);
    (metrics.len(), windows.len())
}
