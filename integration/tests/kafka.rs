//! What Apache Kafka does that glassbox must follow, checked against the real broker:
//! transactions in the input (aborted spans never count, and a partition that ends in a
//! transaction marker still goes idle, so its windows close), and the durable frontier travelling
//! in the commit metadata while the group holds only real offsets (what lag tools read).

use std::sync::atomic::Ordering;
use std::time::Duration;

use glassbox::config::Config;
use glassbox::kafka::source::now_ms;
use glassbox::run::{Handles, run};
use glassbox_integration::*;
use glassbox_support::loadgen::{GenSpan, Generator};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

/// Publishes `spans` in one transaction, committed or aborted.
fn produce_transaction(topic: &str, spans: &[GenSpan], commit: bool) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("transactional.id", unique("glassbox-test-tx"))
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init transactions");
    producer.begin_transaction().expect("begin transaction");
    for s in spans {
        let payload = s.to_json();
        loop {
            match producer.send(BaseRecord::to(topic).key(&s.trace_id).payload(&payload)) {
                Ok(()) => break,
                Err(_) => producer.poll(Duration::from_millis(10)),
            }
        }
    }
    if commit {
        producer
            .commit_transaction(Duration::from_secs(30))
            .expect("commit transaction");
    } else {
        producer
            .abort_transaction(Duration::from_secs(30))
            .expect("abort transaction");
    }
}

/// A configuration of topics and group unique to test `name`, its 2-partition input topic
/// created, and a span generator starting two hours ago.
fn setup(name: &str, seed: u64) -> (Config, Generator) {
    let config = config(name);
    create_topic(&config.kafka.input_topic, 2);
    let start_ms = (now_ms() - 2 * 3_600_000) / 60_000 * 60_000;
    (config, Generator::new(seed, start_ms, 50.0))
}

fn config(name: &str) -> Config {
    let mut config = Config::default();
    config.kafka.brokers = brokers();
    config.kafka.input_topic = unique(&format!("{name}-in"));
    config.kafka.group_id = unique(&format!("{name}-group"));
    config.kafka.metrics_topic = unique(&format!("{name}-metrics"));
    config.kafka.deadletter_topic = unique(&format!("{name}-dlq"));
    config.kafka.alerts_topic = unique(&format!("{name}-alerts"));
    config.kafka.state_topic = unique(&format!("{name}-state"));
    config.kafka.frontier_store = broker_quirks().frontier_store.into();
    config.source.idle_timeout_ms = 1_000;
    config.source.stop_when_idle = true;
    config.source.commit_interval_ms = 100;
    config.telemetry.log_interval_ms = 0;
    config
}

/// Runs the pipeline until it stops by itself (input idle); panics if it has not after 120 s.
fn run_until_idle(config: &Config) -> Handles {
    let handles = Handles::default();
    let pipeline = {
        let (config, handles) = (config.clone(), handles.clone());
        std::thread::spawn(move || run(&config, handles))
    };
    wait_for(
        "the pipeline to find its input idle and stop",
        Duration::from_secs(120),
        || pipeline.is_finished(),
    );
    pipeline.join().unwrap().expect("pipeline ran");
    handles
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn transactional_input_counts_committed_spans_only_and_its_partitions_go_idle() {
    if broker_kind() == "tansu" {
        eprintln!("skipped: the test broker is tansu, which has no transactions");
        return;
    }
    let (config, mut generator) = setup("tx", 21);
    let committed: Vec<GenSpan> = (0..3_000).map(|_| generator.next_span()).collect();
    let aborted: Vec<GenSpan> = (0..1_000).map(|_| generator.next_span()).collect();
    let last: Vec<GenSpan> = (0..2_000).map(|_| generator.next_span()).collect();
    produce_transaction(&config.kafka.input_topic, &committed, true);
    produce_transaction(&config.kafka.input_topic, &aborted, false);
    // Each partition now ends in a commit marker, which the consumer never hands over.
    produce_transaction(&config.kafka.input_topic, &last, true);

    let handles = run_until_idle(&config);
    let counters = handles.counters.snapshot();
    assert_eq!(
        counters["consumed"],
        (committed.len() + last.len()) as u64,
        "read committed: the aborted spans are never read: {counters:?}"
    );
    let dlq = consume_all(&config.kafka.deadletter_topic, Duration::from_secs(1));
    assert!(dlq.is_empty(), "{} dead letters", dlq.len());
    let metrics = consume_all(&config.kafka.metrics_topic, Duration::from_secs(2));
    let spans: Vec<GenSpan> = committed.into_iter().chain(last).collect();
    assert_metrics_match(&metrics, ground_truth(&spans, &config.metrics.views()));
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn the_frontier_is_committed_in_metadata_and_the_group_holds_only_real_offsets() {
    if broker_kind() == "tansu" {
        eprintln!("skipped: the test broker is tansu, which drops commit metadata");
        return;
    }
    let (config, mut generator) = setup("frontier", 22);
    let spans: Vec<GenSpan> = (0..2_000).map(|_| generator.next_span()).collect();
    let records: Vec<(String, Vec<u8>)> = spans
        .iter()
        .map(|s| (s.trace_id.clone(), s.to_json()))
        .collect();
    produce(&config.kafka.input_topic, &records);
    let handles = run_until_idle(&config);
    assert_eq!(
        handles.counters.consumed.load(Ordering::Relaxed),
        spans.len() as u64
    );

    // Every input partition carries the frontier, past the last window of the spans.
    let last_end = spans.iter().map(|s| s.start_ns / 1_000_000).max().unwrap();
    let committed = committed_with_metadata(&config.kafka.group_id, &config.kafka.input_topic);
    assert_eq!(committed.len(), 2, "{committed:?}");
    for (partition, (offset, metadata)) in &committed {
        let frontier: u64 = metadata
            .strip_prefix("glassbox.frontier_ms=")
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("partition {partition}: metadata {metadata:?}"));
        assert!(frontier > last_end, "partition {partition}: {frontier}");
        assert!(*offset > 0, "partition {partition}: offset {offset}");
    }
    let total: i64 = committed.values().map(|(o, _)| o).sum();
    assert_eq!(
        total,
        spans.len() as i64,
        "every record committed, and no more"
    );
    // No state topic was created: the group's offsets are all real input offsets.
    assert!(
        !topic_exists(&config.kafka.state_topic),
        "no state topic with frontier_store = metadata"
    );
}
