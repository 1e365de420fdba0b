//! The cost path: what a model call costs, and the windows' cost under a live price table.
//!
//! In data-flow order: [`prices`] is the price table (LiteLLM JSON plus glassbox's TOML
//! overlay), the span keying and the exact integer money (pico-USD) a span's tokens cost;
//! [`pricing`] joins the windows' token parts with the table published on a
//! [`pricing::PriceBoard`], so that cost follows a table that changes while windows are open.
//! The table's items are re-exported here (`glassbox_operators::cost::PriceTable`).

pub mod prices;
pub mod pricing;

pub use prices::*;
