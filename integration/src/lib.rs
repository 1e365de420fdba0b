//! Helpers for glassbox's tests against real servers. The servers are started by
//! `integration/scripts/stack.sh` (which `test-all.sh` runs); their addresses come from the
//! environment it writes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use glassbox::loadgen::GenSpan;
use glassbox_operators::Views;
use glassbox_operators::sketch::{ALPHA, QUANTILES, rank};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The Kafka API address of the test broker (tansu).
pub fn brokers() -> String {
    std::env::var("GLASSBOX_TEST_BROKERS").expect(
        "GLASSBOX_TEST_BROKERS is not set: run the tests with ./integration/scripts/test-all.sh, \
         or start the servers with integration/scripts/stack.sh and source its env file",
    )
}

/// A topic name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Creates a topic with the broker's own CLI (tansu), as an operator would.
pub fn create_topic(name: &str, partitions: u32) {
    let tansu =
        std::env::var("GLASSBOX_TEST_TANSU_BIN").expect("GLASSBOX_TEST_TANSU_BIN is not set");
    let status = std::process::Command::new(tansu)
        .args([
            "topic",
            "create",
            name,
            "--partitions",
            &partitions.to_string(),
            "--broker",
        ])
        .arg(format!("tcp://{}", brokers()))
        .status()
        .expect("run tansu topic create");
    assert!(
        status.success(),
        "tansu topic create {name} failed: {status}"
    );
}

/// Publishes `(key, payload)` records with a real producer and waits for every acknowledgement.
pub fn produce(topic: &str, records: &[(String, Vec<u8>)]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "20")
        .set("acks", "all")
        .create()
        .expect("producer");
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
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
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

/// The ground truth of every (view, series, window) for the default dimensions.
pub fn ground_truth(spans: &[GenSpan], views: &Views) -> BTreeMap<WindowId, Truth> {
    let mut truth: BTreeMap<WindowId, Truth> = BTreeMap::new();
    for s in spans.iter().filter(|s| s.kind == "llm") {
        let series = format!(
            "provider={},model={},tenant={},feature={}",
            s.provider, s.model, s.tenant, s.feature
        );
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
        let series = format!(
            "provider={},model={},tenant={},feature={}",
            s["provider"].as_str().unwrap(),
            s["model"].as_str().unwrap(),
            s["tenant"].as_str().unwrap(),
            s["feature"].as_str().unwrap()
        );
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
