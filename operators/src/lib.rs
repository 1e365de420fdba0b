//! glassbox's dataflow operators: what glassbox computes, grouped by capability, no I/O.
//!
//! In the order data flows through them:
//!
//! - [`metrics`]: a decoded span reduced to its facts, folded into panes and windows of every
//!   view, and reduced into one [`WindowMetrics`] record per (view, series, window).
//! - [`cost`]: the price table, and the windows' token parts joined with it (live re-pricing).
//! - [`quality`] (issue #6), beside the metrics: the trace join, the scoring operator, the
//!   feedback join, the quality windows and the parts the alert rules read.
//! - [`alerts`], on top of the windows: the rule language, and the operator that evaluates it
//!   at every pane end.
//!
//! - [`graph`]: all of the above assembled from input streams and a [`graph::Plan`] into the
//!   output streams; what the pipeline, the benches and the demo run.
//!
//! Every timestamp in these operators is event time in milliseconds since the Unix epoch.

pub mod alerts;
pub mod cost;
pub mod graph;
pub mod metrics;
pub mod quality;

pub use metrics::facts::{
    CostKeying, Dimensions, PriceKey, Series, SpanFacts, SpanUsage, TokenClass,
};
pub use metrics::figures::Figures;
pub use metrics::sketch::{Metric, Summary};
pub use metrics::views::{View, Views};
pub use metrics::{WindowMetrics, metrics_of_windows, window_metrics};
pub use quality::feedback::{
    FeedbackConfig, FeedbackCounters, FeedbackFact, FeedbackFigures, FeedbackInput, feedback_join,
};
pub use quality::trace_join::{RagItem, TraceJoinConfig, TraceJoinCounters, TraceSpan, trace_join};
