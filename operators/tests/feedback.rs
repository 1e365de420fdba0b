//! Dataflow tests of the feedback join: exact facts and counters for carried series, joins by
//! trace id in and out of order, the horizon, the wait, unmatched feedback and released state;
//! and an oracle over random traces on two workers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use glassbox_operators::quality::feedback::{
    FeedbackConfig, FeedbackCounters, FeedbackFact, FeedbackFigures, FeedbackInput, feedback_join,
};
use glassbox_operators::{Dimensions, Series};
use glassbox_schemas::{Span, SpanKind};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use timely::dataflow::operators::capture::{Capture, Event};
use timely::dataflow::operators::vec::Input;

/// (time, series, event ms, score, negative), sortable.
type Out = (u64, String, u64, Option<u64>, bool);

fn flat(time: u64, f: FeedbackFact) -> Out {
    (
        time,
        f.series.values().join("/"),
        f.event_ms,
        f.score.map(|s| (s * 100.0).round() as u64),
        f.negative,
    )
}

/// Feeds `batches` (input time, records) in order on one worker; returns every output, sorted,
/// and the counters after each batch and after the input closed.
fn run(
    config: FeedbackConfig,
    batches: Vec<(u64, Vec<FeedbackInput>)>,
) -> (Vec<Out>, Vec<BTreeMap<&'static str, u64>>) {
    let counters = Arc::new(FeedbackCounters::default());
    let shared = counters.clone();
    timely::execute_directly(move |worker| {
        let (mut input, recv) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, records) = scope.new_input::<FeedbackInput>();
            (input, feedback_join(records, &config, shared).capture())
        });
        let mut steps = Vec::new();
        for (time, records) in batches {
            input.advance_to(time);
            for r in records {
                input.send(r);
            }
            input.advance_to(time + 1);
            for _ in 0..4 {
                worker.step();
            }
            steps.push(counters.snapshot());
        }
        drop(input);
        while worker.step_or_park(None) {}
        steps.push(counters.snapshot());
        let mut out = Vec::new();
        for event in recv.try_iter() {
            if let Event::Messages(stamp, data) = event {
                let time = *stamp.least().expect("a stamped message");
                out.extend(data.into_iter().map(|f| flat(time, f)));
            }
        }
        out.sort();
        (out, steps)
    })
}

fn series(name: &str) -> Series {
    Series::new(vec![name.to_owned()])
}

fn generation(trace: &str, span: &str, start_ms: u64, s: &str) -> FeedbackInput {
    FeedbackInput::Generation {
        trace_id: trace.to_owned(),
        span_id: span.to_owned(),
        start_ms,
        series: series(s),
    }
}

fn feedback(trace: &str, event_ms: u64, score: Option<f64>, label: Option<&str>) -> FeedbackInput {
    FeedbackInput::Feedback {
        trace_id: trace.to_owned(),
        parent_span_id: None,
        event_ms,
        series: None,
        score,
        label: label.map(str::to_owned),
    }
}

fn config(horizon_ms: u64, wait_ms: u64) -> FeedbackConfig {
    FeedbackConfig {
        horizon_ms,
        wait_ms,
        ..FeedbackConfig::default()
    }
}

fn out(time: u64, s: &str, event_ms: u64, score: Option<u64>, negative: bool) -> Out {
    (time, s.to_owned(), event_ms, score, negative)
}

#[test]
fn negative_is_a_low_score_or_a_negative_label() {
    let c = FeedbackConfig::default();
    assert!(c.is_negative(Some(0.49), None));
    assert!(!c.is_negative(Some(0.5), None));
    assert!(c.is_negative(None, Some("Thumbs_Down")));
    assert!(c.is_negative(Some(0.9), Some("bad")));
    assert!(!c.is_negative(Some(0.9), Some("thumbs_up")));
    assert!(!c.is_negative(None, None));
    assert!(c.validate().is_ok());
    assert_eq!(
        config(1_000, 2_000).validate().unwrap_err().to_string(),
        "feedback wait_ms (2000) must not exceed horizon_ms (1000)"
    );
    let bad = FeedbackConfig {
        negative_below: 1.5,
        ..FeedbackConfig::default()
    };
    assert!(bad.validate().is_err());
}

#[test]
fn figures_add_up_exactly() {
    let fact = |score: Option<f64>, negative: bool| FeedbackFact {
        series: series("s"),
        event_ms: 0,
        score,
        negative,
    };
    let mut window = FeedbackFigures::default();
    assert_eq!((window.negative_rate(), window.mean_score()), (None, None));
    for f in [
        fact(Some(0.1), true),
        fact(Some(0.85), false),
        fact(None, true),
        fact(Some(0.2), true),
    ] {
        window += f.figures();
    }
    assert_eq!(
        window,
        FeedbackFigures {
            count: 4,
            negative: 3,
            scored: 3,
            score_sum_ppm: 1_150_000
        }
    );
    assert_eq!(window.negative_rate(), Some(0.75));
    assert!((window.mean_score().unwrap() - 1.15 / 3.0).abs() < 1e-12);
}

#[test]
fn from_span_takes_the_series_only_when_the_record_carries_it() {
    let dims = Dimensions(vec!["model".into(), "tenant".into(), "kind".into()]);
    let base = Span {
        trace_id: "ab".into(),
        span_id: "cd".into(),
        start_unix_nano: 5_000_000_000,
        end_unix_nano: 5_000_000_000,
        ..Span::default()
    };
    let llm = Span {
        kind: SpanKind::Llm,
        request_model: Some("gpt-4o".into()),
        tenant: Some("acme".into()),
        ..base.clone()
    };
    assert_eq!(
        FeedbackInput::from_span(&llm, &dims),
        Some(FeedbackInput::Generation {
            trace_id: "ab".into(),
            span_id: "cd".into(),
            start_ms: 5_000,
            series: Series::new(vec!["gpt-4o".into(), "acme".into(), "llm".into()]),
        })
    );
    let carried = Span {
        kind: SpanKind::Feedback,
        parent_span_id: Some("cd".into()),
        request_model: Some("gpt-4o".into()),
        tenant: Some("acme".into()),
        feedback_score: Some(0.25),
        ..base.clone()
    };
    assert_eq!(
        FeedbackInput::from_span(&carried, &dims),
        Some(FeedbackInput::Feedback {
            trace_id: "ab".into(),
            parent_span_id: Some("cd".into()),
            event_ms: 5_000,
            // `kind` is the rated generation's.
            series: Some(Series::new(vec![
                "gpt-4o".into(),
                "acme".into(),
                "llm".into()
            ])),
            score: Some(0.25),
            label: None,
        })
    );
    let partial = Span {
        tenant: None,
        ..carried.clone()
    };
    assert!(matches!(
        FeedbackInput::from_span(&partial, &dims),
        Some(FeedbackInput::Feedback { series: None, .. })
    ));
    // A dimension of the span itself is never carried.
    let by_name = Dimensions(vec!["name".into()]);
    assert!(matches!(
        FeedbackInput::from_span(&carried, &by_name),
        Some(FeedbackInput::Feedback { series: None, .. })
    ));
    // Feedback without score or label, and other kinds, are not feedback input.
    let empty = Span {
        kind: SpanKind::Feedback,
        ..base.clone()
    };
    assert_eq!(FeedbackInput::from_span(&empty, &dims), None);
    let tool = Span {
        kind: SpanKind::Tool,
        ..base
    };
    assert_eq!(FeedbackInput::from_span(&tool, &dims), None);
}

#[test]
fn carried_and_joined_feedback_count_at_their_own_time() {
    let carried = FeedbackInput::Feedback {
        trace_id: "zz".into(),
        parent_span_id: None,
        event_ms: 2_000,
        series: Some(series("claude")),
        score: Some(1.0),
        label: None,
    };
    let (got, steps) = run(
        config(60_000, 10_000),
        vec![
            (1_000, vec![generation("t1", "g", 1_000, "gpt")]),
            (2_000, vec![carried]),
            (
                5_000,
                vec![
                    feedback("t1", 5_100, Some(0.2), None),
                    feedback("t1", 5_200, None, Some("thumbs_up")),
                    feedback("t1", 5_300, Some(0.9), Some("Thumbs_Down")),
                ],
            ),
        ],
    );
    assert_eq!(
        got,
        vec![
            out(2_000, "claude", 2_000, Some(100), false),
            out(5_000, "gpt", 5_100, Some(20), true),
            out(5_000, "gpt", 5_200, None, false),
            out(5_000, "gpt", 5_300, Some(90), true),
        ]
    );
    let last = steps.last().unwrap();
    assert_eq!(
        (
            last["feedback"],
            last["carried"],
            last["joined"],
            last["unmatched"]
        ),
        (4, 1, 3, 0)
    );
}

#[test]
fn feedback_before_its_generation_waits_for_it_or_is_unmatched() {
    let (got, steps) = run(
        config(60_000, 10_000),
        vec![
            // Feedback first; its generation arrives within the wait.
            (
                1_000,
                vec![
                    feedback("t1", 1_000, Some(0.1), None),
                    feedback("t2", 1_500, Some(0.8), None),
                ],
            ),
            (4_000, vec![generation("t1", "g", 900, "gpt")]),
            // t2's generation comes after the wait (1 000 + 10 000): too late for it.
            (11_001, vec![]),
            (12_000, vec![generation("t2", "g", 1_200, "llama")]),
        ],
    );
    // The matched feedback is emitted at its own arrival time, which it held while waiting.
    assert_eq!(got, vec![out(1_000, "gpt", 1_000, Some(10), true)]);
    let waiting: Vec<u64> = steps.iter().map(|s| s["waiting"]).collect();
    assert_eq!(waiting, vec![2, 1, 0, 0, 0]);
    let unmatched: Vec<u64> = steps.iter().map(|s| s["unmatched"]).collect();
    assert_eq!(unmatched, vec![0, 0, 1, 1, 1]);
    let last = steps.last().unwrap();
    assert_eq!((last["joined"], last["generations_kept"]), (1, 0));
}

#[test]
fn the_horizon_bounds_the_join_and_the_state() {
    let (got, steps) = run(
        config(60_000, 5_000),
        vec![
            (0, vec![generation("t", "g", 0, "gpt")]),
            // Within the horizon (event time and arrival ≤ 0 + 60 000).
            (50_000, vec![feedback("t", 50_000, Some(0.7), None)]),
            (60_000, vec![feedback("t", 60_000, Some(0.6), None)]),
            // Beyond it: the generation is forgotten, the feedback waits in vain.
            (60_001, vec![feedback("t", 60_001, Some(0.3), None)]),
            (70_000, vec![]),
        ],
    );
    assert_eq!(
        got,
        vec![
            out(50_000, "gpt", 50_000, Some(70), false),
            out(60_000, "gpt", 60_000, Some(60), false)
        ]
    );
    let kept: Vec<u64> = steps.iter().map(|s| s["generations_kept"]).collect();
    // Forgotten once the frontier passes 0 + 60 000.
    assert_eq!(kept, vec![1, 1, 0, 0, 0, 0]);
    let last = steps.last().unwrap();
    assert_eq!(
        (last["joined"], last["unmatched"], last["waiting"]),
        (2, 1, 0)
    );
}

#[test]
fn the_parent_names_the_generation_else_the_latest_one() {
    let named = FeedbackInput::Feedback {
        trace_id: "t".into(),
        parent_span_id: Some("g1".into()),
        event_ms: 9_000,
        series: None,
        score: Some(0.0),
        label: None,
    };
    let (got, _) = run(
        config(60_000, 5_000),
        vec![
            (
                1_000,
                vec![
                    generation("t", "g2", 2_000, "answer-model"),
                    generation("t", "g1", 1_000, "router-model"),
                ],
            ),
            (9_000, vec![named, feedback("t", 9_000, Some(1.0), None)]),
        ],
    );
    assert_eq!(
        got,
        vec![
            out(9_000, "answer-model", 9_000, Some(100), false),
            out(9_000, "router-model", 9_000, Some(0), true),
        ]
    );
}

#[test]
fn oracle_random_feedback_on_two_workers() {
    for seed in 0..6u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (horizon, wait) = (30_000u64, 5_000u64);
        let cfg = config(horizon, wait);
        // (arrival, record) and the expected outputs.
        let mut arrivals: Vec<(u64, FeedbackInput)> = Vec::new();
        let mut expected: Vec<Out> = Vec::new();
        let mut unmatched = 0u64;
        for t in 0..200u32 {
            let trace = format!("{t:08x}");
            let g_start = rng.random_range(0..100_000u64);
            let s = format!("s{}", rng.random_range(0..4));
            let has_generation = rng.random_bool(0.85);
            let g_arrival = g_start + rng.random_range(0..2_000);
            if has_generation {
                arrivals.push((g_arrival, generation(&trace, "g", g_start, &s)));
            }
            for _ in 0..rng.random_range(0..3) {
                let score = rng
                    .random_bool(0.8)
                    .then(|| f64::from(rng.random_range(0..=10u32)) / 10.0);
                let label = rng.random_bool(0.3).then_some("thumbs_down");
                let negative = cfg.is_negative(score, label);
                let flat_score = score.map(|s| (s * 100.0).round() as u64);
                if rng.random_bool(0.2) {
                    // Carries its series: counted right away.
                    let f_ms = g_start + rng.random_range(0..60_000);
                    arrivals.push((
                        f_ms,
                        FeedbackInput::Feedback {
                            trace_id: trace.clone(),
                            parent_span_id: None,
                            event_ms: f_ms,
                            series: Some(series("carried")),
                            score,
                            label: label.map(str::to_owned),
                        },
                    ));
                    expected.push((f_ms, "carried".into(), f_ms, flat_score, negative));
                    continue;
                }
                // Clearly inside or outside every bound, so the oracle needs no tie rules:
                // after the generation, before it within the wait, or past the horizon.
                let (f_ms, matches) = match rng.random_range(0..3) {
                    0 => (g_arrival + rng.random_range(1..20_000), true),
                    1 => (g_arrival.saturating_sub(rng.random_range(1..4_000)), true),
                    _ => (g_start + horizon + rng.random_range(1..20_000), false),
                };
                arrivals.push((f_ms, feedback(&trace, f_ms, score, label)));
                if matches && has_generation {
                    expected.push((f_ms, s.clone(), f_ms, flat_score, negative));
                } else {
                    unmatched += 1;
                }
            }
        }
        arrivals.sort_by_key(|(t, _)| *t);
        expected.sort();
        assert!(expected.len() > 100 && unmatched > 20, "seed {seed}");
        assert!(expected.iter().any(|o| o.4) && expected.iter().any(|o| o.3.is_none()));

        let counters = Arc::new(FeedbackCounters::default());
        let sink = Arc::new(Mutex::new(Vec::new()));
        let (shared, collected) = (counters.clone(), sink.clone());
        let arrivals = Arc::new(arrivals);
        let worker_cfg = cfg.clone();
        timely::execute(timely::Config::process(2), move |worker| {
            let (mut input, recv) = worker.dataflow::<u64, _, _>(|scope| {
                let (input, records) = scope.new_input::<FeedbackInput>();
                (
                    input,
                    feedback_join(records, &worker_cfg, shared.clone()).capture(),
                )
            });
            if worker.index() == 0 {
                for (time, record) in arrivals.iter() {
                    input.advance_to(*time);
                    input.send(record.clone());
                    worker.step();
                }
            }
            drop(input);
            while worker.step_or_park(None) {}
            let mut collected = collected.lock().unwrap();
            for event in recv.try_iter() {
                if let Event::Messages(stamp, data) = event {
                    let time = *stamp.least().expect("a stamped message");
                    collected.extend(data.into_iter().map(|f| flat(time, f)));
                }
            }
        })
        .unwrap();
        let mut got = sink.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, expected, "seed {seed}");
        let c = counters.snapshot();
        assert_eq!(c["unmatched"], unmatched, "seed {seed}");
        assert_eq!((c["generations_kept"], c["waiting"]), (0, 0), "seed {seed}");
    }
}
