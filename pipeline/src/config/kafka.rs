//! `[kafka]` (connection, topics, client properties) and `[source]` (how the Kafka source
//! reads, watermarks and commits).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Kafka connection, topics and client properties.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated. Example: `"kafka-1:9092,kafka-2:9092"`.
    pub brokers: String,
    /// The topic LLM spans are published to (one span per record, key = trace id). It must exist.
    pub input_topic: String,
    /// Consumer group: offsets are committed to it (partitions are assigned statically).
    pub group_id: String,
    /// Where a record per (view, series, window) goes when the window closes.
    pub metrics_topic: String,
    /// Where undecodable and late records go, with the reason in headers.
    pub deadletter_topic: String,
    /// Where alert events go: budget thresholds crossed (and, later, rule alerts).
    pub alerts_topic: String,
    /// Where the durable frontier is committed with the offsets (see the README, "Offsets"):
    /// `metadata` (the commit metadata of every input partition; Apache Kafka, Redpanda) or
    /// `state_topic` (the committed offset of this process's partition of `state_topic`, for
    /// brokers that drop commit metadata, such as tansu). At start both are read.
    pub frontier_store: String,
    /// With `frontier_store = "state_topic"`: the topic whose committed offset holds the
    /// durable frontier (created when missing).
    pub state_topic: String,
    /// Partitions of output topics that glassbox creates when they are missing.
    pub output_partitions: i32,
    /// Replication factor of output topics that glassbox creates.
    pub output_replication: i32,
    /// Where to start a partition without a committed offset: `earliest` or `latest`.
    pub auto_offset_reset: String,
    /// Extra librdkafka properties for every client, e.g. `"security.protocol" = "SASL_SSL"`,
    /// `"sasl.password" = "env:KAFKA_PASSWORD"` (or `"file:/run/secrets/kafka"`).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "localhost:9092".into(),
            input_topic: "llm.spans".into(),
            group_id: "glassbox".into(),
            metrics_topic: "glassbox.metrics".into(),
            deadletter_topic: "glassbox.deadletter".into(),
            alerts_topic: "glassbox.alerts".into(),
            frontier_store: "metadata".into(),
            state_topic: "glassbox.state".into(),
            output_partitions: 4,
            output_replication: 1,
            auto_offset_reset: "earliest".into(),
            properties: BTreeMap::new(),
        }
    }
}

/// How the Kafka source reads, watermarks and commits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// Timely worker threads in this process; input partitions are spread over them.
    pub workers: usize,
    /// At most this many records are read per activation of a worker's source.
    pub max_records_per_activation: usize,
    /// How far behind the largest event time seen the watermark trails (ms). A span whose
    /// window has already closed when it arrives is late: counted, and dead-lettered if
    /// `deadletter_late`.
    pub allowed_lateness_ms: u64,
    /// A partition without records for this long stops holding the watermark back (ms). When
    /// all of a worker's partitions are idle, its watermark advances with the wall clock.
    pub idle_timeout_ms: u64,
    /// Treat input as finished once every partition is idle: close all windows, commit, exit.
    /// For backfills, tests and benchmarks; a service leaves this `false`.
    pub stop_when_idle: bool,
    /// Dead-letter late spans with reason `late` (they are counted either way).
    pub deadletter_late: bool,
    /// How often offsets are committed (ms).
    pub commit_interval_ms: u64,
    /// Records produced but not yet acknowledged, per worker, beyond which the source stops
    /// reading Kafka until the sinks catch up.
    pub max_backlog: usize,
    /// On restart, start reading before each committed offset and discard what precedes it:
    /// `0` reads from the committed offset itself (right for Apache Kafka and Redpanda), `N`
    /// starts N records earlier, `-1` starts at the beginning of the partition. Some brokers
    /// (tansu 0.6) do not serve a fetch that starts inside a record batch (they skip to a later
    /// batch, or return nothing): with them use `-1`, since a committed offset is rarely a batch
    /// boundary.
    pub resume_rewind_records: i64,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            max_records_per_activation: 10_000,
            allowed_lateness_ms: 5_000,
            idle_timeout_ms: 10_000,
            stop_when_idle: false,
            deadletter_late: true,
            commit_interval_ms: 1_000,
            max_backlog: 200_000,
            resume_rewind_records: 0,
        }
    }
}
