//! The quality path end to end through the test broker and the real `glassbox` process: RAG traces
//! (retrieval and generation spans on different partitions, shuffled) with known-faithful and
//! known-unfaithful answers in English and Chinese, plus user feedback. The flagged topic holds
//! exactly the unfaithful answers, and the quality records on their topic and in InfluxDB
//! carry the scores and the feedback.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use glassbox::kafka::source::now_ms;
use glassbox_integration::stores::{influx_points, influx_query};
use glassbox_integration::*;
use serde_json::{Value, json};

fn models() -> std::path::PathBuf {
    glassbox_quality::models_dir()
}

/// The labelled cases of `quality/testdata/faithfulness_cases.jsonl`.
fn cases() -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../quality/testdata/faithfulness_cases.jsonl");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn hex(n: u64, width: usize) -> String {
    format!("{n:0width$x}")
}

/// A retrieval span and a generation span (the retrieval ends before the generation starts)
/// for one answer, as native JSON ([`glassbox_support::loadgen::rag_trace`]).
fn rag_trace(trace: &str, i: u64, t_ms: u64, case: &Value, tenant: &str) -> Vec<(String, Vec<u8>)> {
    glassbox_support::loadgen::rag_trace(
        trace,
        &hex(2 * i + 1, 16),
        &hex(2 * i + 2, 16),
        t_ms,
        case,
        tenant,
    )
    .to_vec()
}

fn feedback(trace: &str, i: u64, t_ms: u64, score: f64) -> (String, Vec<u8>) {
    let span = json!({
        "trace_id": trace, "span_id": hex(1_000_000 + i, 16), "kind": "feedback", "name": "feedback",
        "start_time_unix_nano": t_ms * 1_000_000, "end_time_unix_nano": t_ms * 1_000_000,
        "status": {"code": "ok"},
        "attributes": {"feedback.score": score}
    });
    (format!("fb-{i}"), serde_json::to_vec(&span).unwrap())
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn flagged_answers_and_quality_records_hold_the_truth() {
    // The scorer glassbox will use: MiniLM for English, multilingual-e5 for Chinese.
    let mut config = glassbox::config::Config::default();
    config.quality.chinese_model_dir = models().join("multilingual-e5-small").display().to_string();
    let scorer = config.quality.scorer().unwrap_or_else(|e| {
        panic!("{e}: run integration/scripts/fetch-models.sh (test-all.sh does)")
    });
    // Cases whose two answers the scorer judges right (its accuracy is measured by the eval in
    // benches/RESULTS.md; this test is about the stream): the unfaithful ones must be flagged,
    // the faithful ones not.
    let all = cases();
    let mut by_case: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for c in &all {
        by_case
            .entry(c["case"].as_str().unwrap().to_owned())
            .or_default()
            .push(c);
    }
    let mut chosen: Vec<(&Value, bool)> = Vec::new();
    let mut langs = BTreeSet::new();
    let mut per_lang: BTreeMap<String, usize> = BTreeMap::new();
    for answers in by_case.values() {
        let lang = answers[0]["lang"].as_str().unwrap().to_owned();
        if per_lang.get(&lang).copied().unwrap_or(0) >= 10 {
            continue;
        }
        let verdicts: Vec<(&Value, bool, bool)> = answers
            .iter()
            .map(|c| {
                let chunks: Vec<&str> = c["chunks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect();
                let s = scorer
                    .score(
                        c["question"].as_str().unwrap(),
                        &chunks,
                        c["answer"].as_str().unwrap(),
                    )
                    .unwrap();
                (*c, c["label"] == "unfaithful", s.hallucination)
            })
            .collect();
        if verdicts
            .iter()
            .all(|(_, unfaithful, flagged)| unfaithful == flagged)
        {
            *per_lang.entry(lang).or_default() += 1;
            for (c, unfaithful, _) in verdicts {
                langs.insert(c["lang"].as_str().unwrap().to_owned());
                chosen.push((c, unfaithful));
            }
        }
    }
    assert!(
        chosen.len() >= 20,
        "enough cases the scorer gets right: {}",
        chosen.len()
    );

    let s_in = unique("quality-in");
    let flagged_topic = unique("quality-flagged");
    let quality_topic = unique("quality-records");
    let influx_url = std::env::var("GLASSBOX_TEST_INFLUX_V1_URL")
        .expect("GLASSBOX_TEST_INFLUX_V1_URL is not set");
    let influx_db = unique("quality").replace('-', "_");
    influx_query(&influx_url, "", &format!("CREATE DATABASE {influx_db}"));
    create_topic(&s_in, 4);

    // One answer every 2 s of event time, starting 30 min ago; feedback 20 s after the answer
    // for every third trace (0 = negative for unfaithful answers, 1 otherwise).
    let t0 = (now_ms() - 30 * 60_000) / 60_000 * 60_000;
    let mut records = Vec::new();
    let mut unfaithful = BTreeSet::new();
    let mut feedback_expected = (0i64, 0i64);
    for (i, (case, bad)) in chosen.iter().enumerate() {
        let i = i as u64;
        let trace = hex(0xfeed_0000 + i, 32);
        let t = t0 + 2_000 * i;
        records.extend(rag_trace(
            &trace,
            i,
            t,
            case,
            ["acme", "globex"][i as usize % 2],
        ));
        if *bad {
            unfaithful.insert(trace.clone());
        }
        if i.is_multiple_of(3) {
            records.push(feedback(
                &trace,
                i,
                t + 20_000,
                if *bad { 0.0 } else { 1.0 },
            ));
            feedback_expected.0 += 1;
            feedback_expected.1 += i64::from(*bad);
        }
    }
    // Shuffled: spans of a trace arrive in any order.
    records.reverse();
    let third = records.len() / 3;
    records.rotate_left(third);
    produce(&s_in, &records);

    // A rule on quality figures: per tenant, any flagged answer in a minute fires.
    let rules = std::env::temp_dir().join(format!("{}.toml", unique("quality-rules")));
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"unfaithful-answers\"\nby = [\"tenant\"]\nview = \"tumbling_1m\"\n\
         when = \"answers_scored >= 1 and hallucination_rate > 0 and avg(faithfulness) < 2\"\n",
    )
    .unwrap();
    let alerts_topic = unique("quality-alerts");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_glassbox-it"))
        .arg("run")
        .env("GLASSBOX_KAFKA__BROKERS", brokers())
        .env("GLASSBOX_KAFKA__INPUT_TOPIC", &s_in)
        .env("GLASSBOX_KAFKA__GROUP_ID", unique("quality-group"))
        .env("GLASSBOX_KAFKA__METRICS_TOPIC", unique("quality-metrics"))
        .env("GLASSBOX_KAFKA__DEADLETTER_TOPIC", unique("quality-dlq"))
        .env("GLASSBOX_KAFKA__ALERTS_TOPIC", &alerts_topic)
        .env("GLASSBOX_ALERTS__RULES", &rules)
        .env("GLASSBOX_QUALITY__ENABLED", "true")
        .env(
            "GLASSBOX_QUALITY__CHINESE_MODEL_DIR",
            &config.quality.chinese_model_dir,
        )
        .env("GLASSBOX_QUALITY__FLAGGED_TOPIC", &flagged_topic)
        .env("GLASSBOX_QUALITY__QUALITY_TOPIC", &quality_topic)
        .env("GLASSBOX_QUALITY__TRACE_TIMEOUT_MS", "10000")
        .env("GLASSBOX_INFLUX__ENABLED", "true")
        .env("GLASSBOX_INFLUX__API", "v1")
        .env("GLASSBOX_INFLUX__URL", &influx_url)
        .env("GLASSBOX_INFLUX__DATABASE", &influx_db)
        .env("GLASSBOX_SOURCE__IDLE_TIMEOUT_MS", "2000")
        .env("GLASSBOX_SOURCE__STOP_WHEN_IDLE", "true")
        .envs(broker_settings())
        .env("GLASSBOX_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "glassbox did not finish"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success());

    // Flagged: exactly the unfaithful answers, with scores, and no text by default.
    let flagged = consume_all(&flagged_topic, Duration::from_secs(3));
    let mut got = BTreeSet::new();
    for r in &flagged {
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        assert!(v["scores"]["hallucination"].as_bool().unwrap());
        assert!(
            v["scores"]["least_supported_text"].is_null(),
            "no answer text in outputs"
        );
        assert_eq!(v["retrieval_span_ids"].as_array().unwrap().len(), 1);
        got.insert(v["trace_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, unfaithful, "flagged traces");
    assert!(langs.len() == 2, "English and Chinese answers: {langs:?}");

    // Quality records: per tumbling window, answers and feedback add up to the input.
    let quality = consume_all(&quality_topic, Duration::from_secs(3));
    let (mut answers, mut hallucinations, mut fb, mut fb_negative) = (0i64, 0.0f64, 0i64, 0.0f64);
    for r in &quality {
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        if v["view"] != "tumbling_1m" {
            continue;
        }
        let n = v["answers_scored"].as_i64().unwrap();
        answers += n;
        if n > 0 {
            hallucinations += v["hallucination_rate"].as_f64().unwrap() * n as f64;
            assert!(v["faithfulness_mean"].is_number() && v["faithfulness_p10"].is_number());
        }
        let f = v["feedback_count"].as_i64().unwrap();
        fb += f;
        if f > 0 {
            fb_negative += v["negative_feedback_rate"].as_f64().unwrap() * f as f64;
        }
    }
    assert_eq!(answers, chosen.len() as i64, "every answer scored once");
    assert_eq!(hallucinations.round() as usize, unfaithful.len());
    assert_eq!(
        (fb, fb_negative.round() as i64),
        feedback_expected,
        "feedback joined by trace"
    );

    // The rule on `hallucination_rate` fired, each time on a minute of that tenant holding a
    // flagged answer, with the exact rate.
    let mut truth: BTreeMap<(String, u64), (i64, i64)> = BTreeMap::new();
    for (i, (_, bad)) in chosen.iter().enumerate() {
        let event_ms = t0 + 2_000 * i as u64 + 50;
        let tenant = ["acme", "globex"][i % 2].to_owned();
        let e = truth
            .entry((tenant, event_ms / 60_000 * 60_000))
            .or_default();
        e.0 += 1;
        e.1 += i64::from(*bad);
    }
    let alerts = consume_all(&alerts_topic, Duration::from_secs(3));
    let firing: Vec<Value> = alerts
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.payload).unwrap())
        .filter(|e| e["kind"] == "firing")
        .collect();
    assert!(!firing.is_empty(), "the quality rule fired");
    for e in &firing {
        let tenant = e["labels"]["tenant"].as_str().unwrap().to_owned();
        let start = e["window"]["start_ms"].as_u64().unwrap();
        let (answers, bad) = truth[&(tenant, start)];
        assert!(bad > 0);
        let rate = e["terms"][1]["value"].as_f64().unwrap();
        assert!((rate - bad as f64 / answers as f64).abs() < 1e-9, "{e}");
    }
    let _ = std::fs::remove_file(&rules);

    // InfluxDB carries the same.
    let points = influx_points(&influx_url, &influx_db, "glassbox_quality");
    let influx_answers: i64 = points
        .iter()
        .filter(|p| p["view"] == "tumbling_1m")
        .map(|p| p["answers_scored"].as_i64().unwrap())
        .sum();
    assert_eq!(influx_answers, chosen.len() as i64);
}
