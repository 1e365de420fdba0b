//! Pre-aggregation of span facts into tumbling panes.
//!
//! # Time contract
//! - Input: [`SpanFacts`] at any timely time `t` with `t ≤ pane_end(start_ms)`: the source only
//!   admits a span whose pane has not closed (a later one is late, and counted there).
//! - Output: a differential collection of `((series, pane_end), Part)` with [`Figures`] as the
//!   difference, at time `pane_end` — the moment the pane closes. Nothing is retracted here;
//!   [`crate::views`] decides how long a pane counts.
//! - State: none across activations. Each activation folds everything it received into one map
//!   keyed by (series, pane) so that the dataflow downstream sees one update per series, pane
//!   and sketch bucket rather than one per span; no capability is held after the activation.

use std::collections::HashMap;

use differential_dataflow::AsCollection;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use crate::facts::{Series, SpanFacts};
use crate::figures::Figures;
use crate::sketch::{Metric, bucket_of};

/// What a contribution to a window is: its totals, one error class, or one sketch bucket.
///
/// The derived order (totals, then errors by class, then buckets by metric and bucket) is the
/// order in which the metrics `reduce` reads a window's values.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Part {
    /// The window's additive figures, carried in the difference.
    Totals,
    /// Errors of one class; the count is the difference's `n`.
    Error(String),
    /// One DDSketch bucket of one metric; the count is the difference's `n`.
    Bucket(Metric, i32),
}

/// The end (exclusive, ms) of the pane of width `width_ms` that holds `start_ms`.
pub fn pane_end(start_ms: u64, width_ms: u64) -> u64 {
    (start_ms / width_ms + 1) * width_ms
}

#[derive(Default)]
struct PaneAcc {
    totals: Figures,
    errors: HashMap<String, i64>,
    buckets: HashMap<(Metric, i32), i64>,
}

impl PaneAcc {
    fn add(&mut self, f: SpanFacts) {
        self.totals += Figures::of(&f);
        if let Some(class) = f.error {
            *self.errors.entry(class).or_default() += 1;
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

/// A contribution: `((series, pane_end), part)` at `pane_end`, with its figures.
pub type Contribution = ((Series, u64), Part);

/// Folds span facts into per-pane contributions; see the module's time contract.
pub fn panes<'scope>(
    facts: StreamVec<'scope, u64, SpanFacts>,
    width_ms: u64,
) -> VecCollection<'scope, u64, Contribution, Figures> {
    assert!(width_ms > 0, "pane width must be positive");
    facts
        .unary(Pipeline, "Panes", move |_cap, _info| {
            let mut acc: HashMap<(Series, u64), PaneAcc> = HashMap::new();
            move |input, output| {
                // The least capability among this activation's batches: every pane end is at or
                // after its own batch's time, hence at or after this one.
                let mut least = None;
                input.for_each(|cap, data| {
                    if let Some(c) = cap.retain_least(0) {
                        match &least {
                            Some(l) if timely::PartialOrder::less_equal(l, &c) => {}
                            _ => least = Some(c),
                        }
                    }
                    for mut f in data.drain(..) {
                        let end = pane_end(f.start_ms, width_ms);
                        assert!(
                            end >= *cap.least().unwrap_or(&0),
                            "span in a closed pane reached the pane operator: the source must hold it back as late"
                        );
                        acc.entry((std::mem::take(&mut f.series), end)).or_default().add(f);
                    }
                });
                let Some(least) = least else { return };
                let mut by_time: HashMap<u64, Vec<(Contribution, u64, Figures)>> = HashMap::new();
                for ((series, end), pane) in acc.drain() {
                    let out = by_time.entry(end).or_default();
                    for (class, n) in pane.errors {
                        out.push((((series.clone(), end), Part::Error(class)), end, Figures::count(n)));
                    }
                    for ((metric, b), n) in pane.buckets {
                        out.push((((series.clone(), end), Part::Bucket(metric, b)), end, Figures::count(n)));
                    }
                    out.push((((series, end), Part::Totals), end, pane.totals));
                }
                for (end, mut updates) in by_time {
                    let cap = least.delayed(&end);
                    output.session(&cap).give_container(&mut updates);
                }
            }
        })
        .as_collection()
}
