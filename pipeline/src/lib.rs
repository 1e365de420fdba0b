//! glassbox: a Kafka-native streaming processor for LLM application spans.
//!
//! The binary (`glassbox`) is a thin CLI ([`cli`]) over this library. Its modules, in the order
//! a span meets them, each importing only those before it (no cycles):
//!
//! - [`config`]: the documented configuration, a leaf that imports nothing else of the crate.
//! - [`error`]: why the pipeline could not start or stopped.
//! - [`telemetry`]: the pipeline's own counters.
//! - [`kafka`]: admin (topics), the source with event-time watermarks, the outbox, offsets
//!   and commits.
//! - [`records`]: the metrics, quality and alert records, as the sinks carry them.
//! - [`sinks`]: the sink trait, delivery with the durable frontier, one module per destination.
//! - [`quality`]: the embedding models behind the scoring operator; [`pricing`]: the price
//!   table's reload watcher.
//! - [`worker`]: one timely worker, Kafka source → `glassbox_operators::graph` → sinks →
//!   probes → the commit points it deposits; [`run`]: start-up, the process's committer
//!   thread, and shutdown around the workers.
//! - [`loadgen`]: `glassbox loadgen`, the generator of `glassbox_support` published to Kafka,
//!   and [`demo`]: the self-contained demo.

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
pub mod registry;
pub mod run;
pub mod sinks;
pub mod telemetry;
pub mod worker;
