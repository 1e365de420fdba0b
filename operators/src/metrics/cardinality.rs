//! The cardinality limit: at most `N` values of a dimension per window; the rest are folded
//! into [`OTHER`], with every total kept exact.
//!
//! One client that puts a request id into `tenant` (a bug, or an attack) would otherwise make
//! a series per request in every sink: a Kafka record, a Redis key and an InfluxDB series each.
//! Prometheus and Datadog users know the remedy: a per-dimension limit with an overflow bucket.
//!
//! # Rule
//! For each pane (the tumbling window) and each limited dimension with limit `N`: the pane's
//! values of that dimension are ranked by the pane's requests (most first, then by value, so
//! the rank is a function of the pane's contents alone); the first `N` keep their name, the
//! others become [`OTHER`]. A series is mapped dimension by dimension, and the series that map
//! to one key are merged into one pane: counts, sums, sketch buckets, tokens and exemplars add
//! up, so every total of the pane — requests, tokens, cost — is exactly what it was, and a
//! percentile of the merged series is the percentile of the merged spans. A value that is
//! literally `__other__` is ranked like any other. A sliding window is made of its panes, so it
//! holds at most `N` values per pane of a dimension (at most `k·N` over `k` panes, usually far
//! fewer: the busy values are the same from pane to pane).
//!
//! Each worker folds the series it windows (series are spread over workers by hash) with an
//! even share of each limit, `⌈N / workers⌉`, so a pane holds at most about `N` values in all
//! (the overflow series of all workers merge downstream, as one key). The fold therefore
//! depends on the number of workers: a replay with another worker count can fold other values
//! than the first run did (totals stay exact either way, but the records of the values that
//! changed side differ); restart with the same `workers` to re-emit identical records.
//!
//! It runs when a pane closes, inside [`crate::metrics::windows`], before the pane is kept:
//! what the windows, pricing, alerts and sinks hold afterwards is bounded by the limits, and
//! only a pane still open holds one accumulator per distinct series it saw. Deterministic: a
//! replay after a restart, whatever its batching, folds every pane the same way, so re-emitted
//! records are identical and the sinks' overwrites never double-count.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::metrics::facts::Series;
use crate::metrics::panes::PaneAcc;

/// The value that stands for every value over the limit.
pub const OTHER: &str = "__other__";

/// Per dimension (in the [`crate::Dimensions`] order), the most values a window keeps; `None`:
/// unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CardinalityLimits(pub Vec<Option<usize>>);

impl CardinalityLimits {
    /// The share of each limit of one of `workers` workers (rounded up, at least 1).
    pub fn per_worker(&self, workers: usize) -> Self {
        let workers = workers.max(1);
        Self(
            self.0
                .iter()
                .map(|l| l.map(|n| n.div_ceil(workers).max(1)))
                .collect(),
        )
    }
}

/// What the limit folded: each span is counted once (in its pane).
#[derive(Debug, Default)]
pub struct CardinalityCounters {
    /// Model calls counted under [`OTHER`] in at least one dimension.
    pub overflow_spans: AtomicU64,
    /// (series, pane) pairs merged into an overflow series.
    pub overflow_series: AtomicU64,
}

impl CardinalityCounters {
    /// A snapshot, by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        BTreeMap::from([
            (
                "overflow_spans",
                self.overflow_spans.load(Ordering::Relaxed),
            ),
            (
                "overflow_series",
                self.overflow_series.load(Ordering::Relaxed),
            ),
        ])
    }
}

/// Folds the series of one closed pane over `limits` into [`OTHER`]; see the module doc.
pub fn fold_pane(
    panes: HashMap<Series, PaneAcc>,
    limits: &CardinalityLimits,
    counters: &CardinalityCounters,
) -> HashMap<Series, PaneAcc> {
    // A dimension has at most as many values as the pane has series.
    let smallest = limits.0.iter().flatten().min();
    if smallest.is_none_or(|&n| panes.len() <= n) {
        return panes;
    }
    let mut traffic: Vec<HashMap<&str, i64>> = vec![HashMap::default(); limits.0.len()];
    for (series, pane) in &panes {
        for (d, value) in series.values().iter().enumerate() {
            if limits.0.get(d).copied().flatten().is_some() {
                *traffic[d].entry(value.as_str()).or_default() += pane.requests();
            }
        }
    }
    let kept: Vec<Option<HashSet<String>>> = traffic
        .into_iter()
        .zip(&limits.0)
        .map(|(values, limit)| {
            let limit = (*limit)?;
            if values.len() <= limit {
                return None;
            }
            let mut ranked: Vec<(&str, i64)> = values.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            Some(
                ranked
                    .into_iter()
                    .take(limit)
                    .map(|(v, _)| v.to_owned())
                    .collect(),
            )
        })
        .collect();
    if kept.iter().all(Option::is_none) {
        return panes;
    }
    let mut out: HashMap<Series, PaneAcc> = HashMap::default();
    for (series, pane) in panes {
        let mut changed = false;
        let values: Vec<String> = series
            .values()
            .iter()
            .zip(kept.iter().chain(std::iter::repeat(&None)))
            .map(|(v, keep)| match keep {
                Some(set) if !set.contains(v) => {
                    changed = true;
                    OTHER.to_owned()
                }
                _ => v.clone(),
            })
            .collect();
        if !changed {
            out.entry(series).or_default().absorb(pane);
            continue;
        }
        counters
            .overflow_spans
            .fetch_add(pane.requests().max(0) as u64, Ordering::Relaxed);
        counters.overflow_series.fetch_add(1, Ordering::Relaxed);
        out.entry(Series::new(values)).or_default().absorb(pane);
    }
    out
}
