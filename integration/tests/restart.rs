//! SIGKILL the real `glassbox` process mid-stream, start it again, and the metrics topic,
//! InfluxDB and Redis still hold exactly the ground truth: every window, each re-emission
//! identical, no value inflated by the replay.
//!
//! The input is written in record batches of [`BATCH`] records and the process is killed once
//! a committed offset lies strictly inside a batch: on Apache Kafka the restart resumes exactly
//! there (`source.resume_rewind_records = 0`), the broker serving the whole batch and the client
//! dropping the records before the offset. (tansu does not serve such a fetch; there the tests
//! rewind whole partitions, `-1`.)

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use glassbox::kafka::source::now_ms;
use glassbox_integration::*;
use glassbox_support::loadgen::{GenSpan, Generator};

fn glassbox(r: &Run, stop_when_idle: bool) -> Child {
    let mut c = r.command(env!("CARGO_BIN_EXE_glassbox-it"));
    c.env("GLASSBOX_SOURCE__MAX_RECORDS_PER_ACTIVATION", "200")
        .env(
            "GLASSBOX_SOURCE__STOP_WHEN_IDLE",
            stop_when_idle.to_string(),
        )
        .stderr(Stdio::piped());
    c.spawn().expect("start glassbox")
}

/// Records per record batch of the input.
const BATCH: usize = 100;

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn sigkill_mid_stream_then_restart_yields_exactly_the_ground_truth() {
    let t = Run::new("restart");
    let start_ms = (now_ms() - 2 * 3_600_000) / 60_000 * 60_000;
    let mut generator = Generator::new(11, start_ms, 100.0);
    let spans: Vec<GenSpan> = (0..100_000).map(|_| generator.next_span()).collect();
    let records: Vec<(String, Vec<u8>)> = spans
        .iter()
        .map(|s| (s.trace_id.clone(), s.to_json()))
        .collect();
    produce_in_batches(&t.input, &records, BATCH);

    // First run: wait until windows are flowing and a commit lies inside a record batch, then
    // SIGKILL it mid-stream.
    let mut first = glassbox(&t, false);
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let emitted = consume_all(&t.metrics, Duration::from_millis(300)).len();
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run must still be running"
        );
        let inside_a_batch = committed_offsets(&t.group, &t.input)
            .values()
            .any(|o| o.is_some_and(|o| o % BATCH as i64 != 0));
        if emitted >= 200 && inside_a_batch {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no windows from the first run"
        );
    }
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    let committed = committed_offsets(&t.group, &t.input);
    assert!(
        committed
            .values()
            .any(|o| o.is_some_and(|o| o > 0 && o % BATCH as i64 != 0)),
        "a committed offset inside a record batch: {committed:?}"
    );
    let before = consume_all(&t.metrics, Duration::from_secs(1)).len();

    // Second run: resumes from the committed offsets and finishes the input.
    let mut second = glassbox(&t, true);
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the second run did not finish");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut log = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "second run failed: {log}");
    assert!(
        !log.contains("skipped records"),
        "the broker served every record from the committed offsets on: {log}"
    );
    // It resumed from a recorded durable frontier, rather than starting over.
    let resume: u64 = log
        .split("resume_ms=")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("the start-up log names resume_ms");
    assert!(
        resume > start_ms,
        "the restart resumed from a durable frontier ({resume}): {log}"
    );

    // Each partition's spans are in event-time order: nothing is late, nothing is dead-lettered.
    let dlq = consume_all(&t.dlq, Duration::from_secs(1));
    let reasons: Vec<_> = dlq.iter().take(3).map(|r| r.headers.clone()).collect();
    assert!(
        dlq.is_empty(),
        "{} dead letters, e.g. {reasons:?}",
        dlq.len()
    );
    let metrics = consume_all(&t.metrics, Duration::from_secs(3));
    assert!(metrics.len() > before, "the second run emitted the rest");
    let records = records_by_window(&metrics);
    assert_metrics_match(
        &metrics,
        ground_truth(&spans, &glassbox::config::Config::default().metrics.views()),
    );
    // Both stores hold exactly the same windows: nothing missing, nothing inflated by the replay.
    assert_influx_v1_matches(&t.influx_url, &t.influx_db, "glassbox", &records);
    assert_redis_matches(&t.redis_url, &t.prefix, &records);
}
