//! InfluxDB and Redis sinks end to end: spans through the test broker, the pipeline, and every store
//! read back and compared with the ground truth — through outages of each server.

use std::sync::atomic::Ordering;
use std::time::Duration;

use glassbox::config::Config;
use glassbox::kafka::source::now_ms;
use glassbox::run::{Handles, run};
use glassbox::sinks::influx::InfluxApi;
use glassbox_integration::stores::{Server, influx_query};
use glassbox_integration::*;
use glassbox_support::loadgen::{GenSpan, Generator};

const SPANS: usize = 100_000;

fn spans(seed: u64) -> Vec<GenSpan> {
    let start_ms = (now_ms() - 2 * 3_600_000) / 60_000 * 60_000;
    let mut generator = Generator::new(seed, start_ms, 100.0);
    (0..SPANS).map(|_| generator.next_span()).collect()
}

fn config(name: &str) -> Config {
    let mut c = Config::default();
    c.kafka.brokers = brokers();
    c.kafka.input_topic = unique(&format!("{name}-in"));
    c.kafka.group_id = unique(&format!("{name}-group"));
    c.kafka.metrics_topic = unique(&format!("{name}-metrics"));
    c.kafka.deadletter_topic = unique(&format!("{name}-dlq"));
    c.source.idle_timeout_ms = 2_000;
    let quirks = broker_quirks();
    c.source.resume_rewind_records = quirks.resume_rewind_records;
    c.kafka.frontier_store = quirks.frontier_store.into();
    c.telemetry.log_interval_ms = 0;
    c
}

/// Publishes `spans` in 20 chunks over ~30 s, so that windows keep closing while servers fail.
fn publish_slowly(topic: String, spans: &[GenSpan]) -> std::thread::JoinHandle<()> {
    let records: Vec<(String, Vec<u8>)> = spans
        .iter()
        .map(|s| (s.trace_id.clone(), s.to_json()))
        .collect();
    std::thread::spawn(move || {
        for chunk in records.chunks(records.len() / 20) {
            produce(&topic, chunk);
            std::thread::sleep(Duration::from_millis(1_500));
        }
    })
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn influx_v1_and_redis_hold_the_ground_truth_through_outages_of_each() {
    let dir = std::env::temp_dir().join(unique("glassbox-outage"));
    let mut redis = Server::redis(&dir.join("redis"));
    let mut influx = Server::influxdb(&dir.join("influxdb"));
    let db = "glassbox_outage";
    influx_query(&influx.url(), "", &format!("CREATE DATABASE {db}"));

    let mut c = config("outage");
    c.influx.enabled = true;
    c.influx.api = InfluxApi::V1;
    c.influx.url = influx.url();
    c.influx.database = db.into();
    c.influx.timeout_ms = 2_000;
    c.redis.enabled = true;
    c.redis.url = redis.url();
    c.redis.timeout_ms = 1_000;
    // A small backlog, so that an outage makes the source stop reading rather than buffer.
    c.source.max_backlog = 300;
    create_topic(&c.kafka.input_topic, 4);
    let spans = spans(21);
    let producer = publish_slowly(c.kafka.input_topic.clone(), &spans);

    let handles = Handles::default();
    let pipeline = {
        let (c, h) = (c.clone(), handles.clone());
        std::thread::spawn(move || run(&c, h))
    };
    let consumed = || handles.counters.consumed.load(Ordering::Relaxed);
    wait_for("windows to flow", Duration::from_secs(120), || {
        handles.counters.windows_emitted.load(Ordering::Relaxed) > 0
    });
    // Redis down for 10 s, then InfluxDB down for 10 s, while spans keep arriving.
    redis.stop();
    std::thread::sleep(Duration::from_secs(10));
    let during_redis = consumed();
    redis.start();
    influx.stop();
    std::thread::sleep(Duration::from_secs(10));
    influx.start();
    producer.join().unwrap();
    wait_for("every span", Duration::from_secs(300), || {
        consumed() >= SPANS as u64
    });
    handles.drain.store(true, Ordering::Relaxed);
    pipeline.join().unwrap().expect("pipeline ran");

    let counters = handles.counters.snapshot();
    assert!(
        during_redis < SPANS as u64,
        "the outages happened mid-stream: {counters:?}"
    );
    assert!(
        counters["sink_retries"] > 0,
        "the sinks felt the outages: {counters:?}"
    );
    assert_eq!(counters["sink_rejected"], 0, "{counters:?}");
    assert!(
        counters["backpressure_pauses"] > 0,
        "a full backlog paused the source: {counters:?}"
    );

    let metrics = consume_all(&c.kafka.metrics_topic, Duration::from_secs(3));
    assert_metrics_match(&metrics, ground_truth(&spans, &c.metrics.views()));
    let records = records_by_window(&metrics);
    assert_influx_v1_matches(&influx.url(), db, "glassbox", &records);
    assert_redis_matches(&redis.url(), "glassbox", &records);
    drop((redis, influx));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn victoria_metrics_through_the_v2_write_api_holds_the_ground_truth() {
    let vm = std::env::var("GLASSBOX_TEST_VM_URL")
        .expect("GLASSBOX_TEST_VM_URL is not set: run ./integration/scripts/test-all.sh");
    let mut c = config("vm");
    let prefix = unique("gbvm").replace('-', "_");
    c.influx.enabled = true;
    c.influx.api = InfluxApi::V2;
    c.influx.url = vm.clone();
    c.influx.org = "glassbox".into();
    c.influx.bucket = "test".into();
    c.influx.measurement_prefix = prefix.clone();
    create_topic(&c.kafka.input_topic, 4);
    let spans = spans(22);
    let records: Vec<(String, Vec<u8>)> = spans
        .iter()
        .map(|s| (s.trace_id.clone(), s.to_json()))
        .collect();
    produce(&c.kafka.input_topic, &records);
    c.source.stop_when_idle = true;
    run(&c, Handles::default()).expect("pipeline ran");

    let metrics = consume_all(&c.kafka.metrics_topic, Duration::from_secs(3));
    assert_metrics_match(&metrics, ground_truth(&spans, &c.metrics.views()));
    assert_vm_matches(&vm, &prefix, &records_by_window(&metrics));
}
