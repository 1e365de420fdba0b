//! Answer-quality scoring for glassbox (issue #6): sentence embeddings run locally with tract,
//! faithfulness of an answer to its retrieved chunks, grounding of the facts it states,
//! answer and context relevance, and the evaluation of all that on labelled cases.
//!
//! - [`embed`]: the ONNX embedder and its chunk cache;
//! - [`sentences`]: sentence splitting for English and Chinese;
//! - [`grounding`]: numbers, dates, identifiers and names an answer states, and whether the
//!   chunks state them too;
//! - [`polarity`]: answer clauses that flip the negation of the chunk clause they copy;
//! - [`score`]: the per-answer scores and their formulas;
//! - [`eval`]: AUC and thresholds on a labelled JSONL file.
//!
//! Models are installed by `integration/scripts/fetch-models.sh` into [`models_dir`].
//! Embedding is the expensive step (milliseconds per sentence): keep scoring off the metrics
//! path, e.g. on its own thread fed by a bounded queue.
//!
//! ```no_run
//! use std::sync::Arc;
//! use glassbox_quality::{Embedder, EmbedderConfig, ScoreConfig, Scorer, models_dir};
//!
//! let dir = models_dir();
//! let english = Arc::new(Embedder::new(EmbedderConfig::minilm(&dir))?);
//! let chinese = Arc::new(Embedder::new(EmbedderConfig::e5_small(&dir))?);
//! let scorer = Scorer::new(english, ScoreConfig::default())?.with_chinese(chinese);
//!
//! let chunks = ["Refunds are accepted within 14 days of purchase."];
//! let s = scorer.score("How long can I return items?", &chunks, "Within 30 days.")?;
//! assert!(s.hallucination);
//! println!("faithfulness {:.2} (min {:.2}), relevance {:.2}", s.faithfulness,
//!     s.faithfulness_min, s.answer_relevance);
//! for sentence in &s.sentences {
//!     for item in &sentence.ungrounded {
//!         println!("ungrounded {:?}: {}", item.kind, item.text); // Number: 30 days
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod embed;
pub mod eval;
pub mod grounding;
pub mod polarity;
pub mod score;
pub mod sentences;

pub use embed::{EmbedError, Embedder, EmbedderConfig, Embedding, Pooling, cosine, models_dir};
pub use eval::{EvalError, EvalReport, run_eval};
pub use score::{AnswerScore, Lang, ScoreConfig, ScoreError, Scorer, SentenceScore};

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn scorer_can_be_shared_between_threads() {
        send_sync::<crate::Scorer>();
        send_sync::<crate::Embedder>();
    }
}
