//! glassbox: a Kafka-native streaming processor for LLM application spans.
//!
//! The binary (`glassbox`) is a thin CLI over this library: [`config`] is the documented
//! configuration, [`dataflow::run`] the pipeline, [`source`] the Kafka source with event-time
//! watermarks and offset commits, [`sink`] the durable sinks, [`loadgen`] the synthetic span
//! generator and [`demo`] the self-contained demo.

pub mod cli;
pub mod config;
pub use config::secret;
pub mod demo;
pub mod error;
pub mod kafka;
pub mod loadgen;
pub mod pricing;
pub mod quality;
pub mod records;
pub mod run;
pub mod sinks;
pub mod telemetry;
pub mod worker;
