//! Dataflow tests of the trace join: exact items and counters for scripted traces (out of
//! order, late, duplicated, without retrieval or text), state released, and an oracle that
//! pairs random traces in one batch and must agree with the operator on two workers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use glassbox_operators::Series;
use glassbox_operators::quality::trace_join::{
    RagItem, TraceJoinConfig, TraceJoinCounters, TraceRole, TraceSpan, trace_join,
};
use glassbox_schemas::SpanText;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use timely::dataflow::operators::capture::{Capture, Event};
use timely::dataflow::operators::vec::Input;

const MS: u64 = 1_000_000;

/// What one batch left behind: the items out so far and the counters.
struct Step {
    items: usize,
    counters: BTreeMap<&'static str, u64>,
}

/// Feeds `batches` (input time, spans) in order on one worker, stepping after each; returns
/// every (time, item), sorted, and a [`Step`] per batch plus one after the input closed.
fn run(timeout_ms: u64, batches: Vec<(u64, Vec<TraceSpan>)>) -> (Vec<(u64, RagItem)>, Vec<Step>) {
    let counters = Arc::new(TraceJoinCounters::default());
    let shared = counters.clone();
    timely::execute_directly(move |worker| {
        let (mut input, recv) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, spans) = scope.new_input::<TraceSpan>();
            let recv = trace_join(
                spans,
                &TraceJoinConfig {
                    timeout_ms,
                    ..TraceJoinConfig::default()
                },
                shared,
            )
            .capture();
            (input, recv)
        });
        let mut out = Vec::new();
        let mut steps = Vec::new();
        let collect = |out: &mut Vec<(u64, RagItem)>| {
            for event in recv.try_iter() {
                if let Event::Messages(stamp, data) = event {
                    let time = *stamp.least().expect("a stamped message");
                    out.extend(data.into_iter().map(|item| (time, item)));
                }
            }
        };
        for (time, spans) in batches {
            input.advance_to(time);
            for s in spans {
                input.send(s);
            }
            input.advance_to(time + 1);
            for _ in 0..4 {
                worker.step();
            }
            collect(&mut out);
            steps.push(Step {
                items: out.len(),
                counters: counters.snapshot(),
            });
        }
        drop(input);
        while worker.step_or_park(None) {}
        collect(&mut out);
        steps.push(Step {
            items: out.len(),
            counters: counters.snapshot(),
        });
        out.sort();
        (out, steps)
    })
}

fn series(name: &str) -> Series {
    Series::new(vec![name.to_owned()])
}

fn text(query: Option<&str>, answer: Option<&str>, chunks: &[&str]) -> Option<Box<SpanText>> {
    Some(Box::new(SpanText {
        query: query.map(str::to_owned),
        answer: answer.map(str::to_owned),
        chunks: chunks.iter().map(|c| c.to_string()).collect(),
        truncated: false,
    }))
}

/// A span of `trace`; times in ms.
fn span(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    role: TraceRole,
    start_ms: u64,
    end_ms: u64,
    text: Option<Box<SpanText>>,
) -> TraceSpan {
    TraceSpan {
        trace_id: trace.to_owned(),
        span_id: id.to_owned(),
        parent_span_id: parent.map(str::to_owned),
        role,
        start_unix_nano: start_ms * MS,
        end_unix_nano: end_ms * MS,
        series: series(if role == TraceRole::Generation {
            "gpt"
        } else {
            "vector"
        }),
        text,
    }
}

fn retrieval(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    start: u64,
    end: u64,
    q: Option<&str>,
    chunks: &[&str],
) -> TraceSpan {
    span(
        trace,
        id,
        parent,
        TraceRole::Retrieval,
        start,
        end,
        text(q, None, chunks),
    )
}

fn generation(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    start: u64,
    end: u64,
    q: Option<&str>,
    answer: Option<&str>,
) -> TraceSpan {
    span(
        trace,
        id,
        parent,
        TraceRole::Generation,
        start,
        end,
        text(q, answer, &[]),
    )
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[allow(clippy::too_many_arguments)]
fn item(
    trace: &str,
    id: &str,
    retrievals: &[&str],
    linked: bool,
    event_ms: u64,
    query: Option<&str>,
    chunks: &[&str],
    answer: &str,
) -> RagItem {
    RagItem {
        trace_id: trace.to_owned(),
        span_id: id.to_owned(),
        retrieval_span_ids: strings(retrievals),
        linked,
        series: series("gpt"),
        event_ms,
        query: query.map(str::to_owned),
        chunks: strings(chunks),
        answer: answer.to_owned(),
    }
}

fn counts(step: &Step, names: &[&str]) -> Vec<u64> {
    names.iter().map(|n| step.counters[n]).collect()
}

#[test]
fn a_generation_is_paired_with_the_retrievals_that_ended_before_it_in_any_arrival_order() {
    let (out, steps) = run(
        10_000,
        vec![
            (
                1_000,
                vec![
                    generation(
                        "t1",
                        "g",
                        None,
                        300,
                        900,
                        Some("user question"),
                        Some("the answer"),
                    ),
                    // Ends after the generation started: not its context.
                    retrieval("t1", "r3", None, 250, 1_000, Some("late query"), &["c3"]),
                ],
            ),
            (
                1_200,
                vec![retrieval(
                    "t1",
                    "r1",
                    None,
                    0,
                    100,
                    Some("q1"),
                    &["c1a", "c1b"],
                )],
            ),
            (
                1_500,
                vec![retrieval("t1", "r2", None, 150, 300, Some("q2"), &["c2"])],
            ),
            // Before the deadline (earliest start 0 + 10 s): nothing yet.
            (9_999, vec![]),
            (10_001, vec![]),
        ],
    );
    assert_eq!(
        out,
        vec![(
            1_000,
            item(
                "t1",
                "g",
                &["r1", "r2"],
                false,
                300,
                Some("q1"),
                &["c1a", "c1b", "c2"],
                "the answer"
            )
        )]
    );
    let emitted: Vec<usize> = steps.iter().map(|s| s.items).collect();
    assert_eq!(
        emitted,
        vec![0, 0, 0, 0, 1, 1],
        "emitted once the frontier passed 10 000"
    );
    let last = steps.last().unwrap();
    assert_eq!(
        counts(
            last,
            &[
                "spans",
                "traces_closed",
                "traces_scored",
                "generations",
                "items",
                "late_spans"
            ]
        ),
        vec![4, 1, 1, 1, 1, 0]
    );
}

#[test]
fn parent_links_win_over_time_order() {
    let (out, _) = run(
        5_000,
        vec![(
            100,
            vec![
                // Under another chain: paired only with the unlinked generation.
                retrieval("t", "r0", Some("qq"), 100, 150, Some("other"), &["c0"]),
                retrieval("t", "r1", Some("pp"), 200, 250, Some("mine"), &["c1"]),
                generation("t", "g1", Some("pp"), 300, 400, None, Some("a1")),
                generation("t", "g2", None, 500, 600, Some("own query"), Some("a2")),
                // A child of the generation, or its parent, is linked too.
                generation("t", "g3", Some("r0"), 700, 800, None, Some("a3")),
            ],
        )],
    );
    let items: Vec<RagItem> = out.into_iter().map(|(_, i)| i).collect();
    assert_eq!(
        items,
        vec![
            item("t", "g1", &["r1"], true, 300, Some("mine"), &["c1"], "a1"),
            item(
                "t",
                "g2",
                &["r0", "r1"],
                false,
                500,
                Some("other"),
                &["c0", "c1"],
                "a2"
            ),
            item("t", "g3", &["r0"], true, 700, Some("other"), &["c0"], "a3"),
        ]
    );
    // Without any retrieval query, the generation's own.
    let (out, _) = run(
        5_000,
        vec![(
            100,
            vec![
                retrieval("t", "r", None, 100, 150, None, &["c"]),
                generation("t", "g", None, 300, 400, Some("own query"), Some("a")),
            ],
        )],
    );
    assert_eq!(out[0].1.query.as_deref(), Some("own query"));
}

#[test]
fn generations_without_retrieval_or_text_are_counted_not_emitted() {
    let (out, steps) = run(
        5_000,
        vec![(
            100,
            vec![
                // Only a generation.
                generation("a", "g", None, 100, 200, Some("q"), Some("a")),
                // A retrieval without chunk text.
                retrieval("b", "r", None, 100, 150, Some("q"), &[]),
                generation("b", "g", None, 200, 300, Some("q"), Some("a")),
                // A generation without answer text.
                retrieval("c", "r", None, 100, 150, Some("q"), &["c"]),
                generation("c", "g", None, 200, 300, Some("q"), None),
                // No text at all (a decoder that does not keep text).
                span("d", "r", None, TraceRole::Retrieval, 100, 150, None),
                span("d", "g", None, TraceRole::Generation, 200, 300, None),
                // Only a retrieval: timed out without a generation.
                retrieval("e", "r", None, 100, 150, Some("q"), &["c"]),
            ],
        )],
    );
    assert!(out.is_empty());
    let last = steps.last().unwrap();
    assert_eq!(
        counts(
            last,
            &[
                "traces_closed",
                "traces_scored",
                "traces_without_generation",
                "generations",
                "generations_without_retrieval",
                "generations_missing_text",
                "items",
            ]
        ),
        vec![5, 0, 1, 4, 1, 3, 0]
    );
}

#[test]
fn late_and_duplicate_spans_are_dropped_and_a_closed_trace_is_not_scored_twice() {
    let timeout = 5_000;
    let (out, steps) = run(
        timeout,
        vec![
            (
                1_000,
                vec![generation(
                    "t",
                    "g",
                    None,
                    1_000,
                    1_400,
                    Some("q"),
                    Some("a"),
                )],
            ),
            // An earlier retrieval, on time for its own deadline (500 + 5 000): the trace's
            // deadline moves forward to 5 500.
            (
                5_400,
                vec![retrieval("t", "r", None, 500, 900, Some("q"), &["c"])],
            ),
            // A duplicate delivery of the generation.
            (
                5_450,
                vec![generation(
                    "t",
                    "g",
                    None,
                    1_000,
                    1_400,
                    Some("q"),
                    Some("a"),
                )],
            ),
            // After its own deadline (600 + 5 000): late.
            (
                5_800,
                vec![retrieval("t", "r2", None, 600, 950, Some("q"), &["x"])],
            ),
            // On time for itself, but its trace closed at 5 500: late (tombstone until 10 500).
            (
                6_000,
                vec![retrieval("t", "r3", None, 5_000, 5_100, Some("q"), &["y"])],
            ),
            // A start more than the timeout after the trace's first span, after the tombstone:
            // a new trace under the same id.
            (
                11_000,
                vec![generation(
                    "t",
                    "g9",
                    None,
                    11_000,
                    11_500,
                    Some("q"),
                    Some("b"),
                )],
            ),
        ],
    );
    assert_eq!(
        out,
        vec![(
            1_000,
            item("t", "g", &["r"], false, 1_000, Some("q"), &["c"], "a")
        )]
    );
    let names = [
        "spans",
        "late_spans",
        "duplicate_spans",
        "traces_closed",
        "open_traces",
        "tombstones",
    ];
    let got: Vec<Vec<u64>> = steps.iter().map(|s| counts(s, &names)).collect();
    assert_eq!(
        got,
        vec![
            vec![1, 0, 0, 0, 1, 0],
            vec![2, 0, 0, 0, 1, 0],
            vec![2, 0, 1, 0, 1, 0],
            // Frontier past 5 500: closed, remembered by a tombstone.
            vec![2, 1, 1, 1, 0, 1],
            vec![2, 2, 1, 1, 0, 1],
            // Past 10 500 the tombstone is gone; the new trace is open.
            vec![3, 2, 1, 1, 1, 0],
            // Input closed: everything closed and forgotten.
            vec![3, 2, 1, 2, 0, 0],
        ]
    );
    assert_eq!(
        steps.last().unwrap().counters["generations_without_retrieval"],
        1
    );
}

#[test]
fn state_is_released_after_the_timeout() {
    let timeout = 2_000;
    let batches: Vec<(u64, Vec<TraceSpan>)> = (0..50u64)
        .map(|i| {
            let t = i * 1_000;
            let trace = format!("{i:02x}");
            (
                t,
                vec![
                    retrieval(&trace, "r", None, t, t + 10, Some("q"), &["c"]),
                    generation(&trace, "g", None, t + 20, t + 30, Some("q"), Some("a")),
                ],
            )
        })
        .collect();
    let (out, steps) = run(timeout, batches);
    assert_eq!(out.len(), 50);
    // Every item at its trace's first arrival.
    assert!(out.iter().all(|(t, i)| *t == i.event_ms - 20));
    // At most the traces of the last timeout are open, and their tombstones remembered.
    for step in &steps[..50] {
        assert!(step.counters["open_traces"] <= 3, "{:?}", step.counters);
        assert!(step.counters["tombstones"] <= 3, "{:?}", step.counters);
    }
    let last = steps.last().unwrap();
    assert_eq!(
        counts(last, &["open_traces", "tombstones", "traces_scored"]),
        vec![0, 0, 50]
    );
}

/// The pairing rule, written again from its description, for the oracle.
fn batch_pairing(spans: &[TraceSpan]) -> (Vec<RagItem>, [u64; 3]) {
    let mut items = Vec::new();
    let (mut without, mut missing, mut gens) = (0, 0, 0);
    let mut retrievals: Vec<&TraceSpan> = spans
        .iter()
        .filter(|s| s.role == TraceRole::Retrieval)
        .collect();
    retrievals.sort_by_key(|r| (r.end_unix_nano, r.start_unix_nano, r.span_id.clone()));
    for g in spans.iter().filter(|s| s.role == TraceRole::Generation) {
        gens += 1;
        let before: Vec<&TraceSpan> = retrievals
            .iter()
            .copied()
            .filter(|r| r.end_unix_nano <= g.start_unix_nano)
            .collect();
        let is_linked = |r: &&TraceSpan| {
            (r.parent_span_id.is_some() && r.parent_span_id == g.parent_span_id)
                || r.parent_span_id.as_ref() == Some(&g.span_id)
                || g.parent_span_id.as_ref() == Some(&r.span_id)
        };
        let linked: Vec<&TraceSpan> = before.iter().copied().filter(is_linked).collect();
        let (paired, was_linked) = if linked.is_empty() {
            (before, false)
        } else {
            (linked, true)
        };
        if paired.is_empty() {
            without += 1;
            continue;
        }
        let chunks: Vec<String> = paired
            .iter()
            .flat_map(|r| {
                r.text
                    .as_ref()
                    .map(|t| t.chunks.clone())
                    .unwrap_or_default()
            })
            .collect();
        let answer = g.text.as_ref().and_then(|t| t.answer.clone());
        match answer {
            Some(answer) if !chunks.is_empty() => items.push(RagItem {
                trace_id: g.trace_id.clone(),
                span_id: g.span_id.clone(),
                retrieval_span_ids: paired.iter().map(|r| r.span_id.clone()).collect(),
                linked: was_linked,
                series: g.series.clone(),
                event_ms: g.start_unix_nano / MS,
                query: paired
                    .iter()
                    .find_map(|r| r.text.as_ref().and_then(|t| t.query.clone()))
                    .or_else(|| g.text.as_ref().and_then(|t| t.query.clone())),
                chunks,
                answer,
            }),
            _ => missing += 1,
        }
    }
    (items, [gens, without, missing])
}

#[test]
fn oracle_random_traces_on_two_workers_agree_with_a_batch_pairing() {
    for seed in 0..8u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let timeout = 10_000u64;
        let lateness = 3_000u64;
        let mut arrivals: Vec<(u64, TraceSpan)> = Vec::new();
        let mut traces: BTreeMap<String, Vec<TraceSpan>> = BTreeMap::new();
        for t in 0..300u32 {
            let trace = format!("{t:08x}");
            let base = rng.random_range(0..200_000u64);
            let parents = ["p1", "p2"];
            let mut spans = Vec::new();
            let n_ret = rng.random_range(0..4);
            let n_gen = if n_ret == 0 {
                1
            } else {
                rng.random_range(0..3)
            };
            for i in 0..n_ret + n_gen {
                let role = if i < n_ret {
                    TraceRole::Retrieval
                } else {
                    TraceRole::Generation
                };
                let start = base * MS + rng.random_range(0..5_000 * MS);
                let end = start + rng.random_range(0..1_500 * MS);
                let parent = rng
                    .random_bool(0.6)
                    .then(|| parents[rng.random_range(0..2)].to_owned());
                let query = rng.random_bool(0.5).then(|| format!("q{t}.{i}"));
                let (answer, chunks) = match role {
                    TraceRole::Generation => {
                        (rng.random_bool(0.9).then(|| format!("a{t}.{i}")), vec![])
                    }
                    TraceRole::Retrieval => (
                        None,
                        (0..rng.random_range(0..3))
                            .map(|c| format!("c{t}.{i}.{c}"))
                            .collect(),
                    ),
                };
                spans.push(TraceSpan {
                    trace_id: trace.clone(),
                    span_id: format!("{i:04x}"),
                    parent_span_id: parent,
                    role,
                    start_unix_nano: start,
                    end_unix_nano: end,
                    series: series(&format!("s{}", rng.random_range(0..3))),
                    text: Some(Box::new(SpanText {
                        query,
                        answer,
                        chunks,
                        truncated: false,
                    })),
                });
            }
            // Every span on time: it arrives within the lateness of its start, well before its
            // trace's deadline (the earliest start + timeout).
            for s in &spans {
                let start_ms = s.start_unix_nano / MS;
                arrivals.push((start_ms + rng.random_range(0..lateness), s.clone()));
                // Some deliveries are repeated.
                if rng.random_bool(0.05) {
                    arrivals.push((start_ms + rng.random_range(0..lateness), s.clone()));
                }
            }
            traces.insert(trace, spans);
        }
        arrivals.sort_by_key(|(t, _)| *t);
        let mut batches: Vec<(u64, Vec<TraceSpan>)> = Vec::new();
        let mut rest = arrivals.as_slice();
        while !rest.is_empty() {
            let n = rng.random_range(1..40).min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            // A batch is sent at its first arrival time; the rest of it is later, never earlier.
            let time = chunk[0].0;
            batches.push((time, chunk.iter().map(|(_, s)| s.clone()).collect()));
        }
        let first_arrival: BTreeMap<String, u64> = batches
            .iter()
            .rev()
            .flat_map(|(t, spans)| spans.iter().map(move |s| (s.trace_id.clone(), *t)))
            .collect();

        let mut expected: Vec<(u64, RagItem)> = Vec::new();
        let (mut gens, mut without, mut missing, mut scored, mut no_gen) = (0, 0, 0, 0, 0);
        for (trace, spans) in &traces {
            let (items, [g, w, m]) = batch_pairing(spans);
            gens += g;
            without += w;
            missing += m;
            scored += u64::from(!items.is_empty());
            no_gen += u64::from(g == 0);
            expected.extend(items.into_iter().map(|i| (first_arrival[trace], i)));
        }
        expected.sort();
        // The random traces exercise every branch of the rule.
        assert!(expected.len() > 40, "seed {seed}: {}", expected.len());
        assert!(expected.iter().any(|(_, i)| i.linked) && expected.iter().any(|(_, i)| !i.linked));
        assert!(expected.iter().any(|(_, i)| i.query.is_none()));
        assert!(without > 10 && missing > 10 && no_gen > 10, "seed {seed}");

        let counters = Arc::new(TraceJoinCounters::default());
        let out = Arc::new(Mutex::new(Vec::new()));
        let (shared, sink) = (counters.clone(), out.clone());
        let batches = Arc::new(batches);
        timely::execute(timely::Config::process(2), move |worker| {
            let sink = sink.clone();
            let (mut input, recv) = worker.dataflow::<u64, _, _>(|scope| {
                let (input, spans) = scope.new_input::<TraceSpan>();
                let config = TraceJoinConfig {
                    timeout_ms: timeout,
                    ..TraceJoinConfig::default()
                };
                (input, trace_join(spans, &config, shared.clone()).capture())
            });
            if worker.index() == 0 {
                for (time, spans) in batches.iter() {
                    input.advance_to(*time);
                    for s in spans {
                        input.send(s.clone());
                    }
                    worker.step();
                }
            }
            drop(input);
            while worker.step_or_park(None) {}
            let mut sink = sink.lock().unwrap();
            for event in recv.try_iter() {
                if let Event::Messages(stamp, data) = event {
                    let time = *stamp.least().expect("a stamped message");
                    sink.extend(data.into_iter().map(|item| (time, item)));
                }
            }
        })
        .unwrap();
        let mut got = out.lock().unwrap().clone();
        got.sort();
        assert_eq!(got.len(), expected.len(), "seed {seed}");
        assert_eq!(got, expected, "seed {seed}");
        let c = counters.snapshot();
        assert_eq!(
            [
                c["traces_closed"],
                c["traces_scored"],
                c["traces_without_generation"],
                c["generations"],
                c["generations_without_retrieval"],
                c["generations_missing_text"],
                c["items"],
                c["late_spans"],
                c["open_traces"],
                c["tombstones"],
            ],
            [
                traces.len() as u64,
                scored,
                no_gen,
                gens,
                without,
                missing,
                expected.len() as u64,
                0,
                0,
                0
            ],
            "seed {seed}"
        );
        assert_eq!(
            c["spans"] + c["duplicate_spans"],
            arrivals.len() as u64,
            "seed {seed}"
        );
    }
}

#[test]
fn a_hostile_trace_is_bounded_in_spans_and_chunks_per_item() {
    // Issue #14, defect 3: 400 generations after 1,600 retrievals of one trace (no links, so
    // every generation pairs with every retrieval) would copy 640,000 retrievals' chunks.
    let limits = TraceJoinConfig::default();
    let mut spans: Vec<TraceSpan> = (0..1_600)
        .map(|i| {
            retrieval(
                "t",
                &format!("r{i:04}"),
                None,
                1_000,
                1_001,
                None,
                &["c1", "c2"],
            )
        })
        .collect();
    spans.extend((0..400).map(|i| {
        generation(
            "t",
            &format!("g{i:04}"),
            None,
            2_000,
            2_100,
            None,
            Some("a"),
        )
    }));
    let (items, steps) = run(limits.timeout_ms, vec![(1_000, spans)]);
    let last = steps.last().unwrap();
    // Spans beyond the limit are dropped and counted: the first 1,000 arrived are kept, all
    // retrievals, so no generation is in the trace.
    assert_eq!(
        counts(last, &["spans", "spans_over_limit", "generations"]),
        [1_000, 1_000, 0]
    );
    assert!(items.is_empty());

    // Within the span limit, each item keeps the chunks of the retrievals that ended last.
    let mut spans: Vec<TraceSpan> = (0..600u64)
        .map(|i| {
            let (a, b) = (format!("{i}a"), format!("{i}b"));
            retrieval(
                "u",
                &format!("r{i:04}"),
                None,
                1_000,
                1_001 + i,
                None,
                &[&a, &b],
            )
        })
        .collect();
    spans.extend((0..400).map(|i| {
        generation(
            "u",
            &format!("g{i:04}"),
            None,
            5_000,
            5_100,
            None,
            Some("a"),
        )
    }));
    let (items, steps) = run(limits.timeout_ms, vec![(1_000, spans)]);
    let last = steps.last().unwrap();
    assert_eq!(counts(last, &["items", "items_chunks_cut"]), [400, 400]);
    for (_, item) in &items {
        assert_eq!(item.chunks.len(), limits.max_chunks_per_item);
        assert_eq!(
            item.retrieval_span_ids.len(),
            600,
            "every retrieval is still paired"
        );
    }
    let last_32: Vec<String> = (568..600)
        .flat_map(|i| [format!("{i}a"), format!("{i}b")])
        .collect();
    assert_eq!(
        items[0].1.chunks, last_32,
        "the chunks of the 32 retrievals that ended last"
    );
}
