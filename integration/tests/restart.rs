//! SIGKILL the real `glassbox` process mid-stream, start it again, and the metrics topic,
//! InfluxDB and Redis still hold exactly the ground truth: every window, each re-emission
//! identical, no value inflated by the replay.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use glassbox::loadgen::{GenSpan, Generator};
use glassbox::source::now_ms;
use glassbox_integration::*;

struct Topics {
    input: String,
    group: String,
    metrics: String,
    dlq: String,
    influx_url: String,
    influx_db: String,
    redis_url: String,
    redis_prefix: String,
}

fn glassbox(t: &Topics, stop_when_idle: bool) -> Child {
    Command::new(env!("CARGO_BIN_EXE_glassbox-it"))
        .arg("run")
        .env("GLASSBOX_KAFKA__BROKERS", brokers())
        .env("GLASSBOX_KAFKA__INPUT_TOPIC", &t.input)
        .env("GLASSBOX_KAFKA__GROUP_ID", &t.group)
        .env("GLASSBOX_KAFKA__METRICS_TOPIC", &t.metrics)
        .env("GLASSBOX_KAFKA__DEADLETTER_TOPIC", &t.dlq)
        .env("GLASSBOX_INFLUX__ENABLED", "true")
        .env("GLASSBOX_INFLUX__API", "v1")
        .env("GLASSBOX_INFLUX__URL", &t.influx_url)
        .env("GLASSBOX_INFLUX__DATABASE", &t.influx_db)
        .env("GLASSBOX_REDIS__ENABLED", "true")
        .env("GLASSBOX_REDIS__URL", &t.redis_url)
        .env("GLASSBOX_REDIS__KEY_PREFIX", &t.redis_prefix)
        .env("GLASSBOX_SOURCE__IDLE_TIMEOUT_MS", "2000")
        .env("GLASSBOX_SOURCE__COMMIT_INTERVAL_MS", "200")
        .env("GLASSBOX_SOURCE__MAX_RECORDS_PER_ACTIVATION", "200")
        .env(
            "GLASSBOX_SOURCE__STOP_WHEN_IDLE",
            stop_when_idle.to_string(),
        )
        // tansu does not serve fetches that start inside a record batch.
        .env("GLASSBOX_SOURCE__RESUME_REWIND_RECORDS", "-1")
        .env("GLASSBOX_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start glassbox")
}

#[test]
fn sigkill_mid_stream_then_restart_yields_exactly_the_ground_truth() {
    let t = Topics {
        input: unique("restart-in"),
        group: unique("restart-group"),
        metrics: unique("restart-metrics"),
        dlq: unique("restart-dlq"),
        influx_url: std::env::var("GLASSBOX_TEST_INFLUX_V1_URL")
            .expect("GLASSBOX_TEST_INFLUX_V1_URL is not set"),
        influx_db: unique("restart").replace('-', "_"),
        redis_url: std::env::var("GLASSBOX_TEST_REDIS_URL")
            .expect("GLASSBOX_TEST_REDIS_URL is not set"),
        redis_prefix: unique("restart"),
    };
    glassbox_integration::stores::influx_query(
        &t.influx_url,
        "",
        &format!("CREATE DATABASE {}", t.influx_db),
    );
    create_topic(&t.input, 4);
    let start_ms = (now_ms() - 2 * 3_600_000) / 60_000 * 60_000;
    let mut generator = Generator::new(11, start_ms, 100.0);
    let spans: Vec<GenSpan> = (0..100_000).map(|_| generator.next_span()).collect();
    let records: Vec<(String, Vec<u8>)> = spans
        .iter()
        .map(|s| (s.trace_id.clone(), s.to_json()))
        .collect();
    produce(&t.input, &records);

    // First run: wait until windows are flowing, then SIGKILL it mid-stream.
    let mut first = glassbox(&t, false);
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let emitted = consume_all(&t.metrics, Duration::from_millis(300)).len();
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run must still be running"
        );
        if emitted >= 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no windows from the first run"
        );
    }
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
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
    assert_redis_matches(&t.redis_url, &t.redis_prefix, &records);
}
