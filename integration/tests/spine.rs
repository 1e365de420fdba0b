//! The spine against a real broker (Apache Kafka, or tansu): ≥ 100k spans with malformed and late ones through a
//! 4-partition topic, the pipeline in-process, and every window and dead letter checked.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use glassbox::config::Config;
use glassbox::kafka::source::now_ms;
use glassbox::run::{Handles, run};
use glassbox_integration::*;
use glassbox_support::loadgen::{GenSpan, Generator};

const SPANS: usize = 100_000;

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn spans_through_the_broker_become_exact_windows_and_bad_records_are_dead_lettered() {
    let input = unique("spine-in");
    create_topic(&input, 4);
    let config = pipeline_config("spine", &input);

    // 100k spans over ~17 minutes of event time, two hours ago, plus malformed records.
    let start_ms = (now_ms() - 2 * 3_600_000) / 60_000 * 60_000;
    let mut generator = Generator::new(7, start_ms, 100.0);
    let mut spans: Vec<GenSpan> = Vec::with_capacity(SPANS);
    let mut records = Vec::with_capacity(SPANS + 400);
    let mut expected_dlq: BTreeMap<&'static str, usize> = BTreeMap::new();
    for i in 0..SPANS {
        let s = generator.next_span();
        records.push((s.trace_id.clone(), s.to_json()));
        spans.push(s);
        if i % 500 == 0 {
            let (bad, reason) = generator.malformed();
            records.push((format!("bad-{i}"), bad));
            *expected_dlq.entry(reason).or_default() += 1;
        }
    }
    produce(&input, &records);

    let handles = Handles::default();
    let pipeline = {
        let (config, handles) = (config.clone(), handles.clone());
        std::thread::spawn(move || run(&config, handles))
    };
    let total = records.len() as u64;
    wait_for(
        "the pipeline to read everything",
        Duration::from_secs(300),
        || handles.counters.consumed.load(Ordering::Relaxed) >= total,
    );
    // Late spans: their windows closed long ago (the watermark is ~17 minutes past them).
    let mut late_generator = Generator::new(8, start_ms + 1_000, 10.0);
    let late_spans: Vec<GenSpan> = (0..40).map(|_| late_generator.next_span()).collect();
    let late: Vec<(String, Vec<u8>)> = late_spans
        .iter()
        .map(|s| (s.trace_id.clone(), s.to_json()))
        .collect();
    // Only model calls count (and can be late); other spans are read and ignored.
    let late_calls = late_spans.iter().filter(|s| s.kind == "llm").count();
    produce(&input, &late);
    wait_for("the late spans", Duration::from_secs(60), || {
        handles.counters.consumed.load(Ordering::Relaxed) >= total + late.len() as u64
    });
    // Treat the input as finished: the remaining windows close, everything is committed.
    handles.drain.store(true, Ordering::Relaxed);
    pipeline.join().unwrap().expect("pipeline ran");

    let counters = handles.counters.snapshot();
    assert_eq!(counters["consumed"], total + late.len() as u64);
    assert_eq!(counters["late"], late_calls as u64, "{counters:?}");

    let dlq = consume_all(&config.kafka.deadletter_topic, Duration::from_secs(3));
    let mut got_dlq: BTreeMap<String, usize> = BTreeMap::new();
    for r in &dlq {
        *got_dlq
            .entry(r.headers["glassbox.reason"].clone())
            .or_default() += 1;
        assert_eq!(r.headers["glassbox.source.topic"], input);
        assert!(
            r.headers["glassbox.source.partition"]
                .parse::<i32>()
                .is_ok()
        );
        assert!(r.headers["glassbox.source.offset"].parse::<i64>().is_ok());
        assert!(!r.headers["glassbox.error"].is_empty());
    }
    let mut want_dlq: BTreeMap<String, usize> = expected_dlq
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
    want_dlq.insert("late".into(), late_calls);
    assert_eq!(
        got_dlq, want_dlq,
        "every bad record reached the dead-letter topic with its reason"
    );

    let metrics = consume_all(&config.kafka.metrics_topic, Duration::from_secs(3));
    let truth = ground_truth(&spans, &config.metrics.views());
    assert_metrics_match(&metrics, truth);
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn a_missing_input_topic_fails_fast_naming_it() {
    let mut config = Config::default();
    config.kafka.brokers = brokers();
    config.kafka.input_topic = unique("no-such-topic");
    let err = run(&config, Handles::default()).unwrap_err().to_string();
    assert!(err.contains(&config.kafka.input_topic), "{err}");
}
