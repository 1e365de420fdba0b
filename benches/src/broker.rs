//! What the benchmarks that run against a real broker (Apache Kafka by default, or tansu) share:
//! the broker's arguments and topic creation, a bulk producer counting deliveries, a base
//! configuration for an in-process glassbox, and a sink that timestamps window records as they
//! arrive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use glassbox::config::Config;
use glassbox::kafka::source::now_ms;
use glassbox::sinks::{Keyed, Sink};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};

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

/// The broker a bench runs against, as `integration/scripts/stack.sh` describes it in its env
/// file.
#[derive(clap::Args, Debug, Clone)]
pub struct BrokerArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "GLASSBOX_TEST_BROKERS")]
    pub brokers: String,
    /// Which broker that is: `kafka` (Apache Kafka) or `tansu`.
    #[arg(long = "broker", env = "GLASSBOX_TEST_BROKER", default_value = "kafka",
          value_parser = ["kafka", "tansu"])]
    pub kind: String,
    /// The stack's state dir; its `<broker>.pid` gives the broker's CPU time.
    #[arg(long, env = "GLASSBOX_TEST_STACK_DIR")]
    pub stack_dir: Option<String>,
}

impl BrokerArgs {
    /// Creates `name` with `partitions` partitions through the admin API.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let mut base = rdkafka::ClientConfig::new();
        base.set("bootstrap.servers", &self.brokers);
        let partitions = i32::try_from(partitions).expect("partition count");
        glassbox::kafka::admin::create_topics(&base, &[(name, partitions)], 1)
            .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
    }

    /// The broker process's pid, when the stack dir is known.
    pub fn pid(&self) -> Option<String> {
        let dir = self.stack_dir.as_ref()?;
        std::fs::read_to_string(format!("{dir}/{}.pid", self.kind))
            .ok()
            .map(|s| s.trim().to_owned())
    }
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

/// A producer for bulk loads: large batches and queues, `compression` (e.g. `lz4`), records
/// lingering `linger_ms` for their batch; its context counts the deliveries.
pub fn bulk_producer(
    brokers: &str,
    linger_ms: u32,
    compression: &str,
) -> ThreadedProducer<Deliveries> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("compression.type", compression)
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(Deliveries::default())
        .expect("producer")
}

/// Sends one record, waiting (and serving delivery reports) while the producer's queue is full.
pub fn send<C: ProducerContext<DeliveryOpaque = ()>>(
    p: &ThreadedProducer<C>,
    topic: &str,
    key: &str,
    payload: &[u8],
) {
    let mut record = BaseRecord::to(topic).key(key).payload(payload);
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((_, r)) => {
                record = r;
                p.poll(std::time::Duration::from_millis(5));
            }
        }
    }
}

/// glassbox's configuration for a bench run reading `topic` from `broker`: output topics of
/// their own (named after `run_id`), `workers` workers, a 2 s idle timeout, the broker's rewind
/// on restart, no periodic log, and the extra client `properties`.
pub fn base_config(
    broker: &BrokerArgs,
    topic: &str,
    run_id: &str,
    workers: usize,
    properties: &[(String, String)],
) -> Config {
    let mut config = Config::default();
    config.kafka.brokers = broker.brokers.clone();
    config.kafka.input_topic = topic.to_owned();
    config.kafka.group_id = format!("{run_id}-group");
    config.kafka.metrics_topic = format!("{run_id}-metrics");
    config.kafka.deadletter_topic = format!("{run_id}-deadletter");
    config.kafka.state_topic = format!("{run_id}-state");
    config.kafka.properties = properties.iter().cloned().collect();
    config.source.workers = workers;
    config.source.idle_timeout_ms = 2_000;
    let quirks = glassbox_support::broker::BrokerQuirks::of(&broker.kind);
    config.source.resume_rewind_records = quirks.resume_rewind_records;
    config.kafka.frontier_store = quirks.frontier_store.into();
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
