//! The metrics path: a decoded span to the metrics of every window of every view.
//!
//! In data-flow order: [`facts`] reduces a decoded span to its series and the figures the
//! metrics need; [`panes`] folds them into the tumbling panes every window is made of, and
//! [`views`] says which panes make which window (tumbling, sliding); [`windows`] is the
//! operator that turns span facts into the parts of every window, each window inserted when it
//! closes and retracted one pane later so its state compacts away; [`mod@window_metrics`] reduces
//! each (view, series, window) into one [`WindowMetrics`] record. [`figures`] (the additive
//! difference type) and [`sketch`] (the retractable DDSketch) are what the operators above
//! carry. [`cardinality`] folds the values of a dimension over its limit into `__other__`,
//! pane by pane as the windows operator closes them, with every total kept.

pub mod cardinality;
pub mod facts;
pub mod figures;
pub mod panes;
pub mod sketch;
pub mod views;
pub mod window_metrics;
pub mod windows;

pub use window_metrics::*;
