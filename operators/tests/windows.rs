//! Dataflow tests of the metrics path: exact outputs for a scripted input, and an oracle that
//! recomputes every window from scratch on random input.

use std::collections::BTreeMap;

use glassbox_operators::metrics::sketch::{ALPHA, QUANTILES, rank};
use glassbox_operators::metrics::views::{Views, WindowKey};
use glassbox_operators::{Series, SpanFacts, WindowMetrics, window_metrics};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use timely::dataflow::operators::capture::{Capture, Event};
use timely::dataflow::operators::vec::Input;

type Out = ((WindowKey, WindowMetrics), u64, isize);

/// Feeds `batches` (input time, facts) in order, then closes the input; returns every update.
fn run(views: Views, batches: Vec<(u64, Vec<SpanFacts>)>) -> Vec<Out> {
    timely::execute_directly(move |worker| {
        let (mut input, recv) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, facts) = scope.new_input::<SpanFacts>();
            let recv = window_metrics(facts, &views).inner.capture();
            (input, recv)
        });
        for (time, facts) in batches {
            input.advance_to(time);
            for f in facts {
                input.send(f);
            }
            worker.step();
        }
        drop(input);
        while worker.step_or_park(None) {}
        let mut out = Vec::new();
        for event in recv.try_iter() {
            if let Event::Messages(_, data) = event {
                out.extend(data);
            }
        }
        out.sort();
        out
    })
}

fn series(name: &str) -> Series {
    Series::new(vec![name.to_owned()])
}

fn fact(s: &str, start_ms: u64, latency_us: u64) -> SpanFacts {
    SpanFacts {
        series: series(s),
        start_ms,
        latency_us,
        ttft_us: None,
        tpot_us: None,
        input_tokens: 100,
        output_tokens: 10,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        error: None,
        truncated: false,
        usage: None,
        trace_id: None,
    }
}

#[test]
fn tumbling_and_sliding_windows_emit_once_and_retract_one_slide_later() {
    // 10 s panes, 20 s sliding view.
    let views = Views::standard(10_000, 20_000);
    let mut err = fact("a", 15_000, 2_000);
    err.error = Some("timeout".into());
    let out = run(
        views,
        vec![
            (1_000, vec![fact("a", 1_000, 1_000)]),
            (15_000, vec![err, fact("b", 16_000, 3_000)]),
        ],
    );
    // (view, series, window end, requests, errors, input tokens) at (time, diff)
    let got: Vec<_> = out
        .iter()
        .map(|((k, m), t, d)| {
            (
                k.view,
                k.series.0[0].clone(),
                k.end_ms,
                m.totals.requests,
                m.totals.errors,
                m.totals.input_tokens,
                *t,
                *d,
            )
        })
        .collect();
    let a = || "a".to_owned();
    let b = || "b".to_owned();
    let expected = vec![
        // tumbling [0,10): a once; inserted at 10 s, retracted at 20 s
        (0, a(), 10_000, 1, 0, 100, 10_000, 1),
        (0, a(), 10_000, 1, 0, 100, 20_000, -1),
        // tumbling [10,20): a (the error) and b
        (0, a(), 20_000, 1, 1, 100, 20_000, 1),
        (0, a(), 20_000, 1, 1, 100, 30_000, -1),
        (0, b(), 20_000, 1, 0, 100, 20_000, 1),
        (0, b(), 20_000, 1, 0, 100, 30_000, -1),
        // sliding [−10,10): a; [0,20): both of a's spans; [10,30): the error span only
        (1, a(), 10_000, 1, 0, 100, 10_000, 1),
        (1, a(), 10_000, 1, 0, 100, 20_000, -1),
        (1, a(), 20_000, 2, 1, 200, 20_000, 1),
        (1, a(), 20_000, 2, 1, 200, 30_000, -1),
        (1, a(), 30_000, 1, 1, 100, 30_000, 1),
        (1, a(), 30_000, 1, 1, 100, 40_000, -1),
        (1, b(), 20_000, 1, 0, 100, 20_000, 1),
        (1, b(), 20_000, 1, 0, 100, 30_000, -1),
        (1, b(), 30_000, 1, 0, 100, 30_000, 1),
        (1, b(), 30_000, 1, 0, 100, 40_000, -1),
    ];
    let mut expected = expected;
    expected.sort();
    let mut got = got;
    got.sort();
    assert_eq!(got, expected);
    // Errors by class, and the window's exact latency sum.
    let ((_, m), _, _) = out
        .iter()
        .find(|((k, _), _, d)| {
            k.view == 0 && k.end_ms == 20_000 && k.series == series("a") && *d > 0
        })
        .unwrap();
    assert_eq!(m.errors_by_type, vec![("timeout".to_owned(), 1)]);
    assert_eq!(m.totals.latency_sum_us, 2_000);
}

#[test]
fn identical_consecutive_windows_are_both_emitted() {
    // Same figures in two consecutive panes must not cancel out.
    let views = Views::standard(10_000, 10_000);
    let out = run(
        views,
        vec![
            (1_000, vec![fact("a", 1_000, 500)]),
            (11_000, vec![fact("a", 11_000, 500)]),
        ],
    );
    let inserted: Vec<u64> = out
        .iter()
        .filter(|(_, _, d)| *d > 0)
        .map(|((k, _), _, _)| k.end_ms)
        .collect();
    assert_eq!(inserted, vec![10_000, 20_000]);
}

/// Everything a window should report, recomputed from scratch.
#[derive(Default)]
struct Oracle {
    requests: i64,
    errors: i64,
    truncations: i64,
    input: i64,
    output: i64,
    cache_read: i64,
    reasoning: i64,
    latency_sum: i64,
    latencies: Vec<u64>,
    ttfts: Vec<u64>,
    tpots: Vec<u64>,
    errors_by_type: BTreeMap<String, i64>,
}

fn within(est: u64, exact: u64) -> bool {
    (est as f64 - exact as f64).abs() <= ALPHA * exact as f64 + 0.5
}

fn check_quantiles(summary: Option<&glassbox_operators::Summary>, values: &mut [u64], what: &str) {
    if values.is_empty() {
        assert!(summary.is_none(), "{what}: summary without values");
        return;
    }
    let s = summary.unwrap_or_else(|| panic!("{what}: missing summary"));
    values.sort_unstable();
    assert_eq!(s.count, values.len() as i64, "{what} count");
    assert!(within(s.min_us, values[0]), "{what} min");
    assert!(within(s.max_us, *values.last().unwrap()), "{what} max");
    for (i, q) in QUANTILES.iter().enumerate() {
        let exact = values[rank(*q, values.len() as i64) as usize];
        assert!(
            within(s.quantiles_us[i], exact),
            "{what} q{q}: {} vs exact {exact}",
            s.quantiles_us[i]
        );
    }
}

#[test]
fn oracle_random_spans_agree_exactly_on_counts_and_within_alpha_on_quantiles() {
    for seed in 0..6u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let pane = 10_000;
        let views = Views::standard(pane, 30_000);
        let lateness = 3_000;
        // Spans over 12 panes, arriving in start order with bounded disorder (< lateness).
        let mut facts: Vec<SpanFacts> = (0..3_000)
            .map(|_| {
                let start = rng.random_range(0..120_000u64);
                let s = ["a", "b", "c", "d"][rng.random_range(0..4)];
                let mut f = fact(s, start, rng.random_range(0..3_000_000));
                f.input_tokens = rng.random_range(0..5_000);
                f.output_tokens = rng.random_range(0..800);
                f.cache_read_tokens = f.input_tokens / 3;
                f.reasoning_tokens = rng.random_range(0..50);
                f.ttft_us = rng
                    .random_bool(0.6)
                    .then(|| rng.random_range(0..f.latency_us + 1));
                f.tpot_us = f
                    .ttft_us
                    .filter(|_| f.output_tokens > 1)
                    .map(|t| (f.latency_us - t) / (f.output_tokens - 1));
                f.error = rng
                    .random_bool(0.1)
                    .then(|| ["timeout", "rate_limited"][rng.random_range(0..2)].to_owned());
                f.truncated = rng.random_bool(0.05);
                f
            })
            .collect();
        facts.sort_by_cached_key(|f| f.start_ms + rng.random_range(0..lateness));
        // Input time trails the largest start seen by the lateness, as the source's watermark does.
        let mut batches: Vec<(u64, Vec<SpanFacts>)> = Vec::new();
        let mut max_seen = 0u64;
        for chunk in facts.chunks(rng.random_range(1..200)) {
            let time = max_seen.saturating_sub(lateness);
            let time = batches.last().map_or(time, |(t, _)| time.max(*t));
            // The contract: no span arrives after its pane closed.
            let chunk: Vec<SpanFacts> = chunk
                .iter()
                .filter(|f| (f.start_ms / pane + 1) * pane >= time)
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
        let admitted: Vec<SpanFacts> = batches.iter().flat_map(|(_, c)| c.clone()).collect();

        let mut oracle: BTreeMap<(u8, Series, u64), Oracle> = BTreeMap::new();
        for f in &admitted {
            let pane_end = (f.start_ms / pane + 1) * pane;
            for (view, v) in views.views.iter().enumerate() {
                for end in (pane_end..pane_end + v.length_ms).step_by(pane as usize) {
                    let o = oracle
                        .entry((view as u8, f.series.clone(), end))
                        .or_default();
                    o.requests += 1;
                    o.errors += i64::from(f.error.is_some());
                    o.truncations += i64::from(f.truncated);
                    o.input += f.input_tokens as i64;
                    o.output += f.output_tokens as i64;
                    o.cache_read += f.cache_read_tokens as i64;
                    o.reasoning += f.reasoning_tokens as i64;
                    o.latency_sum += f.latency_us as i64;
                    o.latencies.push(f.latency_us);
                    o.ttfts.extend(f.ttft_us);
                    o.tpots.extend(f.tpot_us);
                    if let Some(e) = &f.error {
                        *o.errors_by_type.entry(e.clone()).or_default() += 1;
                    }
                }
            }
        }

        let out = run(views.clone(), batches);
        // Every insertion is retracted one pane later: nothing is left behind (bounded state).
        let mut net: BTreeMap<(WindowKey, WindowMetrics), isize> = BTreeMap::new();
        for (d, t, r) in &out {
            if *r > 0 {
                assert_eq!(*t, d.0.end_ms, "a window is emitted at its end");
            } else {
                assert_eq!(
                    *t,
                    d.0.end_ms + pane,
                    "a window is retracted one pane after its end"
                );
            }
            *net.entry(d.clone()).or_default() += r;
        }
        assert!(
            net.values().all(|r| *r == 0),
            "seed {seed}: every window retracted"
        );

        let inserted: Vec<_> = out.iter().filter(|(_, _, r)| *r > 0).collect();
        assert_eq!(
            inserted.len(),
            oracle.len(),
            "seed {seed}: one record per non-empty window"
        );
        for ((key, m), _, r) in inserted {
            assert_eq!(*r, 1);
            let o = oracle
                .get_mut(&(key.view, key.series.clone(), key.end_ms))
                .expect("window in oracle");
            let t = &m.totals;
            assert_eq!(
                (
                    t.requests,
                    t.errors,
                    t.truncations,
                    t.input_tokens,
                    t.output_tokens,
                    t.cache_read_tokens,
                    t.reasoning_tokens,
                    t.latency_sum_us
                ),
                (
                    o.requests,
                    o.errors,
                    o.truncations,
                    o.input,
                    o.output,
                    o.cache_read,
                    o.reasoning,
                    o.latency_sum
                ),
                "seed {seed} {key:?}"
            );
            assert_eq!(
                m.errors_by_type,
                o.errors_by_type
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect::<Vec<_>>()
            );
            check_quantiles(m.latency.as_ref(), &mut o.latencies, "latency");
            check_quantiles(m.ttft.as_ref(), &mut o.ttfts, "ttft");
            check_quantiles(m.tpot.as_ref(), &mut o.tpots, "tpot");
        }
    }
}
