//! The quality path's edges in the pipeline: the models behind the scoring operator, the
//! spans the source hands to the path, and the flagged-answer record.
//!
//! The operators themselves (trace join, scoring, feedback, quality windows and parts) are
//! `glassbox_operators::quality`, re-exported here. This module adds what needs the model
//! runtime or the sinks: [`QualityConfig::scorer`] loads the embedding models and
//! [`ModelScorer`] puts them behind the operator's `AnswerScorer`; [`QualityInput`] is a span's
//! share for the path, split off by the Kafka source; [`FlaggedRecord`] is an answer with an
//! unsupported sentence, for `quality.flagged_topic`; and the sinks' `Record` impls of the
//! quality records.

use std::collections::BTreeMap;
use std::sync::Arc;

use glassbox_operators::Dimensions;
pub use glassbox_operators::quality::QualityInput;
pub use glassbox_operators::quality::parts::quality_parts;
pub use glassbox_operators::quality::scoring::{
    AnswerScorer, QualityCounters, ScoredItem, Scores, ScoringPool, score_items,
};
pub use glassbox_operators::quality::windows::{QualityFact, QualityRecord, quality_windows};
use serde::Serialize;

use crate::config::ConfigError;
pub use crate::config::QualityConfig;
use crate::sink::Record;

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

impl Record for QualityRecord {
    fn key(&self) -> &str {
        &self.key
    }

    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("quality records serialize")
    }
}

/// An answer flagged unfaithful, on `quality.flagged_topic`, keyed by trace id.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlaggedRecord {
    /// `1`.
    pub schema_version: u32,
    /// The trace.
    pub trace_id: String,
    /// The generation span.
    pub span_id: String,
    /// The retrieval spans it was scored against.
    pub retrieval_span_ids: Vec<String>,
    /// Series dimensions.
    pub series: BTreeMap<String, String>,
    /// The generation's start, ms.
    pub event_ms: u64,
    /// The scores (the least supported sentence's text only with `quality.text_in_outputs`).
    pub scores: Scores,
}

impl Record for FlaggedRecord {
    fn key(&self) -> &str {
        &self.trace_id
    }

    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("flagged records serialize")
    }
}

impl FlaggedRecord {
    /// The flagged record of `item`, if it is unfaithful; text kept only when `with_text`.
    pub fn of(item: &ScoredItem, dims: &Dimensions, with_text: bool) -> Option<Self> {
        if !item.scores.hallucination {
            return None;
        }
        let mut scores = item.scores.clone();
        if !with_text {
            scores.least_supported_text = None;
        }
        Some(Self {
            schema_version: 1,
            trace_id: item.trace_id.clone(),
            span_id: item.span_id.clone(),
            retrieval_span_ids: item.retrieval_span_ids.clone(),
            series: dims
                .names()
                .iter()
                .cloned()
                .zip(item.series.values().iter().cloned())
                .collect(),
            event_ms: item.event_ms,
            scores,
        })
    }
}
