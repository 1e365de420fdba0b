//! The records glassbox writes, as the sinks carry them, in data-flow order: [`metrics`] (one
//! per view, series and window, with [`metrics::Keyed`], the record with its series key),
//! [`quality`] (quality records and flagged answers) and [`alerts`] (alert events). Each has a
//! Kafka key and a JSON form ([`Record`]). The series key is `name=value,…` over the configured
//! dimensions, the same for every record of a series.

pub mod alerts;
pub mod metrics;
pub mod quality;

pub use metrics::Keyed;

/// What sinks carry: window records ([`Keyed`]) or alert events. Each has a Kafka key and a
/// JSON form (what a dead letter or a Kafka record holds).
pub trait Record: Send + Sync + std::fmt::Debug + 'static {
    /// The Kafka key.
    fn key(&self) -> &str;
    /// The JSON payload.
    fn to_json(&self) -> Vec<u8>;
}
