//! What the benchmarks that run against a real broker (tansu) share: topic names and creation,
//! a producer context counting deliveries, a base configuration for an in-process glassbox,
//! and a sink that timestamps window records as they arrive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use glassbox::config::Config;
use glassbox::sink::{Keyed, Sink};
use glassbox::source::now_ms;
use rdkafka::ClientContext;
use rdkafka::producer::{DeliveryResult, ProducerContext};

/// `key=value` (a `--property` argument) → (key, value).
pub fn parse_property(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected key=value, got `{s}`"))
}

/// A name no other run uses: `{prefix}-{pid}-{now ms}`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), now_ms())
}

/// Creates `name` with `partitions` partitions through tansu's own CLI.
pub fn create_topic(tansu_bin: &str, brokers: &str, name: &str, partitions: u32) {
    let status = std::process::Command::new(tansu_bin)
        .args(["topic", "create", name, "--partitions"])
        .arg(partitions.to_string())
        .arg("--broker")
        .arg(format!("tcp://{brokers}"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run tansu topic create");
    assert!(status.success(), "tansu topic create {name}: {status}");
}

/// Counts a producer's delivery reports.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// Delivered.
    pub ok: AtomicU64,
    /// Failed.
    pub failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// glassbox's configuration for a bench run reading `topic` from `brokers`: output topics of
/// their own (named after `run_id`), `workers` workers, a 2 s idle timeout, rewinding whole
/// partitions on restart (tansu), no periodic log, and the extra client `properties`.
pub fn base_config(
    brokers: &str,
    topic: &str,
    run_id: &str,
    workers: usize,
    properties: &[(String, String)],
) -> Config {
    let mut config = Config::default();
    config.kafka.brokers = brokers.to_owned();
    config.kafka.input_topic = topic.to_owned();
    config.kafka.group_id = format!("{run_id}-group");
    config.kafka.metrics_topic = format!("{run_id}-metrics");
    config.kafka.deadletter_topic = format!("{run_id}-deadletter");
    config.kafka.state_topic = format!("{run_id}-state");
    config.kafka.properties = properties.iter().cloned().collect();
    config.source.workers = workers;
    config.source.idle_timeout_ms = 2_000;
    config.source.resume_rewind_records = -1;
    config.telemetry.log_interval_ms = 0;
    config
}

/// An extra sink that records `(window end, arrival time)` of every tumbling window record and
/// acknowledges at once.
#[derive(Debug)]
pub struct ArrivalSink {
    samples: Arc<Mutex<Vec<(u64, u64)>>>,
    acked: Vec<u64>,
}

impl ArrivalSink {
    /// A sink appending to `samples`.
    pub fn new(samples: Arc<Mutex<Vec<(u64, u64)>>>) -> Self {
        Self {
            samples,
            acked: Vec::new(),
        }
    }
}

impl Sink for ArrivalSink {
    fn name(&self) -> &'static str {
        "arrival"
    }

    fn submit(&mut self, ticket: u64, records: &[Arc<Keyed>]) {
        let now = now_ms();
        let mut samples = self.samples.lock().expect("samples lock");
        for r in records
            .iter()
            .filter(|r| r.record.view.starts_with("tumbling"))
        {
            samples.push((r.record.window_end_ms, now));
        }
        self.acked.push(ticket);
    }

    fn poll(&mut self, acked: &mut Vec<u64>) {
        acked.append(&mut self.acked);
    }

    fn backlog(&self) -> usize {
        0
    }
}
