//! The quality path's edges in the pipeline: the models behind the scoring operator.
//!
//! The operators themselves (trace join, scoring, feedback, quality windows and parts) are
//! `glassbox_operators::quality`, re-exported here; its records are [`crate::records::quality`].
//! This module adds what needs the model runtime: [`QualityConfig::scorer`] loads the embedding
//! models and [`ModelScorer`] puts them behind the operator's `AnswerScorer`.

use std::sync::Arc;

pub use glassbox_operators::quality::QualityInput;
pub use glassbox_operators::quality::parts::quality_parts;
pub use glassbox_operators::quality::scoring::{
    AnswerScorer, QualityCounters, ScoredItem, Scores, ScoringPool, score_items,
};
pub use glassbox_operators::quality::windows::{QualityFact, QualityRecord, quality_windows};

use crate::config::ConfigError;
pub use crate::config::QualityConfig;

impl QualityConfig {
    /// Loads the models and builds the scorer; the error names the field and the file.
    pub fn scorer(&self) -> Result<glassbox_quality::Scorer, ConfigError> {
        let english = if self.model_dir.is_empty() {
            glassbox_quality::EmbedderConfig::minilm(glassbox_quality::models_dir())
        } else {
            glassbox_quality::EmbedderConfig::from_dir(&self.model_dir)
        };
        let embedder =
            glassbox_quality::Embedder::new(english).map_err(|e| ConfigError::Invalid {
                field: "quality.model_dir",
                message: format!("{e} (run integration/scripts/fetch-models.sh)"),
            })?;
        let mut scorer = glassbox_quality::Scorer::new(Arc::new(embedder), self.score.clone())
            .map_err(|e| ConfigError::Invalid {
                field: "quality.score",
                message: e.to_string(),
            })?;
        let installed = glassbox_quality::models_dir().join(glassbox_quality::embed::E5_DIR);
        let chinese_dir = if !self.chinese_model_dir.is_empty() {
            Some(std::path::PathBuf::from(&self.chinese_model_dir))
        } else {
            installed.join("model.onnx").exists().then_some(installed)
        };
        if let Some(dir) = chinese_dir {
            let mut e5 = glassbox_quality::EmbedderConfig::from_dir(&dir);
            e5.prefix = "query: ".into();
            e5.max_length = 512;
            let chinese =
                glassbox_quality::Embedder::new(e5).map_err(|e| ConfigError::Invalid {
                    field: "quality.chinese_model_dir",
                    message: e.to_string(),
                })?;
            scorer = scorer.with_chinese(Arc::new(chinese));
        }
        Ok(scorer)
    }
}

/// The embedding models' scorer as the scoring operator's [`AnswerScorer`] (a newtype, since
/// both the trait and the scorer are other crates').
pub struct ModelScorer(pub glassbox_quality::Scorer);

impl AnswerScorer for ModelScorer {
    fn score(
        &self,
        query: Option<&str>,
        chunks: &[String],
        answer: &str,
    ) -> Result<Scores, String> {
        let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let s = glassbox_quality::Scorer::score(&self.0, query.unwrap_or(""), &chunks, answer)
            .map_err(|e| e.to_string())?;
        let least = s
            .sentences
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.support.total_cmp(&b.1.support))
            .map(|(i, _)| i);
        Ok(Scores {
            lang: s.lang.as_str().to_owned(),
            faithfulness: s.faithfulness,
            faithfulness_min: s.faithfulness_min,
            hallucination: s.hallucination,
            answer_relevance: query.map(|_| s.answer_relevance),
            context_relevance: query.map(|_| s.context_relevance),
            least_supported: least,
            least_supported_text: least.map(|i| s.sentences[i].text.clone()),
            ungrounded: s
                .sentences
                .iter()
                .flat_map(|x| {
                    x.ungrounded
                        .iter()
                        .map(|u| format!("{:?}", u.kind).to_lowercase())
                })
                .collect(),
        })
    }
}
