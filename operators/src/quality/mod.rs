//! The quality path (issue #6): RAG answers scored off the metrics path, user feedback, and
//! their figures per series and window.
//!
//! ```text
//! spans ─┬─ llm + retrieval ─► trace_join ─► scoring ─┬─► windows ─► quality records
//!        │                                            ├─► parts ───► alert rules
//!        └─ feedback ───────► feedback ───────────────┘
//! ```
//!
//! In data-flow order: [`trace_join`] pairs each generation with the retrievals that fed it
//! into a [`trace_join::RagItem`]; [`scoring`] scores each item on a pool of threads behind a
//! bounded queue (the model is behind the [`scoring::AnswerScorer`] trait, so this crate needs
//! neither the model runtime nor I/O); [`feedback`] counts user feedback under the series of
//! the generation it rates; [`windows`] sums scores and feedback per (view, series, window)
//! into [`windows::QualityRecord`]s; [`parts`] turns the same facts into pane parts for the
//! alert rules.

pub mod feedback;
pub mod parts;
pub mod scoring;
pub mod trace_join;
pub mod windows;

/// A span's share for the quality path, split off by the source.
#[derive(Clone, Debug)]
pub enum QualityInput {
    /// A generation or retrieval, for the trace join.
    Trace(trace_join::TraceSpan),
    /// A feedback record or a generation, for the feedback join.
    Feedback(feedback::FeedbackInput),
}
