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
