//! Panes: the tumbling slices of event time that every window view is built from.
//!
//! A pane of width `w` ends at `pane_end(start) = (start / w + 1) · w`. [`PaneAcc`] is one
//! series' aggregate over one pane: exact [`Figures`], errors per class and DDSketch bucket
//! counts, each of which becomes a [`Part`] of the differential collection the metrics
//! `reduce` reads (see [`crate::windows`]).

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::facts::{PriceKey, SpanFacts, TokenClass};
use crate::figures::Figures;
use crate::sketch::{Metric, bucket_of};

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
    /// difference. Priced downstream by [`crate::pricing`].
    Tokens(PriceKey, TokenClass),
    /// Cost of one class in pico-USD, the difference (made by [`crate::pricing`]).
    Cost(TokenClass),
    /// Calls of a model that has no price (made by [`crate::pricing`]).
    Unpriced(Arc<str>),
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
}

impl PaneAcc {
    /// Adds this pane's contributions into `window`, part by part.
    pub fn merge_into(&self, window: &mut HashMap<Part, i64>) {
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
