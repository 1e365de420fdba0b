//! Windows and sketches: `window_metrics` over pre-decoded facts in one timely worker, and the
//! DDSketch `summarize` walk on realistic bucket sets.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use glassbox_benches::{facts, replay_windows};
use glassbox_operators::Views;
use glassbox_operators::metrics::sketch::{bucket_of, summarize};
use glassbox_support::loadgen::Generator;

const SPANS: usize = 100_000;

fn windows(c: &mut Criterion) {
    // 100k spans at 200/s of event time: ~8.3 minutes, ~90% of them model calls, 72 series.
    let input = facts(SPANS, 1_764_316_800_000, 200.0);
    let n = input.len() as u64;
    let mut g = c.benchmark_group("windows");
    g.throughput(Throughput::Elements(n));
    for (name, views) in [
        ("tumbling_1m+sliding_5m", Views::standard(60_000, 300_000)),
        ("tumbling_10s+sliding_30s", Views::standard(10_000, 30_000)),
    ] {
        let (records, _) = replay_windows(input.clone(), views.clone(), false);
        g.bench_function(format!("{name}/{n}_facts_{records}_records"), |b| {
            b.iter_batched(
                || input.clone(),
                |facts| black_box(replay_windows(facts, views.clone(), false).0),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// Sorted `(bucket, count)` pairs of the latencies (µs) of `n` generated spans.
fn latency_buckets(n: usize) -> Vec<(i32, i64)> {
    let mut g = Generator::new(7, 1_764_316_800_000, 1_000.0);
    let mut buckets: BTreeMap<i32, i64> = BTreeMap::new();
    for _ in 0..n {
        *buckets
            .entry(bucket_of(g.next_span().duration_ns / 1_000))
            .or_default() += 1;
    }
    buckets.into_iter().collect()
}

fn sketch(c: &mut Criterion) {
    let mut g = c.benchmark_group("summarize");
    // ~40 calls: one series in one 1-minute window at a modest rate; 100k: a busy sliding view.
    for values in [40, 1_000, 100_000] {
        let buckets = latency_buckets(values);
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{values}_values_{}_buckets", buckets.len()), |b| {
            b.iter(|| black_box(summarize(black_box(&buckets).iter().copied())))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = windows, sketch
}
criterion_main!(benches);
