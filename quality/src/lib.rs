//! Answer-quality scoring for glassbox (issue #6): sentence embeddings run locally with tract,
//! faithfulness of an answer to its retrieved chunks, grounding of the facts it states,
//! answer and context relevance, and the evaluation of all that on labelled cases.
//!
//! - [`embed`]: the ONNX embedder and its chunk cache;
//! - [`sentences`]: sentence splitting for English and Chinese;
//! - [`grounding`]: numbers, identifiers and names an answer states, and whether the chunks
//!   state them too;
//! - [`score`]: the per-answer scores and their formulas;
//! - [`eval`]: AUC and thresholds on a labelled JSONL file.

pub mod embed;

pub use embed::{EmbedError, Embedder, EmbedderConfig, Embedding, Pooling, cosine, models_dir};
pub mod grounding;
pub mod score;
pub mod sentences;

pub use score::{AnswerScore, Lang, ScoreConfig, ScoreError, Scorer, SentenceScore};
pub mod eval;

pub use eval::{EvalError, EvalReport, run_eval};
