//! glassbox's support crate: what the demo, the benches and the tests share, and nothing the
//! pipeline computes. [`loadgen`] is the deterministic synthetic span generator (structured
//! spans beside their JSON, RAG traces for the quality path).
//!
//! The `glassbox` binary depends on it for `glassbox demo` and `glassbox loadgen`; it has no
//! Kafka, server or test-framework dependency, so the binary carries only the generator. The
//! helpers that talk to the test servers stay in `glassbox-integration`.

pub mod broker;
pub mod loadgen;
