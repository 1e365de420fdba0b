//! Dataflow tests of pricing: window cost against a from-scratch oracle (random spans × random
//! price tables, exact integers), and retroactive re-pricing when the table changes.

use std::collections::BTreeMap;
use std::time::Duration;

use glassbox_operators::cost::pricing::PriceBoard;
use glassbox_operators::cost::{Price, PriceTable, PriceTier, span_cost};
use glassbox_operators::metrics::views::{Views, WindowKey};
use glassbox_operators::metrics::window_metrics_priced;
use glassbox_operators::{CostKeying, Dimensions, SpanFacts, WindowMetrics};
use glassbox_schemas::{Span, SpanKind, TokenUsage};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use timely::dataflow::operators::capture::{Capture, Event};
use timely::dataflow::operators::vec::Input;

type Out = ((WindowKey, WindowMetrics), u64, isize);

const MODELS: [&str; 4] = ["m-a", "m-b", "m-c", "m-unpriced"];

fn span(rng: &mut StdRng, start_ms: u64) -> Span {
    let big = rng.random_range(0..10) == 0;
    let n = |rng: &mut StdRng, max: u64| rng.random_range(0..max);
    let input = if big {
        150_000 + n(rng, 100_000)
    } else {
        n(rng, 5_000)
    };
    Span {
        trace_id: "ab".into(),
        span_id: "cd".into(),
        kind: SpanKind::Llm,
        start_unix_nano: start_ms * 1_000_000,
        end_unix_nano: start_ms * 1_000_000 + 1_000_000,
        provider: Some(["openai", "anthropic"][rng.random_range(0..2)].into()),
        response_model: Some(MODELS[rng.random_range(0..MODELS.len())].into()),
        tenant: Some(["t1", "t2"][rng.random_range(0..2)].into()),
        usage: TokenUsage {
            input: Some(input),
            output: Some(n(rng, 3_000)),
            cache_read: Some(n(rng, 1_000)),
            cache_write: (rng.random_range(0..3) == 0).then(|| n(rng, 500)),
            reasoning: (rng.random_range(0..3) == 0).then(|| n(rng, 800)),
        },
        ..Span::default()
    }
}

fn random_table(rng: &mut StdRng) -> PriceTable {
    let mut table = PriceTable::new();
    let p = |rng: &mut StdRng| rng.random_range(0..20_000_000u64);
    for model in &MODELS[..3] {
        let mut price = Price::new(p(rng), p(rng));
        price.cache_read = rng.random_bool(0.5).then(|| p(rng));
        price.cache_write = rng.random_bool(0.5).then(|| p(rng));
        price.reasoning = rng.random_bool(0.5).then(|| p(rng));
        if rng.random_bool(0.5) {
            price.tiers.push(PriceTier {
                above_tokens: 200_000,
                input: Some(p(rng)),
                output: Some(p(rng)),
                ..PriceTier::default()
            });
        }
        table.insert(*model, price);
    }
    table
}

fn keying(table: &PriceTable) -> CostKeying {
    CostKeying {
        thresholds: table
            .tier_thresholds()
            .into_iter()
            .chain([200_000])
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        ..CostKeying::default()
    }
}

/// Feeds `batches` (input time, spans), publishing `reprice` on the board right after the batch
/// of that index has been fed and the frontier has reached its time.
fn run(
    views: Views,
    table: PriceTable,
    reprice: Option<(usize, PriceTable)>,
    batches: Vec<(u64, Vec<Span>)>,
) -> Vec<Out> {
    let dims = Dimensions(vec!["model".into(), "tenant".into()]);
    let keying = keying(&table);
    let board = PriceBoard::new(table, Duration::from_millis(1));
    timely::execute_directly(move |worker| {
        let b = board.clone();
        let (mut input, probe, recv) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, facts) = scope.new_input::<SpanFacts>();
            let metrics = window_metrics_priced(facts, &views, b);
            let (probe, metrics) = metrics.probe();
            (input, probe, metrics.inner.capture())
        });
        let mut reprice = reprice;
        for (i, (time, spans)) in batches.into_iter().enumerate() {
            input.advance_to(time);
            for s in &spans {
                input.send(SpanFacts::from_span_priced(s, &dims, Some(&keying)).unwrap());
            }
            while probe.less_than(&time) {
                worker.step();
            }
            if reprice.as_ref().is_some_and(|(at, _)| *at == i) {
                let (_, table) = reprice.take().unwrap();
                board.publish(table);
                // Let the price operator notice it (it polls every millisecond).
                for _ in 0..20 {
                    std::thread::sleep(Duration::from_millis(2));
                    worker.step();
                }
            }
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

/// The oracle: per (view, series, window end), the exact cost of its spans and its unpriced
/// calls per model, from `span_cost` span by span.
/// Per (view, series, window end): the exact cost and the unpriced calls per model.
type Expected = BTreeMap<(u8, Vec<String>, u64), (i128, BTreeMap<String, i64>)>;

fn oracle(views: &Views, table: &PriceTable, spans: &[Span]) -> Expected {
    let keying = keying(table);
    let mut out: BTreeMap<_, (i128, BTreeMap<String, i64>)> = BTreeMap::new();
    let w = views.pane_ms;
    for s in spans {
        let series = vec![s.model().unwrap().to_owned(), s.tenant.clone().unwrap()];
        let pane = (s.start_ms() / w + 1) * w;
        for (v, view) in views.views.iter().enumerate() {
            for end in (pane..pane + view.length_ms).step_by(w as usize) {
                let entry = out.entry((v as u8, series.clone(), end)).or_default();
                match table.price(s.provider.as_deref(), s.model().unwrap()) {
                    Some(price) => {
                        let semantics = keying.semantics(s.provider.as_deref());
                        entry.0 += i128::from(span_cost(&s.usage, semantics, price).total);
                    }
                    None => *entry.1.entry(s.model().unwrap().to_owned()).or_default() += 1,
                }
            }
        }
    }
    out
}

/// The last inserted record per window, with the time it was inserted.
fn final_records(out: &[Out]) -> BTreeMap<(u8, Vec<String>, u64), (u64, WindowMetrics)> {
    let mut last = BTreeMap::new();
    for ((key, m), time, diff) in out {
        if *diff > 0 {
            let k = (key.view, key.series.values().to_vec(), key.end_ms);
            let e = last.entry(k).or_insert((*time, m.clone()));
            if *time >= e.0 {
                *e = (*time, m.clone());
            }
        }
    }
    last
}

#[test]
fn oracle_random_spans_and_tables_agree_exactly() {
    for seed in 0..6u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let views = Views::standard(10_000, 30_000);
        let table = random_table(&mut rng);
        let mut spans = Vec::new();
        let mut batches = Vec::new();
        for b in 0..12u64 {
            let t = b * 5_000;
            let batch: Vec<Span> = (0..rng.random_range(0..40))
                .map(|_| {
                    let at = t + rng.random_range(0..5_000);
                    span(&mut rng, at)
                })
                .collect();
            spans.extend(batch.clone());
            batches.push((t, batch));
        }
        let expected = oracle(&views, &table, &spans);
        let got = final_records(&run(views, table, None, batches));
        assert_eq!(got.len(), expected.len(), "seed {seed}: windows");
        for (k, (cost, unpriced)) in &expected {
            let m = &got[k].1;
            let c = m.cost.as_ref().expect("priced windows carry a cost");
            assert_eq!(i128::from(c.total()), *cost, "seed {seed}: cost of {k:?}");
            let u: BTreeMap<String, i64> = c.unpriced.iter().cloned().collect();
            assert_eq!(&u, unpriced, "seed {seed}: unpriced of {k:?}");
            let calls: i64 = m.usage.iter().map(|(_, counts)| counts[0]).sum();
            assert_eq!(
                calls, m.totals.requests,
                "seed {seed}: usage calls of {k:?}"
            );
        }
    }
}

#[test]
fn a_new_table_reprices_open_windows_and_later_ones_only() {
    let mut rng = StdRng::seed_from_u64(42);
    let views = Views::standard(10_000, 20_000);
    let a = random_table(&mut rng);
    let mut b = random_table(&mut rng);
    // Table B also prices the model A does not know.
    b.insert("m-unpriced", Price::new(1_000_000, 2_000_000));
    let spans_at = |rng: &mut StdRng, from: u64| -> Vec<Span> {
        (0..30)
            .map(|_| {
                let at = from + rng.random_range(0..10_000);
                span(rng, at)
            })
            .collect()
    };
    let (p1, p2, p3) = (
        spans_at(&mut rng, 0),
        spans_at(&mut rng, 10_000),
        spans_at(&mut rng, 20_000),
    );
    // Panes end at 10 s, 20 s, 30 s. B is published once the frontier is at 25 s: the tumbling
    // window ending at 20 s and the sliding one ending at 20 s are closed but not yet retracted
    // (they are retracted at 30 s), the ones ending at 10 s are gone.
    let batches = vec![
        (0, [p1.clone(), p2.clone()].concat()),
        (25_000, vec![]),
        (25_000, p3.clone()),
    ];
    let out = run(views.clone(), a.clone(), Some((1, b.clone())), batches);
    let all: Vec<Span> = [p1, p2, p3].concat();
    let (under_a, under_b) = (oracle(&views, &a, &all), oracle(&views, &b, &all));

    let mut seen = 0;
    for ((view, series, end), (time, m)) in final_records(&out) {
        let k = (view, series.clone(), end);
        let cost = i128::from(m.cost.as_ref().unwrap().total());
        let unpriced: BTreeMap<String, i64> =
            m.cost.as_ref().unwrap().unpriced.iter().cloned().collect();
        let (expected_time, expected) = match end {
            // Retracted before the change: priced once, by A.
            10_000 => (end, &under_a[&k]),
            // Open at the change: re-priced by B at the frontier's time.
            20_000 => (25_000, &under_b[&k]),
            // Closed after the change: priced by B.
            _ => (end, &under_b[&k]),
        };
        assert_eq!(time, expected_time, "{k:?}");
        assert_eq!(cost, expected.0, "{k:?}");
        assert_eq!(unpriced, expected.1, "{k:?}");
        seen += 1;
    }
    assert!(seen > 10);
    // The re-pricing retracts exactly what was inserted under A.
    let mut net: BTreeMap<(u8, u64), isize> = BTreeMap::new();
    for ((key, _), time, diff) in &out {
        if *time == 25_000 && key.end_ms == 20_000 {
            *net.entry((key.view, key.end_ms)).or_default() += diff;
        }
    }
    assert!(
        net.values().all(|d| *d == 0),
        "one retraction per re-insertion: {net:?}"
    );
}
