//! The alerting path: rule-file checks with exact messages, scripted inputs with exact
//! transitions and times, and an oracle that recomputes every alert from scratch on random
//! spans and random rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use glassbox_operators::alerts::rules::{Rule, RuleError, Rules};
use glassbox_operators::alerts::{AlertEvent, AlertKind, Transition, alert_event, alerts};
use glassbox_operators::metrics::figures::Figures;
use glassbox_operators::metrics::panes::{Exemplar, ExemplarKind};
use glassbox_operators::metrics::sketch::{Metric, bucket_of, bucket_value_us, summarize};
use glassbox_operators::metrics::views::Views;
use glassbox_operators::metrics::windows::windows;
use glassbox_operators::{Dimensions, Series, SpanFacts, WindowMetrics};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use timely::dataflow::operators::capture::{Capture, Event};
use timely::dataflow::operators::vec::Input;

const PANE: u64 = 10_000;

fn views() -> Views {
    // tumbling_10s and sliding_30s
    Views::standard(PANE, 30_000)
}

fn dims() -> Dimensions {
    Dimensions(["provider", "model", "tenant"].map(String::from).to_vec())
}

fn rules(text: &str) -> Rules {
    Rules::parse(text, &dims(), &views()).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> String {
    Rules::parse(text, &dims(), &views())
        .unwrap_err()
        .to_string()
}

fn fact(series: [&str; 3], start_ms: u64, latency_ms: u64) -> SpanFacts {
    SpanFacts {
        series: Series::new(series.map(String::from).to_vec()),
        start_ms,
        latency_us: latency_ms * 1_000,
        ttft_us: None,
        tpot_us: None,
        input_tokens: 100,
        output_tokens: 10,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        error: None,
        truncated: false,
        trace_id: Some(format!("trace-{start_ms}-{latency_ms}").into()),
        usage: None,
    }
}

fn failed(mut f: SpanFacts) -> SpanFacts {
    f.error = Some("timeout".to_owned());
    f
}

/// Runs windows → alerts on `workers` workers; worker 0 feeds `batches` (input time, facts) in
/// order. Returns every event with its time, sorted by (time, id).
fn run_on(
    workers: usize,
    rules: Rules,
    batches: Vec<(u64, Vec<SpanFacts>)>,
) -> Vec<(u64, AlertEvent)> {
    let batches = Arc::new(batches);
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let views = views();
        let rules = rules.clone();
        let (mut input, recv) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, facts) = scope.new_input::<SpanFacts>();
            let recv = alerts(windows(facts, &views), &rules).capture();
            (input, recv)
        });
        for (time, facts) in batches.iter() {
            input.advance_to(*time);
            if worker.index() == 0 {
                for f in facts {
                    input.send(f.clone());
                }
            }
            worker.step();
        }
        drop(input);
        while worker.step_or_park(None) {}
        let mut out = Vec::new();
        for event in recv.try_iter() {
            if let Event::Messages(stamp, data) = event {
                let time = *stamp.expect_singleton();
                out.extend(data.into_iter().map(|e| (time, e)));
            }
        }
        out
    })
    .expect("timely runs");
    let mut out: Vec<(u64, AlertEvent)> = guards
        .join()
        .into_iter()
        .flat_map(|r| r.expect("worker ok"))
        .collect();
    out.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    out
}

fn run(rules: Rules, batches: Vec<(u64, Vec<SpanFacts>)>) -> Vec<(u64, AlertEvent)> {
    run_on(1, rules, batches)
}

/// (time, kind, key, active_at, starts_at, ends_at) of every event.
type Brief = (u64, AlertKind, String, u64, Option<u64>, Option<u64>);

fn brief(out: &[(u64, AlertEvent)]) -> Vec<Brief> {
    out.iter()
        .map(|(t, e)| {
            (
                *t,
                e.kind,
                e.key.clone(),
                e.active_at_ms,
                e.starts_at_ms,
                e.ends_at_ms,
            )
        })
        .collect()
}

fn ms(latency_ms: u64) -> f64 {
    bucket_value_us(bucket_of(latency_ms * 1_000)) as f64 / 1_000.0
}

// ---------------------------------------------------------------------------------------------
// The rules file

const EXAMPLE: &str = r#"
[[rule]]
name = "slow-and-failing"
severity = "page"
by = ["provider", "model"]
filter = { tenant = "acme" }
view = "sliding_30s"
when = "p95(latency_ms) > 3000 and error_rate > 0.05"
for = "20s"
keep_firing_for = "50s"
min_requests = 20
[rule.annotations]
summary = "{{provider}}/{{model}} p95 {{p95(latency_ms)}} ms, errors {{ error_rate * 100 }}%"

[[rule]]
name = "traffic-drop"
view = "tumbling_10s"
when = 'rpm < 0.5 * rpm(offset="1d") and not p95(latency_ms, over="1h") > 2 * avg(ttft_ms)'
"#;

#[test]
fn the_issue_example_parses() {
    let r = rules(EXAMPLE);
    assert_eq!(r.rules.len(), 2);
    let a = &r.rules[0];
    assert_eq!(
        (a.name.as_str(), a.severity.as_str(), a.view_ms),
        ("slow-and-failing", "page", 30_000)
    );
    assert_eq!(
        (a.for_ms, a.keep_firing_for_ms, a.min_requests),
        (20_000, 50_000, 20)
    );
    assert_eq!(a.by, ["provider", "model"]);
    let terms: Vec<&str> = a.terms().iter().map(|t| t.text.as_str()).collect();
    assert_eq!(terms, ["p95(latency_ms)", "error_rate"]);
    assert_eq!(a.history_ms(), 30_000);
    let b = &r.rules[1];
    assert_eq!(b.severity, "warning");
    assert_eq!(b.min_requests, 1);
    let terms: Vec<&str> = b.terms().iter().map(|t| t.text.as_str()).collect();
    assert_eq!(
        terms,
        [
            "rpm",
            "rpm(offset=\"1d\")",
            "p95(latency_ms, over=\"1h\")",
            "avg(ttft_ms)"
        ]
    );
    assert_eq!(b.history_ms(), 86_400_000 + 10_000);
    assert_eq!(r.history_ms(), 86_400_000 + 10_000);
    // Grouping and filtering.
    let s = |t: &str| Series::new(vec!["openai".into(), "gpt-4o".into(), t.into()]);
    assert_eq!(
        a.group_of(&s("acme")),
        Some(Series::new(vec!["openai".into(), "gpt-4o".into()]))
    );
    assert_eq!(a.group_of(&s("other")), None);
    assert_eq!(b.group_of(&s("other")), Some(Series::default()));
}

fn one(when: &str) -> String {
    parse_err(&format!(
        "[[rule]]\nname = \"r\"\nview = \"tumbling_10s\"\nwhen = '{when}'\n"
    ))
}

#[test]
fn expression_errors_name_the_rule_and_the_position() {
    let cases = [
        (
            "p96(latency_ms) > 3",
            "rule #1 `r`: when: 1:1: unknown figure `p96` (known: requests, rpm, tpm, error_rate, truncation_rate, p50, p90, p95, p99, cost_usd, answers_scored, hallucination_rate, feedback, negative_feedback_rate, avg)",
        ),
        (
            "p95(latency_ms) > 3000 and error_rat > 0.05",
            "rule #1 `r`: when: 1:28: unknown figure `error_rat` (known: requests, rpm, tpm, error_rate, truncation_rate, p50, p90, p95, p99, cost_usd, answers_scored, hallucination_rate, feedback, negative_feedback_rate, avg)",
        ),
        (
            "p95 > 3",
            "rule #1 `r`: when: 1:1: `p95` needs a metric, e.g. p95(latency_ms)",
        ),
        (
            "p95(latency) > 3",
            "rule #1 `r`: when: 1:5: unknown metric `latency` for `p95` (known: latency_ms, ttft_ms, tpot_ms)",
        ),
        (
            "avg(faithfulness, latency_ms) > 0.5",
            "rule #1 `r`: when: 1:19: expected `over=\"…\"` or `offset=\"…\"`, found `latency_ms`",
        ),
        (
            "rpm(latency_ms) > 5",
            "rule #1 `r`: when: 1:5: `rpm` takes no metric, only over=\"…\" and offset=\"…\"",
        ),
        (
            "p95(latency_ms) and error_rate > 1",
            "rule #1 `r`: when: 1:1: `and` needs a condition, found a number",
        ),
        (
            "rpm + 1",
            "rule #1 `r`: when: 1:1: `when` needs a condition, found a number",
        ),
        (
            "(rpm > 1",
            "rule #1 `r`: when: 1:9: expected `)` to close the `(` at 1:1, found end of expression",
        ),
        ("rpm > 1)", "rule #1 `r`: when: 1:8: unmatched `)`"),
        (
            "1 < rpm < 3",
            "rule #1 `r`: when: 1:9: comparisons do not chain (the one at 1:3 is complete): combine them with `and`",
        ),
        (
            "rpm = 3",
            "rule #1 `r`: when: 1:5: unexpected `=`: compare with `==`",
        ),
        (
            "rpm > 3 && requests > 1",
            "rule #1 `r`: when: 1:9: unexpected `&`: use `and`, `or`, `not`",
        ),
        (
            "rpm(over=\"15s\") > 1",
            "rule #1 `r`: when: 1:10: over: 15s is not a multiple of the pane width 10s",
        ),
        (
            "rpm(offset=\"1y\") > 1",
            "rule #1 `r`: when: 1:12: offset: invalid duration `1y`: expected e.g. \"30s\", \"2m\", \"1h30m\"",
        ),
        (
            "rpm(over=1h) > 1",
            "rule #1 `r`: when: 1:10: invalid number `1h`: durations go in quotes, e.g. over=\"1h\"",
        ),
        (
            "rpm(window=\"1h\") > 1",
            "rule #1 `r`: when: 1:5: unknown argument `window` (known: over, offset)",
        ),
        (
            "rpm(over=\"1h\", over=\"2h\") > 1",
            "rule #1 `r`: when: 1:16: `over` given twice",
        ),
        (
            "rpm > ",
            "rule #1 `r`: when: 1:7: expected a figure, a number or `(`, found end of expression",
        ),
        ("", "rule #1 `r`: when: 1:1: empty expression"),
        (
            "rpm > \"3\"",
            "rule #1 `r`: when: 1:7: expected a figure, a number or `(`, found string \"3\"",
        ),
        (
            "not rpm",
            "rule #1 `r`: when: 1:5: `not` needs a condition, found a number",
        ),
        (
            "(rpm > 1) * 2 > 0",
            "rule #1 `r`: when: 1:1: `*` needs a number, found a condition",
        ),
    ];
    for (when, expected) in cases {
        assert_eq!(one(when), expected, "when = {when:?}");
    }
    // Lines count inside a multi-line `when`.
    let text = "[[rule]]\nname = \"r\"\nview = \"tumbling_10s\"\nwhen = '''\nrpm > 1\n  and p95(latency_ms) > x'''\n";
    assert_eq!(
        parse_err(text),
        "rule #1 `r`: when: 2:25: unknown figure `x` (known: requests, rpm, tpm, error_rate, truncation_rate, p50, p90, p95, p99, cost_usd, answers_scored, hallucination_rate, feedback, negative_feedback_rate, avg)"
    );
}

#[test]
fn field_errors_name_the_rule_and_the_field() {
    let ok = "[[rule]]\nname = \"ok\"\nview = \"tumbling_10s\"\nwhen = \"rpm > 1\"\n";
    let second = |body: &str| parse_err(&format!("{ok}\n[[rule]]\nname = \"bad\"\n{body}"));
    let cases = [
        (
            "view = \"sliding_5m\"\nwhen = \"rpm > 1\"",
            "rule #2 `bad`: view: unknown view `sliding_5m` (views: tumbling_10s, sliding_30s)",
        ),
        (
            "view = \"tumbling_10s\"\nwhen = \"rpm > 1\"\nby = [\"region\"]",
            "rule #2 `bad`: by: `region` is not a series dimension (dimensions: provider, model, tenant)",
        ),
        (
            "view = \"tumbling_10s\"\nwhen = \"rpm > 1\"\nfor = \"2 minutes\"",
            "rule #2 `bad`: for: invalid duration `2 minutes`: expected e.g. \"30s\", \"2m\", \"1h30m\"",
        ),
        (
            "view = \"tumbling_10s\"\nwhen = \"rpm > 1\"\nmin_requests = -1",
            "rule #2 `bad`: min_requests: must not be negative, is -1",
        ),
        (
            "view = \"tumbling_10s\"\nwhen = \"rpm > 1\"\n[rule.annotations]\nsummary = \"p95 {{p95(latency_ms)}} and {{ p95(latncy_ms) }}\"",
            "rule #2 `bad`: annotations.summary: 1:36: unknown metric `latncy_ms` for `p95` (known: latency_ms, ttft_ms, tpot_ms)",
        ),
        (
            "view = \"tumbling_10s\"\nwhen = \"rpm > 1\"\n[rule.annotations]\nsummary = \"{{provider\"",
            "rule #2 `bad`: annotations.summary: 1:1: `{{` without `}}`",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(second(body), expected, "{body}");
    }
    let regex =
        second("view = \"tumbling_10s\"\nwhen = \"rpm > 1\"\nfilter = { model = \"=~gpt-(\" }");
    assert!(
        regex.starts_with("rule #2 `bad`: filter.model: invalid regex `gpt-(`: regex parse error"),
        "{regex}"
    );
    let label = second(
        "view = \"tumbling_10s\"\nwhen = \"rpm > 1\"\nby = [\"model\"]\n[rule.annotations]\nsummary = \"{{model}} of {{ tenant}}\"",
    );
    assert_eq!(
        label,
        "rule #2 `bad`: annotations.summary: 1:17: `tenant` is not a `by` label of this rule: a group has one value only for those"
    );
    let dup = parse_err(&format!("{ok}\n{}", ok));
    assert_eq!(dup, "rule #2 `ok`: name: duplicate of rule #1");
    // Unknown keys and missing fields are TOML errors with the file position.
    let typo = parse_err("[[rule]]\nname = \"r\"\nview = \"tumbling_10s\"\nwhne = \"rpm > 1\"\n");
    assert!(
        typo.starts_with("rules file: TOML parse error at line 4, column 1"),
        "{typo}"
    );
    assert!(typo.contains("unknown field `whne`"), "{typo}");
    let missing = parse_err("[[rule]]\nname = \"r\"\nview = \"tumbling_10s\"\n");
    assert!(missing.contains("missing field `when`"), "{missing}");
    let unknown = parse_err(
        "[[rule]]\nname = \"r\"\nview = \"tumbling_10s\"\nwhen = \"rpm > 1\"\nsevrity = \"page\"\n",
    );
    assert!(
        unknown.contains("line 5, column 1") && unknown.contains("unknown field `sevrity`"),
        "{unknown}"
    );
    // Views without a pane-width view cannot feed the alerts.
    let no_panes = Views {
        pane_ms: 10_000,
        views: vec![glassbox_operators::View {
            name: "s".into(),
            length_ms: 30_000,
        }],
    };
    assert!(matches!(
        Rules::parse(ok, &dims(), &no_panes),
        Err(RuleError::Toml(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Scripted inputs

/// One span per pane end in `panes` (pane end → latency ms), for series `s`, each pane's input
/// batch at its start.
fn per_pane(s: [&str; 3], panes: &[(u64, u64)]) -> Vec<(u64, Vec<SpanFacts>)> {
    panes
        .iter()
        .map(|(end, latency)| (end - PANE, vec![fact(s, end - PANE + 1_000, *latency)]))
        .collect()
}

#[test]
fn for_and_keep_firing_for_make_exact_transitions() {
    let r = rules(
        r#"
[[rule]]
name = "slow"
severity = "page"
by = ["provider"]
view = "tumbling_10s"
when = "p95(latency_ms) > 1000"
for = "20s"
keep_firing_for = "20s"
[rule.annotations]
summary = "{{provider}} p95 {{p95(latency_ms)}} ms over {{requests}} requests"
"#,
    );
    let a = ["a", "m", "t"];
    // Slow in the panes ending 10..40 s, fast at 50 s, then no data at all.
    let out = run(
        r,
        per_pane(
            a,
            &[
                (10_000, 2_000),
                (20_000, 2_000),
                (30_000, 2_000),
                (40_000, 2_000),
                (50_000, 100),
            ],
        ),
    );
    let key = "slow{provider=\"a\"}".to_owned();
    assert_eq!(
        brief(&out),
        vec![
            (10_000, AlertKind::Pending, key.clone(), 10_000, None, None),
            // 30 − 10 ≥ for
            (
                30_000,
                AlertKind::Firing,
                key.clone(),
                10_000,
                Some(30_000),
                None
            ),
            // false since 50 s (fast), still false at 60 s without data, 70 − 50 ≥ keep_firing_for
            (
                70_000,
                AlertKind::Resolved,
                key.clone(),
                10_000,
                Some(30_000),
                Some(70_000)
            ),
        ]
    );
    let (_, firing) = &out[1];
    assert_eq!(firing.id, "slow{provider=\"a\"}@10000/firing");
    assert_eq!(firing.severity, "page");
    assert_eq!(
        firing.labels,
        BTreeMap::from([("provider".to_owned(), "a".to_owned())])
    );
    assert_eq!(
        (
            firing.window.view.as_str(),
            firing.window.start_ms,
            firing.window.end_ms
        ),
        ("tumbling_10s", 20_000, 30_000)
    );
    assert_eq!(firing.requests, 1);
    assert_eq!(firing.terms.len(), 1);
    assert_eq!(
        (firing.terms[0].term.as_str(), firing.terms[0].value),
        ("p95(latency_ms)", Some(ms(2_000)))
    );
    let p95 = ms(2_000);
    assert_eq!(
        firing.annotations["summary"],
        format!(
            "a p95 {} ms over 1 requests",
            glassbox_operators::alerts::rules::format_value(Some(p95))
        )
    );
    assert_eq!(
        firing.exemplars,
        vec![Exemplar {
            kind: ExemplarKind::Slowest,
            latency_us: 2_000_000,
            trace_id: "trace-21000-2000".into()
        }]
    );
    // As the pipeline will write it.
    let json = serde_json::to_value(firing).unwrap();
    assert_eq!(json["kind"], "firing");
    assert_eq!(json["starts_at_ms"], 30_000);
    assert_eq!(json["ends_at_ms"], serde_json::Value::Null);
    assert_eq!(json["labels"], serde_json::json!({"provider": "a"}));
    assert_eq!(json["exemplars"][0]["kind"], "slowest");
    assert_eq!(json["exemplars"][0]["trace_id"], "trace-21000-2000");
    assert_eq!(json["terms"][0]["term"], "p95(latency_ms)");
    // The resolving evaluation saw no data: no requests, no value.
    let (_, resolved) = &out[2];
    assert_eq!((resolved.requests, resolved.terms[0].value), (0, None));
    assert_eq!(
        resolved.annotations["summary"],
        "a p95 n/a ms over 0 requests"
    );
}

#[test]
fn flapping_input_never_fires_with_for_and_stays_firing_with_keep_firing_for() {
    let a = ["a", "m", "t"];
    // Slow, fast, slow, fast, fast, fast.
    let panes = [
        (10_000, 2_000),
        (20_000, 100),
        (30_000, 2_000),
        (40_000, 100),
        (50_000, 100),
        (60_000, 100),
    ];
    let pending = rules(
        "[[rule]]\nname = \"p\"\nview = \"tumbling_10s\"\nwhen = \"p50(latency_ms) > 1000\"\nfor = \"10s\"\n",
    );
    let key = "p{}".to_owned();
    assert_eq!(
        brief(&run(pending, per_pane(a, &panes))),
        vec![
            (10_000, AlertKind::Pending, key.clone(), 10_000, None, None),
            (
                20_000,
                AlertKind::Cancelled,
                key.clone(),
                10_000,
                None,
                Some(20_000)
            ),
            (30_000, AlertKind::Pending, key.clone(), 30_000, None, None),
            (
                40_000,
                AlertKind::Cancelled,
                key.clone(),
                30_000,
                None,
                Some(40_000)
            ),
        ]
    );
    let keep = rules(
        "[[rule]]\nname = \"k\"\nview = \"tumbling_10s\"\nwhen = \"p50(latency_ms) > 1000\"\nkeep_firing_for = \"20s\"\n",
    );
    let key = "k{}".to_owned();
    assert_eq!(
        brief(&run(keep, per_pane(a, &panes))),
        vec![
            // for = 0: fires at once
            (
                10_000,
                AlertKind::Firing,
                key.clone(),
                10_000,
                Some(10_000),
                None
            ),
            // false at 20, true again at 30 (reset), false from 40: resolved at 60
            (
                60_000,
                AlertKind::Resolved,
                key.clone(),
                10_000,
                Some(10_000),
                Some(60_000)
            ),
        ]
    );
}

#[test]
fn min_requests_keeps_small_windows_false() {
    let a = ["a", "m", "t"];
    let at = |end: u64, n: usize, errors: usize| {
        let spans = (0..n)
            .map(|i| {
                let f = fact(a, end - PANE + i as u64, 100);
                if i < errors { failed(f) } else { f }
            })
            .collect();
        (end - PANE, spans)
    };
    let r = rules(
        "[[rule]]\nname = \"e\"\nview = \"tumbling_10s\"\nwhen = \"error_rate > 0.5\"\nmin_requests = 3\n",
    );
    // 2/2 errors (too few requests), 3/3 errors, 1/3 errors.
    let out = run(
        r,
        vec![at(10_000, 2, 2), at(20_000, 3, 3), at(30_000, 3, 1)],
    );
    assert_eq!(
        brief(&out),
        vec![
            (
                20_000,
                AlertKind::Firing,
                "e{}".to_owned(),
                20_000,
                Some(20_000),
                None
            ),
            (
                30_000,
                AlertKind::Resolved,
                "e{}".to_owned(),
                20_000,
                Some(20_000),
                Some(30_000)
            ),
        ]
    );
    assert_eq!(out[0].1.terms[0].value, Some(1.0));
    assert_eq!(out[1].1.terms[0].value, Some(1.0 / 3.0));
    // The errored exemplars are the slowest errored spans (ties broken by trace id).
    let errored: Vec<&str> = out[0]
        .1
        .exemplars
        .iter()
        .filter(|e| e.kind == ExemplarKind::Errored)
        .map(|e| &*e.trace_id)
        .collect();
    assert_eq!(
        errored,
        ["trace-10000-100", "trace-10001-100", "trace-10002-100"]
    );
}

#[test]
fn groups_merge_series_buckets_and_filters_select_series() {
    // by provider, tenant acme only: the two acme models merge, the other tenant is ignored.
    let r = rules(
        r#"
[[rule]]
name = "slow"
by = ["provider"]
filter = { tenant = "acme", model = "!~.*-mini" }
view = "sliding_30s"
when = "p95(latency_ms) > 3000"
"#,
    );
    let mut spans = Vec::new();
    for i in 0..10 {
        spans.push(fact(["a", "m1", "acme"], 1_000 + i, 100));
        spans.push(fact(["a", "m2", "acme"], 1_000 + i, 5_000));
        spans.push(fact(["a", "m1-mini", "acme"], 1_000 + i, 9_000));
        spans.push(fact(["a", "m1", "other"], 1_000 + i, 9_000));
        spans.push(fact(["b", "m1", "other"], 1_000 + i, 9_000));
    }
    let out = run(r, vec![(0, spans)]);
    // 20 merged spans: rank floor(0.95 · 19) = 18 is a 5 s span. (Averaging the two series' p95
    // would give 2.55 s and no alert.) The sliding window [−20, 10) is the first to see them;
    // [20, 50) is the first without them.
    assert_eq!(
        brief(&out),
        vec![
            (
                10_000,
                AlertKind::Firing,
                "slow{provider=\"a\"}".to_owned(),
                10_000,
                Some(10_000),
                None
            ),
            (
                40_000,
                AlertKind::Resolved,
                "slow{provider=\"a\"}".to_owned(),
                10_000,
                Some(10_000),
                Some(40_000)
            ),
        ]
    );
    let e = &out[0].1;
    assert_eq!((e.requests, e.terms[0].value), (20, Some(ms(5_000))));
    assert_eq!((e.window.start_ms, e.window.end_ms), (0, 10_000));
    // Exemplars over the merged group: the three slowest of its 20 spans.
    let slowest: Vec<&str> = e.exemplars.iter().map(|x| &*x.trace_id).collect();
    assert_eq!(
        slowest,
        ["trace-1000-5000", "trace-1001-5000", "trace-1002-5000"]
    );
}

#[test]
fn baselines_read_longer_and_earlier_windows() {
    let a = ["a", "m", "t"];
    let burst = |end: u64, n: u64, latency: u64| {
        (
            end - PANE,
            (0..n)
                .map(|i| fact(a, end - PANE + i, latency))
                .collect::<Vec<_>>(),
        )
    };
    // 2 requests per pane for 4 panes, then 10 in the fifth, then 2 again.
    let batches = vec![
        burst(10_000, 2, 100),
        burst(20_000, 2, 100),
        burst(30_000, 2, 100),
        burst(40_000, 2, 100),
        burst(50_000, 10, 400),
        burst(60_000, 2, 100),
    ];
    let r = rules(
        r#"
[[rule]]
name = "spike"
view = "tumbling_10s"
when = "rpm(offset='20s') > 0 and rpm > 2 * rpm(offset='20s')"

[[rule]]
name = "slower"
view = "tumbling_10s"
when = "p50(latency_ms) > 2 * p50(latency_ms, over='40s', offset='10s')"
"#,
    );
    let out = run(r, batches);
    assert_eq!(
        brief(&out),
        vec![
            // spike: 60 rpm now against 12 rpm in [20, 30); at 60 s 12 against 12.
            (
                50_000,
                AlertKind::Firing,
                "slower{}".to_owned(),
                50_000,
                Some(50_000),
                None
            ),
            (
                50_000,
                AlertKind::Firing,
                "spike{}".to_owned(),
                50_000,
                Some(50_000),
                None
            ),
            (
                60_000,
                AlertKind::Resolved,
                "slower{}".to_owned(),
                50_000,
                Some(50_000),
                Some(60_000)
            ),
            (
                60_000,
                AlertKind::Resolved,
                "spike{}".to_owned(),
                50_000,
                Some(50_000),
                Some(60_000)
            ),
        ]
    );
    let spike = &out[1].1;
    let values: Vec<(&str, Option<f64>)> = spike
        .terms
        .iter()
        .map(|t| (t.term.as_str(), t.value))
        .collect();
    assert_eq!(
        values,
        [("rpm(offset=\"20s\")", Some(12.0)), ("rpm", Some(60.0))]
    );
    // slower: 400 ms now against the 40 s before this pane, [10, 40)… i.e. [0, 40) at 50 s, all
    // 100 ms; at 60 s, 100 ms against a baseline [10, 50) whose median is 400 ms.
    let slower = &out[0].1;
    let values: Vec<(&str, Option<f64>)> = slower
        .terms
        .iter()
        .map(|t| (t.term.as_str(), t.value))
        .collect();
    assert_eq!(
        values,
        [
            ("p50(latency_ms)", Some(ms(400))),
            (
                "p50(latency_ms, over=\"40s\", offset=\"10s\")",
                Some(ms(100))
            )
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The oracle

/// A group's metrics over `[start, end)`, from the raw spans.
fn metrics_of(spans: &[&SpanFacts], start: u64, end: u64) -> WindowMetrics {
    let mut m = WindowMetrics::default();
    let mut errors: BTreeMap<String, i64> = BTreeMap::new();
    let mut buckets: [BTreeMap<i32, i64>; 3] = Default::default();
    for f in spans
        .iter()
        .filter(|f| f.start_ms >= start && f.start_ms < end)
    {
        m.totals += Figures {
            n: 1,
            requests: 1,
            errors: i64::from(f.error.is_some()),
            truncations: i64::from(f.truncated),
            input_tokens: f.input_tokens as i64,
            output_tokens: f.output_tokens as i64,
            latency_sum_us: f.latency_us as i64,
            ttft_n: i64::from(f.ttft_us.is_some()),
            ttft_sum_us: f.ttft_us.unwrap_or(0) as i64,
            tpot_n: i64::from(f.tpot_us.is_some()),
            tpot_sum_us: f.tpot_us.unwrap_or(0) as i64,
            ..Figures::default()
        };
        if let Some(e) = &f.error {
            *errors.entry(e.clone()).or_default() += 1;
        }
        *buckets[Metric::Latency as usize]
            .entry(bucket_of(f.latency_us))
            .or_default() += 1;
        for (metric, v) in [(Metric::Ttft, f.ttft_us), (Metric::Tpot, f.tpot_us)] {
            if let Some(v) = v {
                *buckets[metric as usize].entry(bucket_of(v)).or_default() += 1;
            }
        }
    }
    m.errors_by_type = errors.into_iter().collect();
    let sum = |metric: Metric| summarize(buckets[metric as usize].iter().map(|(b, n)| (*b, *n)));
    m.latency = sum(Metric::Latency);
    m.ttft = sum(Metric::Ttft);
    m.tpot = sum(Metric::Tpot);
    m
}

fn exemplars_of(spans: &[&SpanFacts], start: u64, end: u64) -> Vec<Exemplar> {
    let mut out = Vec::new();
    for (kind, errored_only) in [
        (ExemplarKind::Slowest, false),
        (ExemplarKind::Errored, true),
    ] {
        let mut candidates: Vec<(std::cmp::Reverse<u64>, Arc<str>)> = spans
            .iter()
            .filter(|f| {
                f.start_ms >= start && f.start_ms < end && (!errored_only || f.error.is_some())
            })
            .filter_map(|f| {
                f.trace_id
                    .clone()
                    .map(|t| (std::cmp::Reverse(f.latency_us), t))
            })
            .collect();
        candidates.sort();
        candidates.dedup();
        out.extend(candidates.into_iter().take(3).map(|(l, t)| Exemplar {
            kind,
            latency_us: l.0,
            trace_id: t,
        }));
    }
    out
}

/// Every alert event, recomputed from scratch: each group evaluated at every pane end.
fn batch_alerts(rules: &Rules, facts: &[SpanFacts], until_ms: u64) -> Vec<(u64, AlertEvent)> {
    let mut out = Vec::new();
    for rule in &rules.rules {
        let mut groups: BTreeMap<Series, Vec<&SpanFacts>> = BTreeMap::new();
        for f in facts {
            if let Some(g) = rule.group_of(&f.series) {
                groups.entry(g).or_default().push(f);
            }
        }
        for (group, spans) in &groups {
            let mut state: Option<(u64, Option<u64>, Option<u64>)> = None; // (active_at, starts_at, false_since)
            for at in (PANE..=until_ms).step_by(PANE as usize) {
                let windows: BTreeMap<_, _> = rule
                    .frames()
                    .iter()
                    .map(|&f| {
                        let (start, end) = if at >= f.offset_ms {
                            (
                                at.saturating_sub(f.offset_ms + f.length_ms),
                                at - f.offset_ms,
                            )
                        } else {
                            (0, 0)
                        };
                        (f, metrics_of(spans, start, end))
                    })
                    .collect();
                let evaluation = rule.evaluate(|f| &windows[&f]);
                let transition = oracle_step(rule, &mut state, at, evaluation.holds);
                if let Some(t) = transition {
                    let start = at.saturating_sub(rule.view_ms);
                    out.push((
                        at,
                        alert_event(
                            rule,
                            group,
                            at,
                            t,
                            &evaluation,
                            exemplars_of(spans, start, at),
                        ),
                    ));
                }
            }
            assert!(
                state.is_none(),
                "the horizon is long enough for every alert to end"
            );
        }
    }
    out.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    out
}

/// Prometheus' lifecycle, written out again: `state` is (active_at, starts_at, false_since).
fn oracle_step(
    rule: &Rule,
    state: &mut Option<(u64, Option<u64>, Option<u64>)>,
    at: u64,
    holds: bool,
) -> Option<Transition> {
    let tr = |kind, active_at, starts_at, ends_at| {
        Some(Transition {
            kind,
            active_at,
            starts_at,
            ends_at,
        })
    };
    match *state {
        None if holds && rule.for_ms == 0 => {
            *state = Some((at, Some(at), None));
            tr(AlertKind::Firing, at, Some(at), None)
        }
        None if holds => {
            *state = Some((at, None, None));
            tr(AlertKind::Pending, at, None, None)
        }
        None => None,
        Some((active, None, _)) if !holds => {
            *state = None;
            tr(AlertKind::Cancelled, active, None, Some(at))
        }
        Some((active, None, _)) if at - active >= rule.for_ms => {
            *state = Some((active, Some(at), None));
            tr(AlertKind::Firing, active, Some(at), None)
        }
        Some((_, None, _)) => None,
        Some((active, Some(start), _)) if holds => {
            *state = Some((active, Some(start), None));
            None
        }
        Some((active, Some(start), since)) => {
            let since = since.unwrap_or(at);
            if at - since >= rule.keep_firing_for_ms {
                *state = None;
                tr(AlertKind::Resolved, active, Some(start), Some(at))
            } else {
                *state = Some((active, Some(start), Some(since)));
                None
            }
        }
    }
}

fn random_rules(rng: &mut StdRng) -> String {
    let conditions = [
        "p95(latency_ms) > {lat}",
        "error_rate > {rate} and requests >= 3",
        "p50(latency_ms) > 1.5 * p50(latency_ms, over='40s')",
        "rpm(offset='20s') > 0 and rpm > 1.3 * rpm(offset='20s')",
        "not (avg(latency_ms) < {lat}) or truncation_rate > 0.2",
        "(p99(ttft_ms) - p50(ttft_ms)) / 2 > {half}",
        "tpm > {tpm} and not error_rate == 0",
        "p90(tpot_ms, offset='10s') < p90(tpot_ms) or rpm(over='60s') > {rpm}",
    ];
    let bys = [
        "[]",
        "[\"provider\"]",
        "[\"provider\", \"model\"]",
        "[\"tenant\"]",
        "[\"provider\", \"model\", \"tenant\"]",
    ];
    let filters = [
        "",
        "filter = { tenant = \"t1\" }",
        "filter = { model = \"!=m2\" }",
        "filter = { provider = \"=~a|b\", tenant = \"!~t2\" }",
    ];
    let durations = ["0s", "10s", "15s", "20s", "30s"];
    let mut text = String::new();
    for i in 0..rng.random_range(3..7) {
        let when = conditions[rng.random_range(0..conditions.len())]
            .replace("{lat}", &rng.random_range(200..3_000).to_string())
            .replace("{rate}", &format!("{:.2}", rng.random_range(0.05..0.5)))
            .replace("{half}", &rng.random_range(10..500).to_string())
            .replace("{tpm}", &rng.random_range(500..20_000).to_string())
            .replace("{rpm}", &rng.random_range(5..60).to_string());
        text += &format!(
            "[[rule]]\nname = \"r{i}\"\nby = {}\n{}\nview = \"{}\"\nwhen = \"{when}\"\nfor = \"{}\"\nkeep_firing_for = \"{}\"\nmin_requests = {}\n[rule.annotations]\ns = \"{{{{p95(latency_ms)}}}} {{{{requests * 2}}}}\"\n\n",
            bys[rng.random_range(0..bys.len())],
            filters[rng.random_range(0..filters.len())],
            ["tumbling_10s", "sliding_30s"][rng.random_range(0..2)],
            durations[rng.random_range(0..durations.len())],
            durations[rng.random_range(0..durations.len())],
            rng.random_range(0..6),
        );
    }
    text
}

fn random_spans(rng: &mut StdRng, n: usize, span_ms: u64) -> Vec<SpanFacts> {
    // Per (provider, pane) a regime: healthy or degraded, so that conditions flap.
    let panes = span_ms / PANE;
    let degraded: Vec<Vec<bool>> = (0..2)
        .map(|_| (0..panes).map(|_| rng.random_bool(0.35)).collect())
        .collect();
    (0..n)
        .map(|i| {
            let start = rng.random_range(0..span_ms);
            let p = rng.random_range(0..2);
            let bad = degraded[p][(start / PANE) as usize];
            let series = [
                ["a", "b"][p],
                ["m1", "m2"][rng.random_range(0..2)],
                ["t1", "t2"][rng.random_range(0..2)],
            ];
            let latency = if rng.random_bool(0.2) {
                500
            } else if bad {
                rng.random_range(500..6_000)
            } else {
                rng.random_range(20..1_500)
            };
            let mut f = fact(series, start, latency);
            f.latency_us += rng.random_range(0..1_000);
            f.input_tokens = rng.random_range(0..3_000);
            f.output_tokens = rng.random_range(0..600);
            f.ttft_us = rng
                .random_bool(0.7)
                .then(|| rng.random_range(0..f.latency_us + 1));
            f.tpot_us = f
                .ttft_us
                .filter(|_| f.output_tokens > 1)
                .map(|t| (f.latency_us - t) / (f.output_tokens - 1));
            f.error = rng
                .random_bool(if bad { 0.4 } else { 0.05 })
                .then(|| "timeout".to_owned());
            f.truncated = rng.random_bool(0.1);
            // Some spans without trace id, some sharing one.
            f.trace_id = match rng.random_range(0..10) {
                0 => None,
                1 => Some("shared".into()),
                _ => Some(format!("t{i}").into()),
            };
            f
        })
        .collect()
}

/// Batches in bounded disorder, input time trailing the largest start by `lateness`, keeping
/// only spans whose pane is still open (the source's contract).
fn batches_of(
    rng: &mut StdRng,
    mut facts: Vec<SpanFacts>,
    lateness: u64,
) -> Vec<(u64, Vec<SpanFacts>)> {
    facts.sort_by_cached_key(|f| f.start_ms + rng.random_range(0..lateness));
    let mut batches: Vec<(u64, Vec<SpanFacts>)> = Vec::new();
    let mut max_seen = 0u64;
    let mut rest = facts.as_slice();
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rng.random_range(1..60).min(rest.len()));
        rest = tail;
        let time = max_seen.saturating_sub(lateness);
        let time = batches.last().map_or(time, |(t, _)| time.max(*t));
        let chunk: Vec<SpanFacts> = chunk
            .iter()
            .filter(|f| (f.start_ms / PANE + 1) * PANE >= time)
            .cloned()
            .collect();
        max_seen = chunk
            .iter()
            .map(|f| f.start_ms)
            .max()
            .unwrap_or(0)
            .max(max_seen);
        batches.push((time, chunk));
    }
    batches
}

fn oracle(seed: u64, workers: usize) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let text = random_rules(&mut rng);
    let rules = rules(&text);
    let span_ms = 200_000;
    let facts = random_spans(&mut rng, 1_500, span_ms);
    let batches = batches_of(&mut rng, facts, 4_000);
    let admitted: Vec<SpanFacts> = batches.iter().flat_map(|(_, c)| c.clone()).collect();
    // Long enough for every alert to resolve: history + for + keep_firing_for after the data.
    let until = span_ms + 200_000;
    let expected = batch_alerts(&rules, &admitted, until);
    let got = run_on(workers, rules, batches);
    if let Some(i) = (0..expected.len().max(got.len())).find(|i| expected.get(*i) != got.get(*i)) {
        panic!(
            "seed {seed}, {workers} worker(s): event {i} differs\nrules:\n{text}\nexpected: {:#?}\ngot: {:#?}",
            expected.get(i),
            got.get(i)
        );
    }
    got.iter()
        .filter(|(_, e)| e.kind == AlertKind::Firing)
        .count()
}

#[test]
fn oracle_random_spans_and_rules_match_a_batch_evaluator_exactly() {
    let firing: usize = (0..8).map(|seed| oracle(seed, 1)).sum();
    // Not vacuous: the random rules do fire.
    assert!(firing > 20, "only {firing} firing events");
}

#[test]
fn oracle_holds_on_several_workers() {
    for seed in 100..103 {
        oracle(seed, 3);
    }
}

#[test]
fn the_same_spans_batched_differently_yield_the_same_events() {
    let mut rng = StdRng::seed_from_u64(7);
    let rules = rules(&random_rules(&mut rng));
    let mut facts = random_spans(&mut rng, 800, 100_000);
    // All at once, before any pane closes.
    let at_once = run(rules.clone(), vec![(0, facts.clone())]);
    // In start order, in random chunks, each at the start of its first span's pane: every span
    // is still admitted, but the frontier now moves through the data.
    facts.sort_by_key(|f| f.start_ms);
    let mut batches = Vec::new();
    let mut rest = facts.as_slice();
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rng.random_range(1..40).min(rest.len()));
        rest = tail;
        batches.push((chunk[0].start_ms / PANE * PANE, chunk.to_vec()));
    }
    let streamed = run_on(2, rules, batches);
    assert!(at_once.iter().any(|(_, e)| e.kind == AlertKind::Firing));
    assert_eq!(at_once, streamed);
    let ids: std::collections::BTreeSet<&str> =
        at_once.iter().map(|(_, e)| e.id.as_str()).collect();
    assert_eq!(ids.len(), at_once.len(), "ids are unique");
}

#[test]
fn a_replay_from_a_later_point_re_derives_the_same_events_once_warmed_up() {
    let mut compared = 0;
    for seed in 200..204u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let rules = rules(&random_rules(&mut rng));
        let facts = random_spans(&mut rng, 1_500, 200_000);
        let original = run(rules.clone(), vec![(0, facts.clone())]);
        // A crash: the replay restarts from the pane starting at `p`, without any state.
        let p = 60_000;
        let replayed: Vec<SpanFacts> = facts.iter().filter(|f| f.start_ms >= p).cloned().collect();
        let replay = run(rules.clone(), vec![(p, replayed)]);
        let by_key = |out: &[(u64, AlertEvent)]| {
            let mut m: BTreeMap<String, Vec<(u64, AlertEvent)>> = BTreeMap::new();
            for (t, e) in out {
                m.entry(e.key.clone()).or_default().push((*t, e.clone()));
            }
            m
        };
        let (a, b) = (by_key(&original), by_key(&replay));
        let inactive_before = |events: &[(u64, AlertEvent)], at: u64| {
            events
                .iter()
                .rfind(|(t, _)| *t < at)
                .is_none_or(|(_, e)| matches!(e.kind, AlertKind::Cancelled | AlertKind::Resolved))
        };
        let none = Vec::new();
        for key in a.keys().chain(b.keys()) {
            let (ea, eb) = (a.get(key).unwrap_or(&none), b.get(key).unwrap_or(&none));
            // The first pane end with complete windows at which both runs are inactive.
            let warm = (p + rules.history_ms()).div_ceil(PANE) * PANE;
            let Some(from) = (warm..400_000)
                .step_by(PANE as usize)
                .find(|at| inactive_before(ea, *at) && inactive_before(eb, *at))
            else {
                continue;
            };
            let after = |e: &[(u64, AlertEvent)]| {
                e.iter()
                    .filter(|(t, _)| *t >= from)
                    .cloned()
                    .collect::<Vec<_>>()
            };
            assert_eq!(after(ea), after(eb), "seed {seed} {key} from {from}");
            compared += after(ea).len();
        }
    }
    assert!(compared > 20, "only {compared} events compared");
}

#[test]
fn quality_figures_read_the_quality_parts() {
    let r = rules(
        "[[rule]]\nname = \"unfaithful\"\nview = \"tumbling_10s\"\nmin_requests = 1\n\
         when = \"avg(faithfulness) < 0.6 and hallucination_rate > 0.2 and negative_feedback_rate >= 0.5\"\n",
    );
    assert!(r.uses_quality());
    assert!(
        !rules("[[rule]]\nname = \"r\"\nview = \"tumbling_10s\"\nwhen = \"error_rate > 0.1\"\n")
            .uses_quality()
    );
    let rule = &r.rules[0];
    let mut m = WindowMetrics::default();
    m.totals.requests = 10;
    // 10 answers, faithfulness summing to 5.0 (mean 0.5), 3 flagged; 4 feedback, 2 negative.
    m.quality = [10, 5_000_000, 3, 4, 2, 4, 2_000_000];
    let e = rule.evaluate(|_| &m);
    assert!(e.holds, "{:?}", e.terms);
    let values: Vec<Option<f64>> = e.terms.iter().map(|(_, v)| *v).collect();
    assert_eq!(values, vec![Some(0.5), Some(0.3), Some(0.5)]);
    assert_eq!(e.terms[0].0, "avg(faithfulness)");
    m.quality[2] = 1;
    assert!(!rule.evaluate(|_| &m).holds);
    // No scored answer: the figures have no value, and the condition is false.
    m.quality = [0; 7];
    let e = rule.evaluate(|_| &m);
    assert!(!e.holds);
    assert_eq!(e.terms[0].1, None);
}
