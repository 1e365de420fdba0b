//! Hostile input (issue #14) through the test broker (Apache Kafka): one client must not blind
//! the pipeline for everyone.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use glassbox::kafka::source::now_ms;
use glassbox::run::{Handles, run};
use glassbox_integration::*;
use glassbox_support::loadgen::{GenSpan, Generator};

/// A client whose clock runs nine minutes ahead sends a span in the middle of an honest stream,
/// on every partition. Before the fix its span was accepted (the future horizon was 10
/// minutes), moved its partition's event time nine minutes ahead, and every honest span read
/// after it was dead-lettered as late. Now it is refused as `future` and moves nothing.
#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn a_client_with_a_fast_clock_does_not_blind_the_pipeline() {
    let input = unique("hostile-clock-in");
    create_topic(&input, 2);
    let start_ms = (now_ms() - 3 * 60_000) / 60_000 * 60_000;
    let mut generator = Generator::new(3, start_ms, 50.0);
    let honest: Vec<GenSpan> = (0..3_000).map(|_| generator.next_span()).collect();
    let record = |s: &GenSpan| (s.trace_id.clone(), s.to_json());
    let mut records: Vec<(String, Vec<u8>)> = honest[..1_500].iter().map(record).collect();
    let ahead_ns = (now_ms() + 9 * 60_000) * 1_000_000;
    for _ in 0..10 {
        let mut s = generator.next_span();
        s.start_ns = ahead_ns;
        records.push(record(&s));
    }
    let rest: Vec<(String, Vec<u8>)> = honest[1_500..].iter().map(record).collect();
    produce(&input, &records);

    let config = pipeline_config("hostile-clock", &input);
    let handles = Handles::default();
    let pipeline = {
        let (config, handles) = (config.clone(), handles.clone());
        std::thread::spawn(move || run(&config, handles))
    };
    // The honest rest arrives once the pipeline has read the fast clock's spans (and would
    // have moved its watermark by them).
    wait_for("the first records", Duration::from_secs(120), || {
        handles.counters.consumed.load(Ordering::Relaxed) >= records.len() as u64
    });
    std::thread::sleep(Duration::from_millis(500));
    produce(&input, &rest);
    wait_for("every record", Duration::from_secs(120), || {
        handles.counters.consumed.load(Ordering::Relaxed) >= (records.len() + rest.len()) as u64
    });
    handles.drain.store(true, Ordering::Relaxed);
    pipeline.join().unwrap().expect("pipeline ran");

    let counters = handles.counters.snapshot();
    assert_eq!(counters["late"], 0, "no honest span is late: {counters:?}");
    assert_eq!(
        handles.counters.dead_letter_reasons(),
        BTreeMap::from([("future", 10)])
    );
    let dlq = consume_all(&config.kafka.deadletter_topic, Duration::from_secs(3));
    assert_eq!(dlq.len(), 10);
    assert!(dlq.iter().all(|r| r.headers["glassbox.reason"] == "future"));
    let metrics = consume_all(&config.kafka.metrics_topic, Duration::from_secs(3));
    assert_metrics_match(&metrics, ground_truth(&honest, &config.metrics.views()));
}

/// One span whose model name is 400 KB: each of its window records (the name in the key, the
/// series and the cost) is over the producer's 1 MB limit. Before the fix the outbox retried
/// them without end, so the durable frontier and every commit stopped for good. Now each is
/// dead-lettered, cut to 64 KB, with reason `too_large`, and everything else goes on.
#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn an_output_over_the_size_limit_is_dead_lettered_and_never_wedges_commits() {
    let input = unique("hostile-size-in");
    create_topic(&input, 1);
    let start_ms = (now_ms() - 2 * 3_600_000) / 60_000 * 60_000;
    let mut generator = Generator::new(4, start_ms, 20.0);
    let honest: Vec<GenSpan> = (0..4_000).map(|_| generator.next_span()).collect();
    let mut records: Vec<(String, Vec<u8>)> = honest
        .iter()
        .map(|s| (s.trace_id.clone(), s.to_json()))
        .collect();
    let mut huge: serde_json::Value = serde_json::from_slice(&honest[10].to_json()).unwrap();
    huge["span_id"] = serde_json::json!("00000000000000ff");
    huge["kind"] = serde_json::json!("llm");
    huge["attributes"]["gen_ai.request.model"] = serde_json::json!("m".repeat(400_000));
    records.insert(11, ("huge".into(), serde_json::to_vec(&huge).unwrap()));
    produce(&input, &records);

    let config = pipeline_config("hostile-size", &input);
    let handles = Handles::default();
    let pipeline = {
        let (config, handles) = (config.clone(), handles.clone());
        std::thread::spawn(move || run(&config, handles))
    };
    wait_for("every record", Duration::from_secs(120), || {
        handles.counters.consumed.load(Ordering::Relaxed) >= records.len() as u64
    });
    handles.drain.store(true, Ordering::Relaxed);
    // A wedged outbox never lets the drain finish: bounded, so that it fails rather than hangs.
    wait_for("the drain to finish", Duration::from_secs(120), || {
        pipeline.is_finished()
    });
    pipeline.join().unwrap().expect("pipeline ran");

    assert_eq!(
        committed_offsets(&config.kafka.group_id, &input),
        BTreeMap::from([(0, Some(records.len() as i64))]),
        "commits reached the end"
    );
    let reasons = handles.counters.dead_letter_reasons();
    let too_large = reasons.get("too_large").copied().unwrap_or(0);
    assert!(
        too_large >= 2,
        "its tumbling and sliding windows: {reasons:?}"
    );
    assert_eq!(handles.counters.snapshot()["outputs_dropped"], 0);
    let dlq = consume_all(&config.kafka.deadletter_topic, Duration::from_secs(3));
    assert_eq!(dlq.len() as u64, too_large);
    for r in &dlq {
        assert_eq!(r.headers["glassbox.reason"], "too_large");
        assert_eq!(
            r.headers["glassbox.output.topic"],
            config.kafka.metrics_topic
        );
        assert!(r.payload.len() <= glassbox::kafka::outbox::DEAD_LETTER_CUT);
    }
    let metrics = consume_all(&config.kafka.metrics_topic, Duration::from_secs(3));
    assert_metrics_match(&metrics, ground_truth(&honest, &config.metrics.views()));
}
