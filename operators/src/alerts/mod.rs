//! The alerting path, on top of the windows.
//!
//! In data-flow order: [`rules`] is the rules file, the `when` expression language and its
//! figure registry (no dataflow); [`evaluate`] is the alerts operator that evaluates the rules
//! at every pane end, in event time, one lifecycle per (rule, group) and one [`AlertEvent`]
//! per transition. The operator's items are re-exported here
//! (`glassbox_operators::alerts::{alerts, AlertEvent}`).

pub mod evaluate;
pub mod rules;

pub use evaluate::*;
