//! glassbox's dataflow operators: what glassbox computes, one operator a file, no I/O.
//!
//! The metrics path, in the order data flows through it:
//!
//! - [`facts`]: a decoded span reduced to its series and the figures the metrics need.
//! - [`panes`] and [`views`]: the tumbling panes every window is made of, and the window views
//!   (tumbling, sliding) over them.
//! - [`windows`]: spans folded into panes and panes into the windows of every view, each window
//!   inserted when it closes and retracted one pane later so its state compacts away.
//! - [`metrics`]: one `reduce` per (view, series, window) that turns additive figures and
//!   DDSketch bucket counts into a [`metrics::WindowMetrics`] record.
//! - [`pricing`] (with [`cost`]): the windows' token sums joined with the live price table.
//! - [`figures`] and [`sketch`]: the additive difference type and the quantile sketch that
//!   the operators above carry.
//!
//! The quality path (issue #6), beside it:
//!
//! - [`trace_join`]: each generation paired with the retrievals that fed it, per trace, into a
//!   [`trace_join::RagItem`] carrying query, chunks and answer for the scorers.
//! - [`feedback`]: user feedback counted under the series of the generation it rates.
//!
//! The alerting path, on top of the windows:
//!
//! - [`rules`]: the rules file, the `when` expression language and its figure registry.
//! - [`alerts`]: rules evaluated at every pane end, one lifecycle per (rule, group), one
//!   [`alerts::AlertEvent`] per transition.
//!
//! Every timestamp in these operators is event time in milliseconds since the Unix epoch.

pub mod alerts;
pub mod cost;
pub mod facts;
pub mod feedback;
pub mod figures;
pub mod metrics;
pub mod panes;
pub mod pricing;
pub mod rules;
pub mod sketch;
pub mod trace_join;
pub mod views;
pub mod windows;

pub use facts::{CostKeying, Dimensions, PriceKey, Series, SpanFacts, SpanUsage, TokenClass};
pub use feedback::{
    FeedbackConfig, FeedbackCounters, FeedbackFact, FeedbackFigures, FeedbackInput, feedback_join,
};
pub use figures::Figures;
pub use metrics::{WindowMetrics, metrics_of_windows, window_metrics};
pub use sketch::{Metric, Summary};
pub use trace_join::{RagItem, TraceJoinConfig, TraceJoinCounters, TraceSpan, trace_join};
pub use views::{View, Views};
