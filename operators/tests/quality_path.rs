//! Dataflow tests of the quality path's operators: the scoring operator (exact items, times and
//! counters with a stub scorer), the quality windows (exact records per view and window) and
//! the quality parts the alert rules read (exact `(data, time, diff)` triples).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use glassbox_operators::metrics::panes::Part;
use glassbox_operators::metrics::sketch::{bucket_of, bucket_value_us};
use glassbox_operators::metrics::views::WindowKey;
use glassbox_operators::quality::parts::quality_parts;
use glassbox_operators::quality::scoring::{
    AnswerScorer, QualityCounters, ScoredItem, Scores, ScoringPool, score_items,
};
use glassbox_operators::quality::windows::{QualityFact, QualityRecord, quality_windows};
use glassbox_operators::{Dimensions, FeedbackFact, RagItem, Series, Views};
use timely::dataflow::operators::capture::{Capture, Event, Extract};
use timely::dataflow::operators::vec::Input;

/// Scores an answer `"<faithfulness>"` as that faithfulness (a hallucination below 0.3), with
/// relevances 0.25 and 0.75 when there is a query; fails on `"fail"`.
struct Stub;

impl AnswerScorer for Stub {
    fn score(
        &self,
        query: Option<&str>,
        chunks: &[String],
        answer: &str,
    ) -> Result<Scores, String> {
        if answer == "fail" {
            return Err("model failed".into());
        }
        if answer == "panic" {
            panic!("a scorer bug");
        }
        let f: f32 = answer.parse().map_err(|_| "not a number".to_owned())?;
        Ok(scores(f, query.is_some(), chunks.len()))
    }
}

fn scores(faithfulness: f32, with_query: bool, _chunks: usize) -> Scores {
    Scores {
        lang: "en".into(),
        faithfulness,
        faithfulness_min: faithfulness,
        hallucination: faithfulness < 0.3,
        answer_relevance: with_query.then_some(0.25),
        context_relevance: with_query.then_some(0.75),
        least_supported: Some(0),
        least_supported_text: None,
        ungrounded: Vec::new(),
    }
}

/// Every captured (time, record), in arrival order.
fn messages<D>(recv: &std::sync::mpsc::Receiver<Event<u64, Vec<D>>>) -> Vec<(u64, D)> {
    let mut out = Vec::new();
    for event in recv.try_iter() {
        if let Event::Messages(stamp, data) = event {
            let time = *stamp.least().expect("a stamped message");
            out.extend(data.into_iter().map(|d| (time, d)));
        }
    }
    out
}

fn series(name: &str) -> Series {
    Series::new(vec![name.to_owned()])
}

fn item(span: &str, event_ms: u64, query: Option<&str>, answer: &str) -> RagItem {
    RagItem {
        trace_id: "t1".into(),
        span_id: span.into(),
        retrieval_span_ids: vec!["r1".into()],
        linked: true,
        series: series("acme"),
        event_ms,
        query: query.map(str::to_owned),
        chunks: vec!["chunk".into()],
        answer: answer.into(),
    }
}

fn scored(span: &str, event_ms: u64, query: bool, faithfulness: f32) -> ScoredItem {
    ScoredItem {
        trace_id: "t1".into(),
        span_id: span.into(),
        retrieval_span_ids: vec!["r1".into()],
        series: series("acme"),
        event_ms,
        scores: scores(faithfulness, query, 1),
    }
}

#[test]
fn scoring_emits_each_answer_at_its_input_time_and_counts_failures() {
    let counters = Arc::new(QualityCounters::default());
    let shared = counters.clone();
    let out = timely::execute_directly(move |worker| {
        let pool = ScoringPool::new(Arc::new(Stub), 2, 16);
        let (mut input, recv) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, items) = scope.new_input::<RagItem>();
            (input, score_items(items, pool, shared).capture())
        });
        input.advance_to(10);
        input.send(item("a", 15_000, Some("q"), "0.5"));
        input.send(item("b", 16_000, None, "fail"));
        input.advance_to(20);
        input.send(item("c", 25_000, None, "0.25"));
        // Issue #14, defect 9: a panicking scorer used to never answer, and the job's
        // capability held the dataflow (this test would hang).
        input.send(item("d", 26_000, None, "panic"));
        drop(input);
        while worker.step_or_park(None) {}
        let mut out = messages(&recv);
        out.sort_by(|a, b| (a.0, &a.1.span_id).cmp(&(b.0, &b.1.span_id)));
        out
    });
    assert_eq!(
        out,
        vec![
            (10, scored("a", 15_000, true, 0.5)),
            (20, scored("c", 25_000, false, 0.25)),
        ]
    );
    assert_eq!(
        counters.snapshot(),
        BTreeMap::from([
            ("answers_submitted", 4),
            ("answers_scored", 2),
            ("answers_sampled_out", 0),
            ("quality_late_facts", 0),
            ("answers_failed", 2),
            ("answers_flagged", 1),
        ])
    );
    assert_eq!(counters.scored.load(Ordering::Relaxed), 2);
    assert!((counters.scored_fraction() - 2.0 / 4.0).abs() < 1e-12);
}

fn feedback(event_ms: u64, score: f64, negative: bool) -> QualityFact {
    QualityFact::Feedback(FeedbackFact {
        series: series("acme"),
        event_ms,
        score: Some(score),
        negative,
    })
}

/// The sketch's value for faithfulness `f` (within 1% of `1 + f`), as the windows compute it.
fn sketched(f: f64) -> f64 {
    let shifted = ((f * 1e6).round() as i64 + 1_000_000) as u64;
    bucket_value_us(bucket_of(shifted)) as f64 / 1e6 - 1.0
}

#[allow(clippy::too_many_arguments)]
fn record(
    view: &str,
    length: u64,
    end: u64,
    answers: i64,
    faithfulness: Option<(f64, f64)>,
    hallucination_rate: Option<f64>,
    relevances: Option<(f64, f64)>,
    feedback: (i64, Option<f64>, Option<f64>),
) -> QualityRecord {
    QualityRecord {
        schema_version: 1,
        view: view.into(),
        window_start_ms: end - length,
        window_end_ms: end,
        series: BTreeMap::from([("tenant".to_owned(), "acme".to_owned())]),
        key: "tenant=acme".into(),
        answers_scored: answers,
        faithfulness_mean: faithfulness.map(|f| f.0),
        faithfulness_p10: faithfulness.map(|f| f.1),
        hallucination_rate,
        answer_relevance_mean: relevances.map(|r| r.0),
        context_relevance_mean: relevances.map(|r| r.1),
        feedback_count: feedback.0,
        negative_feedback_rate: feedback.1,
        feedback_mean_score: feedback.2,
    }
}

#[test]
fn a_fact_later_than_its_windows_is_counted_and_never_panics_the_worker() {
    // Issue #14, defect 9: a feedback that arrives after its generation's windows were
    // emitted asked for a capability in the past, which panics the worker.
    let views = Views::standard(10_000, 20_000);
    let dims = Dimensions(vec!["tenant".into()]);
    let counters = Arc::new(QualityCounters::default());
    let c = counters.clone();
    let out = timely::execute_directly(move |worker| {
        let (mut input, recv) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, facts) = scope.new_input::<QualityFact>();
            (
                input,
                quality_windows(facts, &views, &dims, c.clone()).capture(),
            )
        });
        input.advance_to(100_000);
        // Every window of event time 25 s ended by 50 s.
        input.send(feedback(25_000, 0.0, true));
        // A fact at 95 s: its tumbling window [90, 100) ends at 100 s (open), its sliding
        // window [80, 100) too; [90, 110) as well.
        input.send(feedback(95_000, 1.0, false));
        drop(input);
        while worker.step_or_park(None) {}
        messages(&recv)
    });
    assert_eq!(counters.late_facts.load(Ordering::Relaxed), 1);
    let ends: Vec<u64> = out.iter().map(|(t, _)| *t).collect();
    assert!(
        !ends.is_empty() && ends.iter().all(|&e| e >= 100_000),
        "{ends:?}"
    );
}

#[test]
fn quality_windows_emit_one_exact_record_per_view_and_window_at_its_end() {
    // 10 s panes, a 20 s sliding view.
    let views = Views::standard(10_000, 20_000);
    let dims = Dimensions(vec!["tenant".into()]);
    let out = timely::execute_directly(move |worker| {
        let (mut input, recv) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, facts) = scope.new_input::<QualityFact>();
            (
                input,
                quality_windows(facts, &views, &dims, Arc::default()).capture(),
            )
        });
        input.advance_to(12_000);
        input.send(QualityFact::Scored(scored("a", 15_000, true, 0.5)));
        input.send(QualityFact::Scored(scored("b", 17_000, false, 0.25)));
        input.advance_to(21_000);
        input.send(feedback(25_000, 0.0, true));
        drop(input);
        while worker.step_or_park(None) {}
        let mut out = messages(&recv);
        out.sort_by(|a, b| (a.0, &a.1.view).cmp(&(b.0, &b.1.view)));
        out
    });
    let answers = Some((0.375, sketched(0.25)));
    let relevance = Some((0.25, 0.75));
    let no_feedback = (0, None, None);
    let one_negative = (1, Some(1.0), Some(0.0));
    assert_eq!(
        out,
        vec![
            (
                20_000,
                record(
                    "sliding_20s",
                    20_000,
                    20_000,
                    2,
                    answers,
                    Some(0.5),
                    relevance,
                    no_feedback
                )
            ),
            (
                20_000,
                record(
                    "tumbling_10s",
                    10_000,
                    20_000,
                    2,
                    answers,
                    Some(0.5),
                    relevance,
                    no_feedback
                )
            ),
            (
                30_000,
                record(
                    "sliding_20s",
                    20_000,
                    30_000,
                    2,
                    answers,
                    Some(0.5),
                    relevance,
                    one_negative
                )
            ),
            (
                30_000,
                record(
                    "tumbling_10s",
                    10_000,
                    30_000,
                    0,
                    None,
                    None,
                    None,
                    one_negative
                )
            ),
            (
                40_000,
                record(
                    "sliding_20s",
                    20_000,
                    40_000,
                    0,
                    None,
                    None,
                    None,
                    one_negative
                )
            ),
        ]
    );
}

#[test]
fn quality_parts_are_pane_updates_at_the_pane_end_and_late_facts_are_dropped() {
    let out = timely::execute_directly(move |worker| {
        let (mut input, recv) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, facts) = scope.new_input::<QualityFact>();
            (input, quality_parts(facts, 10_000, 0).inner.capture())
        });
        input.advance_to(12_000);
        input.send(QualityFact::Scored(scored("a", 15_000, true, 0.5)));
        input.advance_to(21_000);
        input.send(feedback(25_000, 0.5, true));
        // Its pane ended at 20 000, before this input time: already evaluated, dropped.
        input.send(QualityFact::Scored(scored("late", 15_000, false, 0.1)));
        drop(input);
        while worker.step_or_park(None) {}
        let mut out: Vec<((WindowKey, Part), u64, i64)> = recv
            .extract()
            .into_iter()
            .flat_map(|(_, data)| data)
            .collect();
        out.sort();
        out
    });
    let key = |end_ms| WindowKey {
        view: 0,
        series: series("acme"),
        end_ms,
    };
    assert_eq!(
        out,
        vec![
            ((key(20_000), Part::Quality(0)), 20_000, 1),
            ((key(20_000), Part::Quality(1)), 20_000, 500_000),
            ((key(30_000), Part::Quality(3)), 30_000, 1),
            ((key(30_000), Part::Quality(4)), 30_000, 1),
            ((key(30_000), Part::Quality(5)), 30_000, 1),
            ((key(30_000), Part::Quality(6)), 30_000, 500_000),
        ]
    );
}
