//! The whole graph (`graph::build`) against its parts: with a metrics-only plan it emits
//! exactly what `window_metrics` emits, and with a price board exactly what
//! `window_metrics_priced` emits, as `(data, time, diff)` triples.

use std::time::Duration;

use glassbox_operators::cost::PriceTable;
use glassbox_operators::cost::pricing::PriceBoard;
use glassbox_operators::graph::{self, Inputs, Plan};
use glassbox_operators::metrics::views::WindowKey;
use glassbox_operators::metrics::window_metrics_priced;
use glassbox_operators::window_metrics;
use glassbox_operators::{PriceKey, Series, SpanFacts, SpanUsage, Views, WindowMetrics};
use timely::dataflow::operators::capture::{Capture, Extract};
use timely::dataflow::operators::vec::Input;

type Triples = Vec<((WindowKey, WindowMetrics), u64, isize)>;

fn fact(tenant: &str, start_ms: u64, latency_us: u64) -> SpanFacts {
    SpanFacts {
        series: Series::new(vec![tenant.to_owned()]),
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

/// Runs `build` over `facts` (batches at input times) on one worker; every triple, sorted.
fn run(
    batches: Vec<(u64, Vec<SpanFacts>)>,
    build: impl Fn(timely::dataflow::StreamVec<'_, u64, SpanFacts>) -> graph::Outputs<'_>
    + Send
    + Sync
    + 'static,
) -> Triples {
    timely::execute_directly(move |worker| {
        let (mut input, recv) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, facts) = scope.new_input::<SpanFacts>();
            (input, build(facts).metrics.inner.capture())
        });
        for (time, facts) in batches {
            input.advance_to(time);
            for f in facts {
                input.send(f);
            }
        }
        drop(input);
        while worker.step_or_park(None) {}
        let mut out: Triples = recv.extract().into_iter().flat_map(|(_, d)| d).collect();
        out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        out
    })
}

fn batches() -> Vec<(u64, Vec<SpanFacts>)> {
    let mut priced = fact("b", 21_000, 3_000);
    priced.usage = Some(SpanUsage {
        key: PriceKey {
            provider: Some("openai".into()),
            model: "gpt-4o".into(),
            tier: 0,
        },
        counts: [1, 100, 0, 0, 10, 0],
    });
    vec![
        (
            1_000,
            vec![fact("a", 1_000, 1_000), fact("b", 4_000, 2_000)],
        ),
        (9_000, vec![fact("a", 14_000, 5_000)]),
        (16_000, vec![priced, fact("a", 25_000, 700)]),
    ]
}

#[test]
fn a_metrics_plan_builds_exactly_the_window_metrics() {
    let views = Views::standard(10_000, 20_000);
    let v = views.clone();
    let by_graph = run(batches(), move |facts| {
        graph::build(
            Inputs {
                facts,
                quality: None,
            },
            &Plan::metrics(v.clone()),
        )
    });
    let by_hand = run(batches(), move |facts| graph::Outputs {
        metrics: window_metrics(facts, &views),
        alerts: None,
        scored: None,
        quality: None,
    });
    assert!(!by_graph.is_empty());
    assert_eq!(by_graph, by_hand);
}

#[test]
fn a_plan_with_prices_builds_exactly_the_priced_window_metrics() {
    let views = Views::standard(10_000, 20_000);
    let board = || PriceBoard::new(PriceTable::default_table(), Duration::from_millis(10));
    let (v, b) = (views.clone(), board());
    let by_graph = run(batches(), move |facts| {
        let plan = Plan {
            prices: Some(b.clone()),
            ..Plan::metrics(v.clone())
        };
        graph::build(
            Inputs {
                facts,
                quality: None,
            },
            &plan,
        )
    });
    let b = board();
    let by_hand = run(batches(), move |facts| graph::Outputs {
        metrics: window_metrics_priced(facts, &views, b.clone()),
        alerts: None,
        scored: None,
        quality: None,
    });
    assert!(by_graph.iter().any(|((_, m), _, _)| m.cost.is_some()));
    assert_eq!(by_graph, by_hand);
}

/// 30 tenants × 2 models with traffic rising by tenant, over three panes; the batches cut the
/// input in an order of their own when `shuffled`.
fn flood(shuffled: bool) -> Vec<(u64, Vec<SpanFacts>)> {
    let mut facts = Vec::new();
    for pane in 0..3u64 {
        for t in 0..30u64 {
            for n in 0..=(t + pane) % 30 {
                let mut f = fact(
                    &format!("t{t:02}"),
                    pane * 10_000 + n * 7 % 10_000,
                    1_000 + n,
                );
                f.series = Series::new(vec![format!("t{t:02}"), format!("m{}", n % 2)]);
                facts.push(f);
            }
        }
    }
    if shuffled {
        facts.reverse();
        facts.sort_by_key(|f| f.start_ms / 10_000);
    }
    let mut batches = Vec::new();
    for pane in 0..3u64 {
        let of_pane: Vec<SpanFacts> = facts
            .iter()
            .filter(|f| f.start_ms / 10_000 == pane)
            .cloned()
            .collect();
        let cut = if shuffled { 3 } else { 1 };
        let size = of_pane.len().div_ceil(cut);
        for chunk in of_pane.chunks(size) {
            batches.push((pane * 10_000, chunk.to_vec()));
        }
    }
    batches
}

#[test]
fn a_cardinality_limit_keeps_the_busiest_values_and_every_total_exactly() {
    use glassbox_operators::metrics::cardinality::{CardinalityCounters, CardinalityLimits, OTHER};
    use std::collections::BTreeMap;
    use std::sync::Arc;
    let views = Views::standard(10_000, 20_000);
    let counters = Arc::new(CardinalityCounters::default());
    let limited = |shuffled: bool| {
        let (v, c) = (views.clone(), counters.clone());
        run(flood(shuffled), move |facts| {
            let plan = Plan {
                cardinality: (CardinalityLimits(vec![Some(5), None]), c.clone()),
                ..Plan::metrics(v.clone())
            };
            graph::build(
                Inputs {
                    facts,
                    quality: None,
                },
                &plan,
            )
        })
    };
    let got = limited(false);
    let v = views.clone();
    let free = run(flood(false), move |facts| {
        graph::build(
            Inputs {
                facts,
                quality: None,
            },
            &Plan::metrics(v.clone()),
        )
    });

    // The oracle: per window insertion, the 5 tenants with most requests keep their series
    // untouched; the others' requests and tokens all land in (`__other__`, model).
    type Window = (u8, u64);
    let mut want_kept: BTreeMap<Window, BTreeMap<Series, WindowMetrics>> = BTreeMap::new();
    let mut want_other: BTreeMap<(Window, String), (i64, i64)> = BTreeMap::new();
    let mut overflow_spans = 0i64;
    let inserts = |triples: &Triples| -> BTreeMap<Window, Vec<(WindowKey, WindowMetrics)>> {
        let mut out: BTreeMap<Window, Vec<_>> = BTreeMap::new();
        for ((k, m), t, d) in triples {
            if *d > 0 && *t == k.end_ms {
                out.entry((k.view, k.end_ms))
                    .or_default()
                    .push((k.clone(), m.clone()));
            }
        }
        out
    };
    // Sliding windows (view 1) are made of folded panes: every total is kept, and they hold at
    // most 5 tenant values per pane plus `__other__`.
    let totals = |triples: &Triples| -> BTreeMap<Window, (i64, i64)> {
        let mut out: BTreeMap<Window, (i64, i64)> = BTreeMap::new();
        for (window, records) in inserts(triples) {
            for (_, m) in records {
                let e = out.entry(window).or_default();
                e.0 += m.totals.requests;
                e.1 += m.totals.input_tokens;
            }
        }
        out
    };
    assert_eq!(totals(&got), totals(&free));
    for (window, records) in inserts(&got).into_iter().filter(|(w, _)| w.0 == 1) {
        let tenants: std::collections::BTreeSet<&str> = records
            .iter()
            .map(|(k, _)| k.series.values()[0].as_str())
            .collect();
        assert!(tenants.len() <= 2 * 5 + 1, "{window:?}: {tenants:?}");
    }
    // The tumbling windows are the panes: the oracle applies there.
    for (window, records) in inserts(&free).into_iter().filter(|(w, _)| w.0 == 0) {
        let mut by_tenant: BTreeMap<String, i64> = BTreeMap::new();
        for (k, m) in &records {
            *by_tenant.entry(k.series.values()[0].clone()).or_default() += m.totals.requests;
        }
        let mut ranked: Vec<(String, i64)> = by_tenant.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let top: Vec<String> = ranked.iter().take(5).map(|(t, _)| t.clone()).collect();
        for (k, m) in records {
            if top.contains(&k.series.values()[0]) {
                want_kept
                    .entry(window)
                    .or_default()
                    .insert(k.series.clone(), m);
            } else {
                let e = want_other
                    .entry((window, k.series.values()[1].clone()))
                    .or_default();
                e.0 += m.totals.requests;
                e.1 += m.totals.input_tokens;
                overflow_spans += m.totals.requests;
            }
        }
    }
    let mut got_kept: BTreeMap<Window, BTreeMap<Series, WindowMetrics>> = BTreeMap::new();
    let mut got_other: BTreeMap<(Window, String), (i64, i64)> = BTreeMap::new();
    for (window, records) in inserts(&got).into_iter().filter(|(w, _)| w.0 == 0) {
        for (k, m) in records {
            let values = k.series.values();
            if values[0] == OTHER {
                let e = got_other.entry((window, values[1].clone())).or_default();
                e.0 += m.totals.requests;
                e.1 += m.totals.input_tokens;
            } else {
                got_kept
                    .entry(window)
                    .or_default()
                    .insert(k.series.clone(), m);
            }
        }
    }
    assert_eq!(
        want_other.len(),
        6,
        "every pane overflows, in both models: {want_other:?}"
    );
    assert_eq!(got_kept, want_kept, "the busiest tenants are untouched");
    assert_eq!(
        got_other, want_other,
        "the rest is counted exactly under __other__"
    );
    assert_eq!(
        counters.snapshot()["overflow_spans"],
        overflow_spans as u64,
        "overflowed spans, each counted once"
    );
    // Every window is retracted as it was inserted: nothing is left once the input is done.
    let mut net: BTreeMap<String, isize> = BTreeMap::new();
    for ((k, m), _, d) in &got {
        *net.entry(format!("{k:?}{m:?}")).or_default() += d;
    }
    net.retain(|_, d| *d != 0);
    assert!(net.is_empty(), "left over: {net:?}");
    // Another batching and order of the same spans maps every window the same way.
    assert_eq!(limited(true), got);
}
