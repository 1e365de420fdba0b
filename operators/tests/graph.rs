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
