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

    let mut config = pipeline_config("hostile-size", &input);
    // The decoder now refuses such a name (`value_too_long`): let it through, to test the output.
    config.decode.max_value_bytes = 1 << 20;
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

/// The peak resident memory of this test process (`VmHWM`), bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// The hostile suite: every kind of bad record the issue lists, and a flood of 100,000 distinct
/// tenants, mixed into an honest stream on two partitions. The honest stream's metrics are
/// exactly its ground truth; every bad record is in the dead-letter topic with its reason; the
/// flood is counted exactly, its tenants beyond the limit as `__other__`; nothing panics,
/// commits reach the end, and memory stays under a stated bound.
#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn a_hostile_mix_leaves_the_honest_stream_exact_and_every_bad_record_dead_lettered() {
    const FLOOD: usize = 100_000;
    let input = unique("hostile-mix-in");
    create_topic(&input, 2);
    let start_ms = (now_ms() - 2 * 3_600_000) / 60_000 * 60_000;
    let mut generator = Generator::new(9, start_ms, 40.0);
    let honest: Vec<GenSpan> = (0..6_000).map(|_| generator.next_span()).collect();
    let template: serde_json::Value =
        serde_json::from_slice(&honest.iter().find(|s| s.kind == "llm").unwrap().to_json())
            .unwrap();
    let span = |id: u64, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = template.clone();
        v["span_id"] = serde_json::json!(format!("{id:016x}"));
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let attr = |key: &'static str, value: serde_json::Value| {
        move |v: &mut serde_json::Value| v["attributes"][key] = value.clone()
    };
    let now_ns = now_ms() * 1_000_000;
    let nested = format!("{}1{}", "{\"a\":".repeat(300), "}".repeat(300));
    let mut invalid_utf8 = span(1, &|_| {});
    invalid_utf8.splice(2..2, [0xff, 0xfe]);
    let mut bad: Vec<(&str, Vec<u8>)> = vec![
        ("invalid_json", br#"{"trace_id": "4bf92f35"#.to_vec()),
        // Nesting inside an unknown field is skipped without recursion; the record has no ids.
        ("missing_field", nested.into_bytes()),
        ("invalid_json", invalid_utf8),
        (
            "invalid_json",
            br#"{"trace_id":"aa","span_id":"bb","start_time_unix_nano":NaN}"#.to_vec(),
        ),
        ("invalid_json", [span(2, &|_| {}), b"}".to_vec()].concat()),
        (
            "bad_type",
            span(
                3,
                &attr("gen_ai.usage.input_tokens", serde_json::json!("many")),
            ),
        ),
        (
            "bad_type",
            span(
                4,
                &attr("gen_ai.request.model", serde_json::json!({"nested": true})),
            ),
        ),
        (
            "negative_tokens",
            span(
                5,
                &attr("gen_ai.usage.output_tokens", serde_json::json!(-3)),
            ),
        ),
        (
            "absurd_tokens",
            span(
                6,
                &attr("gen_ai.usage.input_tokens", serde_json::json!(1u64 << 40)),
            ),
        ),
        (
            "future",
            span(7, &|v| {
                v["start_time_unix_nano"] = serde_json::json!(now_ns + 600_000_000_000);
                v["end_time_unix_nano"] = serde_json::json!(now_ns + 601_000_000_000);
            }),
        ),
        (
            "beyond_horizon",
            span(8, &|v| {
                v["start_time_unix_nano"] = serde_json::json!(now_ns - 8 * 86_400_000_000_000);
                v["end_time_unix_nano"] = serde_json::json!(now_ns - 8 * 86_400_000_000_000 + 1);
            }),
        ),
        (
            "absurd_duration",
            span(9, &|v| {
                v["end_time_unix_nano"] = serde_json::json!(u64::MAX)
            }),
        ),
        (
            "value_too_long",
            span(
                10,
                &attr(
                    "gen_ai.request.model",
                    serde_json::json!("m".repeat(300_000)),
                ),
            ),
        ),
        (
            "value_too_long",
            span(
                11,
                &attr(
                    "gen_ai.response.finish_reasons",
                    serde_json::json!(vec!["stop"; 50_000]),
                ),
            ),
        ),
        (
            "too_many_attributes",
            span(12, &|v| {
                for i in 0..2_000 {
                    v["attributes"][format!("x.{i}")] = serde_json::json!(i);
                }
            }),
        ),
        (
            "too_large",
            span(
                13,
                &attr("padding.blob", serde_json::json!("p".repeat(600_000))),
            ),
        ),
        (
            "empty_id",
            span(14, &|v| v["span_id"] = serde_json::json!("")),
        ),
        (
            "bad_id",
            span(15, &|v| v["trace_id"] = serde_json::json!("not-hex!")),
        ),
        (
            "missing_field",
            span(16, &|v| {
                v.as_object_mut().unwrap().remove("end_time_unix_nano");
            }),
        ),
        ("unknown_format", vec![0u8; 64]),
        ("unknown_format", b"\x00\x01 not a record".to_vec()),
        ("invalid_otlp", vec![0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]),
    ];
    // Duplicate keys: the last one wins, as in JavaScript; a duplicate that breaks a rule is
    // refused like any other value.
    let duplicated = String::from_utf8(span(17, &|_| {})).unwrap().replacen(
        "{",
        r#"{"end_time_unix_nano":"not a number","#,
        1,
    );
    bad.push(("bad_type", duplicated.into_bytes()));

    // The flood: valid model calls of 100,000 tenants, one each, in one minute, on a model of
    // their own so the honest series can be told apart.
    let flood_ms = start_ms + 30 * 60_000;
    let flood: Vec<Vec<u8>> = (0..FLOOD as u64)
        .map(|i| {
            span(1_000_000 + i, &|v| {
                v["attributes"]["tenant.id"] = serde_json::json!(format!("flood-{i}"));
                v["attributes"]["gen_ai.request.model"] = serde_json::json!("flood-model");
                let start = (flood_ms + i % 60_000) * 1_000_000;
                v["start_time_unix_nano"] = serde_json::json!(start);
                v["end_time_unix_nano"] = serde_json::json!(start + 1_000_000);
            })
        })
        .collect();

    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    let mut bad_iter = bad.iter();
    for (i, s) in honest.iter().enumerate() {
        records.push((s.trace_id.clone(), s.to_json()));
        if i % 200 == 0
            && let Some((_, b)) = bad_iter.next()
        {
            records.push((format!("bad-{i}"), b.clone()));
        }
    }
    for (_, b) in bad_iter {
        records.push(("bad-tail".into(), b.clone()));
    }
    records.extend(
        flood
            .into_iter()
            .enumerate()
            .map(|(i, f)| (format!("flood-{i}"), f)),
    );
    produce(&input, &records);

    let mut config = pipeline_config("hostile-mix", &input);
    config.decode.max_record_bytes = 512 * 1024;
    let handles = Handles::default();
    let pipeline = {
        let (config, handles) = (config.clone(), handles.clone());
        std::thread::spawn(move || run(&config, handles))
    };
    wait_for("every record", Duration::from_secs(300), || {
        handles.counters.consumed.load(Ordering::Relaxed) >= records.len() as u64
    });
    handles.drain.store(true, Ordering::Relaxed);
    wait_for("the drain to finish", Duration::from_secs(180), || {
        pipeline.is_finished()
    });
    pipeline.join().unwrap().expect("pipeline ran");

    // Every bad record dead-lettered with its reason, counted, and nothing else.
    let mut want_reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for (reason, _) in &bad {
        *want_reasons.entry(reason).or_default() += 1;
    }
    assert_eq!(handles.counters.dead_letter_reasons(), want_reasons);
    let dlq = consume_all(&config.kafka.deadletter_topic, Duration::from_secs(3));
    let mut got_reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &dlq {
        *got_reasons
            .entry(r.headers["glassbox.reason"].as_str())
            .or_default() += 1;
    }
    assert_eq!(
        got_reasons, want_reasons,
        "the dead-letter topic holds every bad record"
    );
    let counters = handles.counters.snapshot();
    assert_eq!(counters["late"], 0, "{counters:?}");

    // Commits reached the end of both partitions.
    let committed = committed_offsets(&config.kafka.group_id, &input);
    let total: i64 = committed.values().map(|o| o.unwrap_or(0)).sum();
    assert_eq!(total, records.len() as i64, "{committed:?}");

    // The honest stream is exact; the flood is counted exactly, at most 1,000 tenant values
    // per window with the rest as `__other__`.
    let metrics = consume_all(&config.kafka.metrics_topic, Duration::from_secs(3));
    let is_flood = |r: &&Consumed| {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        v["series"]["model"] == "flood-model"
    };
    let (flooded, honest_records): (Vec<&Consumed>, Vec<&Consumed>) =
        metrics.iter().partition(is_flood);
    let honest_records: Vec<Consumed> = honest_records.into_iter().cloned().collect();
    assert_metrics_match(
        &honest_records,
        ground_truth(&honest, &config.metrics.views()),
    );
    let mut flood_requests = 0i64;
    let mut overflowed = 0i64;
    let mut tenants: BTreeMap<u64, std::collections::BTreeSet<String>> = BTreeMap::new();
    for r in &flooded {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        if v["view"] != "tumbling_1m" {
            continue;
        }
        let n = v["requests"].as_i64().unwrap();
        let tenant = v["series"]["tenant"].as_str().unwrap().to_owned();
        flood_requests += n;
        if tenant == "__other__" {
            overflowed += n;
        }
        tenants
            .entry(v["window_end_ms"].as_u64().unwrap())
            .or_default()
            .insert(tenant);
    }
    assert_eq!(
        flood_requests, FLOOD as i64,
        "every flood span is counted once"
    );
    assert!(overflowed > 90_000, "{overflowed} overflowed");
    assert_eq!(counters["overflow_spans"], overflowed as u64);
    for (end, t) in &tenants {
        assert!(t.len() <= 1_001, "window {end}: {} tenant values", t.len());
    }
    let rss = peak_rss();
    eprintln!("peak RSS of the test process: {} MiB", rss >> 20);
    // 441 MiB measured (AMD EPYC, debug build); 3.3 GiB when the limit ran after the windows.
    assert!(rss < 1 << 30, "memory bounded: peak {} MiB", rss >> 20);
}
