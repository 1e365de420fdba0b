//! Alerts end to end: an injected incident (one model slow and failing for three minutes)
//! through the test broker and the real `glassbox` process yields exactly one firing and one resolved
//! alert for the affected group — on the alerts topic, in Redis, in InfluxDB and in a real
//! Alertmanager — with exemplar trace ids from the input, across a SIGKILL and restart in the
//! middle of the incident.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::{Duration, Instant};

use glassbox::kafka::source::now_ms;
use glassbox_integration::stores::{http, influx_points};
use glassbox_integration::*;
use glassbox_support::loadgen::{GenSpan, Generator};

const RULES: &str = r#"
[[rule]]
name = "slow-and-failing"
severity = "page"
by = ["provider", "model"]
view = "tumbling_1m"
when = "p95(latency_ms) > 6000 and error_rate > 0.2"
for = "1m"
keep_firing_for = "2m"
min_requests = 20
[rule.annotations]
summary = "{{provider}}/{{model}} p95 {{p95(latency_ms)}} ms, errors {{error_rate}}"
"#;

const KEY: &str = r#"slow-and-failing{provider="openai",model="gpt-4o-mini"}"#;

fn glassbox(r: &Run, rules: &str, alertmanager: &str, finish: bool) -> Child {
    let mut c = r.command(env!("CARGO_BIN_EXE_glassbox-it"));
    c.env("GLASSBOX_ALERTS__RULES", rules)
        .env("GLASSBOX_ALERTS__ALERTMANAGER_URL", alertmanager)
        // The first run must not advance the watermark with the clock when the input pauses:
        // the incident's end is published only for the second run.
        .env(
            "GLASSBOX_SOURCE__IDLE_TIMEOUT_MS",
            if finish { "2000" } else { "600000" },
        )
        .env("GLASSBOX_SOURCE__STOP_WHEN_IDLE", finish.to_string());
    c.spawn().expect("start glassbox")
}

/// Alertmanager's alerts (active, i.e. not resolved) with our rule's name.
fn alertmanager_alerts(url: &str) -> Vec<serde_json::Value> {
    let body = http()
        .get(&format!(
            "{url}/api/v2/alerts?filter=alertname%3D%22slow-and-failing%22"
        ))
        .call()
        .expect("alertmanager answers")
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str::<Vec<serde_json::Value>>(&body).unwrap()
}

fn events(topic: &str) -> Vec<serde_json::Value> {
    consume_all(topic, Duration::from_secs(3))
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            assert_eq!(
                r.key,
                v["key"].as_str().unwrap().as_bytes(),
                "keyed by rule + group"
            );
            v
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn an_incident_fires_once_and_resolves_once_everywhere_across_a_restart() {
    let rules = std::env::temp_dir().join(format!("{}.toml", unique("glassbox-rules")));
    std::fs::write(&rules, RULES).unwrap();
    let s = Run::new("alerts");
    let alertmanager = std::env::var("GLASSBOX_TEST_ALERTMANAGER_URL")
        .expect("GLASSBOX_TEST_ALERTMANAGER_URL is not set: run ./integration/scripts/test-all.sh");
    let rules = rules.display().to_string();

    // 16 minutes of traffic at 100 spans/s; gpt-4o-mini slow (8–10 s) and failing (40%)
    // in minutes 5, 6 and 7.
    let t0 = (now_ms() - 40 * 60_000) / 60_000 * 60_000;
    let minute = |s: &GenSpan| (s.start_ns / 1_000_000 - t0) / 60_000;
    let mut generator = Generator::new(5, t0, 100.0);
    let mut spans: Vec<GenSpan> = (0..96_000).map(|_| generator.next_span()).collect();
    for (i, s) in spans.iter_mut().enumerate() {
        if s.model == "gpt-4o-mini" && (5..8).contains(&minute(s)) {
            s.duration_ns = 8_000_000_000 + (i as u64 % 2_000) * 1_000_000;
            if i % 5 < 2 {
                s.error_type = Some("server_error");
            }
        }
    }
    // The premise, checked on the input: the condition holds for that group in exactly those
    // three minutes, and never for another group.
    let mut per_minute: BTreeMap<(&str, u64), (Vec<u64>, usize)> = BTreeMap::new();
    for s in spans.iter().filter(|s| s.kind == "llm") {
        let e = per_minute.entry((s.model, minute(s))).or_default();
        e.0.push(s.duration_ns / 1_000_000);
        e.1 += usize::from(s.error_type.is_some());
    }
    for (lat, _) in per_minute.values_mut() {
        lat.sort_unstable();
    }
    let holding: BTreeSet<(&str, u64)> = per_minute
        .iter()
        .filter(|(_, (lat, errors))| {
            let p95 = lat[(lat.len() * 95).div_ceil(100) - 1];
            p95 > 6_000 && *errors as f64 / lat.len() as f64 > 0.2
        })
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(
        holding,
        (5..8).map(|m| ("gpt-4o-mini", m)).collect::<BTreeSet<_>>()
    );
    let trace_ids: BTreeSet<String> = spans.iter().map(|s| s.trace_id.clone()).collect();
    let to_records = |spans: &[GenSpan]| -> Vec<(String, Vec<u8>)> {
        spans
            .iter()
            .map(|s| (s.trace_id.clone(), s.to_json()))
            .collect()
    };
    // First part: up to minute 9. The alert fires at the end of minute 7 (pending at the end of
    // minute 6, `for` = 1 min); it cannot resolve before the end of minute 10.
    let split = spans.iter().position(|s| minute(s) >= 9).unwrap();
    produce(&s.input, &to_records(&spans[..split]));

    let mut first = glassbox(&s, &rules, &alertmanager, false);
    wait_for(
        "the firing alert in Alertmanager",
        Duration::from_secs(180),
        || {
            assert!(first.try_wait().unwrap().is_none(), "the first run exited");
            !alertmanager_alerts(&alertmanager).is_empty()
        },
    );
    let active = alertmanager_alerts(&alertmanager);
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["labels"]["model"], "gpt-4o-mini");
    assert_eq!(active[0]["labels"]["severity"], "page");
    let mut con = redis::Client::open(s.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let firing: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{}:alerts:firing", s.prefix))
        .query(&mut con)
        .unwrap();
    wait_for("the firing alert in Redis", Duration::from_secs(10), || {
        let firing: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("{}:alerts:firing", s.prefix))
            .query(&mut con)
            .unwrap();
        firing.contains_key(KEY)
    });
    drop(firing);
    // SIGKILL in the middle of the incident.
    first.kill().expect("SIGKILL");
    first.wait().unwrap();

    produce(&s.input, &to_records(&spans[split..]));
    let mut second = glassbox(&s, &rules, &alertmanager, true);
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the second run did not finish");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success());

    // The alerts topic: one firing and one resolved event for the group (a record may be
    // delivered twice across the crash, with the same id and content), nothing else.
    let all = events(&s.alerts);
    let mut by_id: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for e in &all {
        let id = e["id"].as_str().unwrap().to_owned();
        if let Some(previous) = by_id.insert(id.clone(), e.clone()) {
            assert_eq!(&previous, e, "a re-delivered event is identical: {id}");
        }
    }
    let kinds: Vec<(&str, &str)> = by_id
        .values()
        .map(|e| (e["key"].as_str().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, vec![(KEY, "firing"), (KEY, "resolved")], "{all:?}");
    let firing = by_id.values().find(|e| e["kind"] == "firing").unwrap();
    let resolved = by_id.values().find(|e| e["kind"] == "resolved").unwrap();
    let m = |n: u64| t0 + n * 60_000;
    assert_eq!(firing["active_at_ms"].as_u64(), Some(m(6)));
    assert_eq!(firing["starts_at_ms"].as_u64(), Some(m(7)));
    assert_eq!(resolved["starts_at_ms"].as_u64(), Some(m(7)));
    // The condition is false from the evaluation at the end of minute 8 on (window
    // [8 min, 9 min)); `keep_firing_for` = 2 min later it resolves.
    assert_eq!(resolved["ends_at_ms"].as_u64(), Some(m(11)));
    assert_eq!(firing["labels"]["model"], "gpt-4o-mini");
    assert!(
        firing["annotations"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("openai/gpt-4o-mini p95 ")
    );
    let exemplars = firing["exemplars"].as_array().unwrap();
    assert!(!exemplars.is_empty());
    for x in exemplars {
        let id = x["trace_id"].as_str().unwrap();
        assert!(trace_ids.contains(id), "exemplar {id} is an input trace");
        let span = spans.iter().find(|s| s.trace_id == id).unwrap();
        assert_eq!(span.model, "gpt-4o-mini");
        if x["kind"] == "errored" {
            assert!(span.error_type.is_some());
        }
    }
    assert!(exemplars.iter().any(|x| x["kind"] == "errored"));
    let terms: Vec<&str> = firing["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["term"].as_str().unwrap())
        .collect();
    assert_eq!(terms, vec!["p95(latency_ms)", "error_rate"]);

    // Redis: no longer firing; the state remembers the resolution.
    let firing_now: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{}:alerts:firing", s.prefix))
        .query(&mut con)
        .unwrap();
    assert!(firing_now.is_empty(), "{firing_now:?}");
    let state: BTreeMap<String, u64> = redis::cmd("HGETALL")
        .arg(format!("{}:alerts:state", s.prefix))
        .query(&mut con)
        .unwrap();
    assert_eq!(state.get(KEY), Some(&m(11)));

    // InfluxDB: one point per transition, for dashboard annotations.
    let points = influx_points(&s.influx_url, &s.influx_db, "glassbox_alert_events");
    let mut seen: Vec<(String, u64)> = points
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_owned(),
                p["time"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![("firing".to_owned(), m(7)), ("resolved".to_owned(), m(11))]
    );

    // Alertmanager: resolved, so no longer active.
    wait_for(
        "the alert to resolve in Alertmanager",
        Duration::from_secs(30),
        || alertmanager_alerts(&alertmanager).is_empty(),
    );
    let _ = std::fs::remove_file(&rules);
}
