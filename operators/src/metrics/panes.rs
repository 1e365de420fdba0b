//! Panes: the tumbling slices of event time that every window view is built from.
//!
//! A pane of width `w` ends at `pane_end(start) = (start / w + 1) · w`. [`PaneAcc`] is one
//! series' aggregate over one pane: exact [`Figures`], errors per class and DDSketch bucket
//! counts, each of which becomes a [`Part`] of the differential collection the metrics
//! `reduce` reads (see [`crate::metrics::windows`]).
//!
//! A pane also keeps a few [`Exemplar`]s, the trace ids of its slowest and of its slowest
//! errored spans, at most [`EXEMPLARS_PER_PANE`] of each, so that an alert can point at
//! example traces. The top `N` of a window (or of a group of series) is always among the
//! union of its panes' top `N`, so bounding them per pane loses nothing.

use rustc_hash::FxHashMap as HashMap;
use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::metrics::facts::{PriceKey, SpanFacts, TokenClass};
use crate::metrics::figures::Figures;
use crate::metrics::sketch::{Metric, bucket_of};

/// What a contribution to a window is: its totals, one error class, or one sketch bucket.
///
/// The derived order (totals, then errors by class, then buckets by metric and bucket) is the
/// order in which the metrics `reduce` reads a window's values.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Part {
    /// Field `i` of the window's [`Figures`] (in the order of [`Figures::fields`]); the value is
    /// the difference.
    Sum(u8),
    /// Errors of one class; the count is the difference.
    Error(Arc<str>),
    /// One DDSketch bucket of one metric; the count is the difference.
    Bucket(Metric, i32),
    /// Tokens (or calls) of one price class under one [`PriceKey`]; the count is the
    /// difference. Priced downstream by [`crate::cost::pricing`].
    Tokens(PriceKey, TokenClass),
    /// Cost of one class in pico-USD, the difference (made by [`crate::cost::pricing`]).
    Cost(TokenClass),
    /// Calls of a model that has no price (made by [`crate::cost::pricing`]).
    Unpriced(Arc<str>),
    /// Field `i` of a window's answer quality (see [`crate::metrics::QUALITY_FIELDS`]): scored
    /// answers and feedback, fed by the pipeline's quality path for the alert rules.
    Quality(u8),
    /// An example span of the pane; the difference counts the series' panes that kept it.
    /// The metrics ignore it.
    Exemplar(Exemplar),
}

/// How many exemplars of each [`ExemplarKind`] a pane of one series keeps.
pub const EXEMPLARS_PER_PANE: usize = 3;

/// Why a span was kept as an example.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExemplarKind {
    /// Among the slowest spans.
    Slowest,
    /// Among the slowest spans that ended in error.
    Errored,
}

/// An example span: why it was kept, its latency and its trace id.
///
/// Ordered by kind, then slowest first, then by trace id: the first `N` of a kind are the
/// examples to show.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Exemplar {
    /// Why it was kept.
    pub kind: ExemplarKind,
    /// End-to-end latency, µs.
    pub latency_us: u64,
    /// The span's trace id.
    pub trace_id: Arc<str>,
}

impl Exemplar {
    fn order_key(&self) -> (ExemplarKind, Reverse<u64>, &str) {
        (self.kind, Reverse(self.latency_us), &self.trace_id)
    }
}

impl PartialOrd for Exemplar {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Exemplar {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order_key().cmp(&other.order_key())
    }
}

/// The end (exclusive, ms) of the pane of width `width_ms` that holds `start_ms`.
pub fn pane_end(start_ms: u64, width_ms: u64) -> u64 {
    (start_ms / width_ms + 1) * width_ms
}

/// One pane of one series: its additive totals, error classes and sketch buckets.
#[derive(Clone, Debug, Default)]
pub struct PaneAcc {
    totals: Figures,
    errors: HashMap<Arc<str>, i64>,
    buckets: HashMap<(Metric, i32), i64>,
    usage: HashMap<PriceKey, [i64; 6]>,
    /// At most [`EXEMPLARS_PER_PANE`] of each kind, the best first.
    exemplars: BTreeSet<Exemplar>,
}

impl PaneAcc {
    /// Adds this pane's contributions into `window`, part by part; the exemplars only when
    /// `exemplars` is set.
    pub fn merge_into(&self, window: &mut HashMap<Part, i64>, exemplars: bool) {
        for (i, value) in self.totals.fields().into_iter().enumerate() {
            if value != 0 {
                *window.entry(Part::Sum(i as u8)).or_default() += value;
            }
        }
        for (class, n) in &self.errors {
            *window.entry(Part::Error(class.clone())).or_default() += n;
        }
        for ((metric, b), n) in &self.buckets {
            *window.entry(Part::Bucket(*metric, *b)).or_default() += n;
        }
        for (key, counts) in &self.usage {
            for (class, n) in TokenClass::ALL.into_iter().zip(counts) {
                if *n != 0 {
                    *window.entry(Part::Tokens(key.clone(), class)).or_default() += n;
                }
            }
        }
        for e in self.exemplars.iter().filter(|_| exemplars) {
            *window.entry(Part::Exemplar(e.clone())).or_default() += 1;
        }
    }

    /// Model calls in the pane.
    pub fn requests(&self) -> i64 {
        self.totals.requests
    }

    /// Adds another pane's contributions (of another series), as if its spans had been added
    /// here: what [`crate::metrics::cardinality`] merges overflowing series with.
    pub fn absorb(&mut self, other: PaneAcc) {
        let PaneAcc {
            totals,
            errors,
            buckets,
            usage,
            exemplars,
        } = other;
        self.totals += totals;
        for (class, n) in errors {
            *self.errors.entry(class).or_default() += n;
        }
        for (bucket, n) in buckets {
            *self.buckets.entry(bucket).or_default() += n;
        }
        for (key, counts) in usage {
            let sums = self.usage.entry(key).or_default();
            for (sum, n) in sums.iter_mut().zip(counts) {
                *sum = sum.saturating_add(n);
            }
        }
        for e in exemplars {
            self.keep_exemplar(e);
        }
    }

    fn keep_exemplar(&mut self, exemplar: Exemplar) {
        let kind = exemplar.kind;
        self.exemplars.insert(exemplar);
        if self.exemplars.iter().filter(|e| e.kind == kind).count() > EXEMPLARS_PER_PANE {
            let worst = self
                .exemplars
                .iter()
                .rfind(|e| e.kind == kind)
                .cloned()
                .expect("more than N of this kind");
            self.exemplars.remove(&worst);
        }
    }

    /// Adds one span.
    pub fn add(&mut self, mut f: SpanFacts) {
        self.totals += Figures::of(&f);
        if let Some(usage) = f.usage.take() {
            let counts = self.usage.entry(usage.key).or_default();
            for (sum, n) in counts.iter_mut().zip(usage.counts) {
                *sum = sum.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        if let Some(trace_id) = &f.trace_id {
            let example = |kind| Exemplar {
                kind,
                latency_us: f.latency_us,
                trace_id: trace_id.clone(),
            };
            self.keep_exemplar(example(ExemplarKind::Slowest));
            if f.error.is_some() {
                self.keep_exemplar(example(ExemplarKind::Errored));
            }
        }
        if let Some(class) = f.error {
            *self.errors.entry(class.into()).or_default() += 1;
        }
        *self
            .buckets
            .entry((Metric::Latency, bucket_of(f.latency_us)))
            .or_default() += 1;
        if let Some(v) = f.ttft_us {
            *self
                .buckets
                .entry((Metric::Ttft, bucket_of(v)))
                .or_default() += 1;
        }
        if let Some(v) = f.tpot_us {
            *self
                .buckets
                .entry((Metric::Tpot, bucket_of(v)))
                .or_default() += 1;
        }
    }
}
