//! The metrics of one window of one series: counts, tokens, rates and duration distributions.
//!
//! # Time contract
//! - Input: span facts at any time not after their pane's end (see [`crate::metrics::panes`]).
//! - Output: a collection of `(WindowKey, WindowMetrics)`; for window `[E − L, E)` the record
//!   is inserted at time `E`, once the frontier has passed `E` (the window is closed and its
//!   figures final), and retracted at `E + w`. Consumers that want each window once read only
//!   the insertions. Windows without spans produce nothing.
//! - State: the arrangements of the `reduce` hold a window's contributions from `E` to `E + w`
//!   and then compact to nothing (the retractions of [`crate::metrics::windows`]).

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;

use std::sync::Arc;

use crate::cost::pricing::{PriceBoard, priced};
use crate::metrics::facts::{PriceKey, SpanFacts, TokenClass};
use crate::metrics::figures::Figures;
use crate::metrics::panes::Part;
use crate::metrics::sketch::{Metric, Summary, summarize};
use crate::metrics::views::{Views, WindowKey};
use crate::metrics::windows::windows;

/// Everything glassbox reports for one (view, series, window).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowMetrics {
    /// Exact counts, token totals and duration sums.
    pub totals: Figures,
    /// Errors per `error.type`, sorted by class.
    pub errors_by_type: Vec<(String, i64)>,
    /// End-to-end latency distribution.
    pub latency: Option<Summary>,
    /// Time-to-first-token distribution, over calls that reported one.
    pub ttft: Option<Summary>,
    /// Time-per-output-token distribution, over calls that have one.
    pub tpot: Option<Summary>,
    /// Cost, when pricing is on.
    pub cost: Option<CostFigures>,
    /// Calls and tokens per [`PriceKey`] (counts in the order of [`TokenClass::ALL`]), sorted
    /// by key; empty when pricing is off.
    pub usage: Vec<(PriceKey, [i64; 6])>,
    /// Answer quality, exact integers in the order of [`QUALITY_FIELDS`]; all zero unless the
    /// quality path feeds the alert rules.
    pub quality: [i64; 7],
}

/// The fields of [`WindowMetrics::quality`] (scores in millionths).
pub const QUALITY_FIELDS: [&str; 7] = [
    "answers_scored",
    "faithfulness_ppm_sum",
    "hallucinations",
    "feedback",
    "negative_feedback",
    "feedback_scored",
    "feedback_score_ppm_sum",
];

/// A window's cost, exact pico-USD per [`TokenClass`] (see [`crate::cost::pricing`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CostFigures {
    /// pico-USD per class, in the order of [`TokenClass::ALL`] (`Calls` is always 0).
    pub by_class: [i64; 6],
    /// Calls whose model has no price, per model (sorted); they add nothing to the cost.
    pub unpriced: Vec<(String, i64)>,
}

impl CostFigures {
    /// Total pico-USD.
    pub fn total(&self) -> i64 {
        self.by_class.iter().sum()
    }

    /// Calls without a price.
    pub fn unpriced_calls(&self) -> i64 {
        self.unpriced.iter().map(|(_, n)| n).sum()
    }

    /// pico-USD of one class.
    pub fn of(&self, class: TokenClass) -> i64 {
        self.by_class[class as usize]
    }
}

impl WindowMetrics {
    /// Builds a window's metrics from its contributions sorted by [`Part`].
    pub fn from_parts<'a>(parts: impl IntoIterator<Item = (&'a Part, i64)>) -> Self {
        let mut m = WindowMetrics::default();
        let mut buckets: [Vec<(i32, i64)>; 3] = Default::default();
        let mut cost: Option<CostFigures> = None;
        for (part, n) in parts {
            match part {
                Part::Sum(field) => m.totals.add_field(usize::from(*field), n),
                Part::Error(class) => m.errors_by_type.push((class.to_string(), n)),
                Part::Bucket(metric, b) => buckets[*metric as usize].push((*b, n)),
                Part::Tokens(key, class) => {
                    match m.usage.last_mut() {
                        Some((k, counts)) if k == key => counts[*class as usize] += n,
                        _ => {
                            let mut counts = [0; 6];
                            counts[*class as usize] = n;
                            m.usage.push((key.clone(), counts));
                        }
                    }
                    cost.get_or_insert_default();
                }
                Part::Cost(class) => cost.get_or_insert_default().by_class[*class as usize] += n,
                Part::Unpriced(model) => cost
                    .get_or_insert_default()
                    .unpriced
                    .push((model.to_string(), n)),
                Part::Exemplar(_) => {}
                Part::Quality(field) => m.quality[usize::from(*field)] += n,
            }
        }
        if let Some(c) = cost.as_mut() {
            c.unpriced.retain(|(_, n)| *n != 0);
            c.unpriced.sort();
            c.unpriced.dedup_by(|b, a| {
                let same = a.0 == b.0;
                if same {
                    a.1 += b.1;
                }
                same
            });
        }
        m.cost = cost;
        m.usage.retain(|(_, counts)| counts.iter().any(|n| *n != 0));
        m.errors_by_type.retain(|(_, n)| *n != 0);
        let sum = |metric: Metric| summarize(buckets[metric as usize].iter().copied());
        m.latency = sum(Metric::Latency);
        m.ttft = sum(Metric::Ttft);
        m.tpot = sum(Metric::Tpot);
        m
    }

    /// Requests per minute over a window of `length_ms`.
    pub fn rpm(&self, length_ms: u64) -> f64 {
        self.totals.requests as f64 * 60_000.0 / length_ms as f64
    }

    /// Tokens (input + output) per minute over a window of `length_ms`.
    pub fn tpm(&self, length_ms: u64) -> f64 {
        (self.totals.input_tokens + self.totals.output_tokens) as f64 * 60_000.0 / length_ms as f64
    }

    /// Share of requests that ended in error.
    pub fn error_rate(&self) -> f64 {
        ratio(self.totals.errors, self.totals.requests)
    }

    /// Share of requests cut off by the token limit.
    pub fn truncation_rate(&self) -> f64 {
        ratio(self.totals.truncations, self.totals.requests)
    }

    /// Exact mean of a metric, µs.
    pub fn mean_us(&self, metric: Metric) -> Option<f64> {
        let t = &self.totals;
        let (sum, n) = match metric {
            Metric::Latency => (t.latency_sum_us, t.requests),
            Metric::Ttft => (t.ttft_sum_us, t.ttft_n),
            Metric::Tpot => (t.tpot_sum_us, t.tpot_n),
        };
        (n > 0).then(|| sum as f64 / n as f64)
    }

    /// The distribution of a metric.
    pub fn summary(&self, metric: Metric) -> Option<&Summary> {
        match metric {
            Metric::Latency => self.latency.as_ref(),
            Metric::Ttft => self.ttft.as_ref(),
            Metric::Tpot => self.tpot.as_ref(),
        }
    }
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The whole metrics path: facts → panes → views → one record per (view, series, window).
pub fn window_metrics<'scope>(
    facts: StreamVec<'scope, u64, SpanFacts>,
    views: &Views,
) -> VecCollection<'scope, u64, (WindowKey, WindowMetrics), isize> {
    metrics_of_windows(windows(facts, views))
}

/// [`window_metrics`] with cost: the windows' token parts priced by the live table of `board`
/// (see [`crate::cost::pricing`]). The facts must carry their usage
/// ([`SpanFacts::from_span_priced`]).
pub fn window_metrics_priced<'scope>(
    facts: StreamVec<'scope, u64, SpanFacts>,
    views: &Views,
    board: Arc<PriceBoard>,
) -> VecCollection<'scope, u64, (WindowKey, WindowMetrics), isize> {
    metrics_of_windows(priced(windows(facts, views), board))
}

/// The metrics `reduce` alone, over the output of [`crate::metrics::windows::windows`]: for a pipeline
/// that also feeds the windows to another consumer (e.g. [`crate::alerts::alerts`]) and so
/// builds them once.
pub fn metrics_of_windows<'scope>(
    windows: VecCollection<'scope, u64, (WindowKey, Part), i64>,
) -> VecCollection<'scope, u64, (WindowKey, WindowMetrics), isize> {
    windows.reduce_named("WindowMetrics", |_key, input, output| {
        let m = WindowMetrics::from_parts(input.iter().map(|(part, n)| (*part, *n)));
        if m.totals.requests > 0 {
            output.push((m, 1));
        }
    })
}
