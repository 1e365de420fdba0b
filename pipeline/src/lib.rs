//! glassbox: a Kafka-native streaming processor for LLM application spans.
//!
//! The binary (`glassbox`) is a thin CLI over this library: [`config`] is the documented
//! configuration, [`dataflow::run`] the pipeline, [`source`] the Kafka source with event-time
//! watermarks and offset commits, [`sink`] the durable sinks, [`loadgen`] the synthetic span
//! generator and [`demo`] the self-contained demo.

pub mod alerting;
pub mod cli;
pub mod config;
pub use config::secret;
pub mod dataflow;
pub mod demo;
pub mod loadgen;
pub mod offsets;
pub mod outbox;
pub mod pricing;
pub mod quality;
pub mod record;
pub mod sink;
pub mod source;
pub mod telemetry;
pub mod watermark;
