//! The whole computation, in one function: input streams and a [`Plan`] in, output streams
//! out, no I/O.
//!
//! ```text
//! facts ─► windows (cardinality) ─► (priced) ─┬─► window_metrics ─────────────────► metrics
//!                               └─► alerts ◄── quality parts (rules on quality figures)
//! quality inputs ─┬─ traces ─► trace_join ─► score_items ─┬─► quality_windows ─► quality
//!                 │                                      └──────────────────► scored
//!                 └─ feedback ─► feedback_join ──────────┘
//! ```
//!
//! The pipeline feeds [`build`] from the Kafka source and hands its outputs to the sinks; the
//! benches feed it from memory; tests feed it from an input handle and `capture` its outputs,
//! like every operator. Which parts exist is the plan's: cost when it has a price board,
//! alerts when it has rules, the quality path when it has a [`QualityPlan`] (and then the
//! caller passes the quality inputs).
//!
//! # Time contract
//! Every operator's, composed: inputs at times not after their event time (the source's
//! watermark), each output at the time its operator documents. The metrics path never waits for
//! the quality path; alerts wait for it only when a rule reads a quality figure.

use std::sync::Arc;

use differential_dataflow::VecCollection;
use timely::dataflow::StreamVec;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::vec::{Map, Partition};

use crate::alerts::rules::Rules;
use crate::alerts::{AlertEvent, alerts};
use crate::cost::pricing::{PriceBoard, priced};
use crate::metrics::cardinality::{CardinalityCounters, CardinalityLimits};
use crate::metrics::views::WindowKey;
use crate::metrics::windows::windows_limited;
use crate::quality::QualityInput;
use crate::quality::feedback::{FeedbackConfig, FeedbackCounters, feedback_join};
use crate::quality::parts::quality_parts;
use crate::quality::scoring::{QualityCounters, ScoredItem, ScoringPool, score_items};
use crate::quality::trace_join::{TraceJoinConfig, TraceJoinCounters, trace_join};
use crate::quality::windows::{QualityFact, QualityRecord, quality_windows};
use crate::{Dimensions, SpanFacts, Views, WindowMetrics, metrics_of_windows};

/// What to compute.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The window views (and their pane width).
    pub views: Views,
    /// The live price table: windows are priced (and rules may read `cost_usd`) when set.
    pub prices: Option<Arc<PriceBoard>>,
    /// The alert rules: no alerts without them.
    pub rules: Option<Arc<Rules>>,
    /// The quality path: off without it.
    pub quality: Option<QualityPlan>,
    /// The per-dimension value limits of every window, and what they fold.
    pub cardinality: (CardinalityLimits, Arc<CardinalityCounters>),
}

impl Plan {
    /// Metrics over `views` only: no cost, no alerts, no quality.
    pub fn metrics(views: Views) -> Self {
        Self {
            views,
            prices: None,
            rules: None,
            quality: None,
            cardinality: Default::default(),
        }
    }
}

/// The quality path's settings and its process-wide parts (the scoring threads, the counters).
#[derive(Clone, Debug)]
pub struct QualityPlan {
    /// The series dimensions, for the quality records' labels and key.
    pub dims: Dimensions,
    /// How long a trace waits for its spans.
    pub trace_join: TraceJoinConfig,
    /// The feedback join's settings.
    pub feedback: FeedbackConfig,
    /// The scoring threads.
    pub pool: Arc<ScoringPool>,
    /// The scoring counters.
    pub counters: Arc<QualityCounters>,
    /// The trace join's counters.
    pub joins: Arc<TraceJoinCounters>,
    /// The feedback join's counters.
    pub feedback_counters: Arc<FeedbackCounters>,
}

/// The input streams.
pub struct Inputs<'scope> {
    /// Every model call's facts, for the windows.
    pub facts: StreamVec<'scope, u64, SpanFacts>,
    /// The spans of the quality path (generations, retrievals, feedback); required when the
    /// plan has a quality path, ignored otherwise.
    pub quality: Option<StreamVec<'scope, u64, QualityInput>>,
}

/// The output streams.
pub struct Outputs<'scope> {
    /// One record per (view, series, window), inserted when the window closes and retracted
    /// one pane later (see [`crate::metrics::windows`]).
    pub metrics: VecCollection<'scope, u64, (WindowKey, WindowMetrics), isize>,
    /// One event per alert transition, with rules.
    pub alerts: Option<StreamVec<'scope, u64, AlertEvent>>,
    /// Every scored answer, with the quality path.
    pub scored: Option<StreamVec<'scope, u64, ScoredItem>>,
    /// One quality record per (view, series, window) with data, with the quality path.
    pub quality: Option<StreamVec<'scope, u64, QualityRecord>>,
}

/// Builds the computation of `plan` over `inputs`; see the module doc.
///
/// # Panics
/// When the plan has a quality path but `inputs.quality` is `None` (a caller's bug).
pub fn build<'scope>(inputs: Inputs<'scope>, plan: &Plan) -> Outputs<'scope> {
    let Inputs { facts, quality } = inputs;
    let views = &plan.views;
    // The windows are built once; metrics and alerts both read them (priced when cost is on,
    // so that rules can use `cost_usd`).
    let (limits, counters) = &plan.cardinality;
    let windows = windows_limited(facts, views, limits, counters.clone());
    let parts = match &plan.prices {
        Some(board) => priced(windows, board.clone()),
        None => windows,
    };
    let metrics = metrics_of_windows(parts.clone());
    let quality = plan.quality.as_ref().map(|q| {
        let inputs = quality.expect("a plan with a quality path needs the quality inputs");
        quality_path(inputs, q, views)
    });
    let alerts = plan.rules.as_ref().map(|rules| {
        // Rules on quality figures also read the quality path's parts; they then wait for it
        // (the trace timeout and the scoring), the others do not.
        let input = match &quality {
            Some((_, _, facts)) if rules.uses_quality() => {
                parts.concat(quality_parts(facts.clone(), views.pane_ms, rules.pane_view))
            }
            _ => parts,
        };
        alerts(input, rules)
    });
    let (scored, records) = match quality {
        Some((scored, records, _)) => (Some(scored), Some(records)),
        None => (None, None),
    };
    Outputs {
        metrics,
        alerts,
        scored,
        quality: records,
    }
}

/// Quality inputs → trace join → scoring, and with the feedback join → quality windows.
/// Returns the scored answers, the quality records and the facts the windows summed.
fn quality_path<'scope>(
    inputs: StreamVec<'scope, u64, QualityInput>,
    plan: &QualityPlan,
    views: &Views,
) -> (
    StreamVec<'scope, u64, ScoredItem>,
    StreamVec<'scope, u64, QualityRecord>,
    StreamVec<'scope, u64, QualityFact>,
) {
    let mut parts = inputs
        .partition(2, |x| match x {
            QualityInput::Trace(_) => (0, x),
            QualityInput::Feedback(_) => (1, x),
        })
        .into_iter();
    let traces = parts.next().expect("two parts").flat_map(|x| match x {
        QualityInput::Trace(t) => Some(t),
        QualityInput::Feedback(_) => None,
    });
    let feedback = parts.next().expect("two parts").flat_map(|x| match x {
        QualityInput::Feedback(f) => Some(f),
        QualityInput::Trace(_) => None,
    });
    let items = trace_join(traces, &plan.trace_join, plan.joins.clone());
    let scored = score_items(items, plan.pool.clone(), plan.counters.clone());
    let feedback = feedback_join(feedback, &plan.feedback, plan.feedback_counters.clone());
    let facts = scored
        .clone()
        .map(QualityFact::Scored)
        .concat(feedback.map(QualityFact::Feedback));
    let records = quality_windows(facts.clone(), views, &plan.dims, plan.counters.clone());
    (scored, records, facts)
}
