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
//! - [`figures`] and [`sketch`]: the additive difference type and the quantile sketch that
//!   the operators above carry.
//!
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
pub mod figures;
pub mod metrics;
pub mod panes;
pub mod rules;
pub mod sketch;
pub mod views;
pub mod windows;

pub use facts::{Dimensions, Series, SpanFacts};
pub use figures::Figures;
pub use metrics::{WindowMetrics, metrics_of_windows, window_metrics};
pub use sketch::{Metric, Summary};
pub use views::{View, Views};
