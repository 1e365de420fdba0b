//! `[quality]`: RAG faithfulness scoring and user feedback. The models are loaded by
//! `QualityConfig::scorer` (in `quality`, since loading them is I/O).

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[quality]`: RAG faithfulness scoring and user feedback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    /// Join retrievals and feedback with generations and score every RAG answer. Needs the
    /// embedding model (`integration/scripts/fetch-models.sh`).
    pub enabled: bool,
    /// Folder of the embedding model (`model.onnx`, `tokenizer.json`); `""`: the English
    /// default all-MiniLM-L6-v2 int8 under `$GLASSBOX_MODELS_DIR` (else
    /// `~/.cache/glassbox/models`).
    pub model_dir: String,
    /// Folder of a multilingual model (multilingual-e5-small, with the `"query: "` prefix) for
    /// Chinese answers; `""`: `multilingual-e5-small` under the models folder when it is
    /// installed there, else the English model scores every answer.
    pub chinese_model_dir: String,
    /// Scoring thresholds and penalty (`threshold_en`, `threshold_zh`, `penalty`, …).
    pub score: glassbox_quality::ScoreConfig,
    /// How long a trace waits for its spans, in event time from its first span (ms).
    pub trace_timeout_ms: u64,
    /// Most llm and retrieval spans kept per trace; later ones are dropped and counted.
    pub trace_max_spans: usize,
    /// Most chunks per scored answer (those of the retrievals that ended last).
    pub max_chunks_per_answer: usize,
    /// How long a generation is remembered for its feedback (ms).
    pub feedback_horizon_ms: u64,
    /// How long feedback waits for a generation that has not arrived yet (ms).
    pub feedback_wait_ms: u64,
    /// Feedback below this score is negative.
    pub negative_below: f64,
    /// Feedback labels that are negative (case-insensitive).
    pub negative_labels: Vec<String>,
    /// Scoring threads.
    pub threads: usize,
    /// Answers waiting for a scoring thread; beyond, a deterministic sample is scored.
    pub queue_capacity: usize,
    /// Longest text kept per query, answer or chunk (bytes).
    pub max_text_bytes: usize,
    /// Most chunks kept per retrieval span.
    pub max_chunks: usize,
    /// Where flagged (unfaithful) answers go.
    pub flagged_topic: String,
    /// Where quality records (per series and window) go.
    pub quality_topic: String,
    /// Put the least supported sentence's text into flagged records. Default `false`: no
    /// prompt or answer text leaves glassbox.
    pub text_in_outputs: bool,
}

impl Default for QualityConfig {
    fn default() -> Self {
        let feedback = glassbox_operators::FeedbackConfig::default();
        Self {
            enabled: false,
            model_dir: String::new(),
            chinese_model_dir: String::new(),
            score: glassbox_quality::ScoreConfig::default(),
            trace_timeout_ms: 30_000,
            trace_max_spans: glassbox_operators::TraceJoinConfig::default().max_spans_per_trace,
            max_chunks_per_answer: glassbox_operators::TraceJoinConfig::default()
                .max_chunks_per_item,
            feedback_horizon_ms: feedback.horizon_ms,
            feedback_wait_ms: feedback.wait_ms,
            negative_below: feedback.negative_below,
            negative_labels: feedback.negative_labels,
            threads: 1,
            queue_capacity: 256,
            max_text_bytes: 16 * 1024,
            max_chunks: 32,
            flagged_topic: "glassbox.flagged".into(),
            quality_topic: "glassbox.quality".into(),
            text_in_outputs: false,
        }
    }
}

impl QualityConfig {
    /// The feedback join's settings.
    pub fn feedback(&self) -> glassbox_operators::FeedbackConfig {
        glassbox_operators::FeedbackConfig {
            horizon_ms: self.feedback_horizon_ms,
            wait_ms: self.feedback_wait_ms,
            negative_below: self.negative_below,
            negative_labels: self.negative_labels.clone(),
        }
    }

    /// The decoder's text options.
    pub fn text(&self) -> glassbox_schemas::TextOptions {
        glassbox_schemas::TextOptions {
            keep_text: self.enabled,
            max_text_bytes: self.max_text_bytes,
            max_chunks: self.max_chunks,
        }
    }

    /// Checks the section (and, when enabled, that the models load); errors name the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, message: String| Err(ConfigError::Invalid { field, message });
        if let Err(e) = self.feedback().validate() {
            return bad("quality.feedback_wait_ms", e.to_string());
        }
        if let Err(e) = self.score.validate() {
            return bad("quality.score", e.to_string());
        }
        if self.trace_timeout_ms == 0 {
            return bad("quality.trace_timeout_ms", "must be positive".into());
        }
        if self.trace_max_spans == 0 {
            return bad("quality.trace_max_spans", "must be positive".into());
        }
        if self.max_chunks_per_answer == 0 {
            return bad("quality.max_chunks_per_answer", "must be positive".into());
        }
        if self.threads == 0 || self.queue_capacity == 0 {
            return bad(
                "quality.threads",
                "threads and queue_capacity must be positive".into(),
            );
        }
        if self.flagged_topic.trim().is_empty() || self.quality_topic.trim().is_empty() {
            return bad("quality.flagged_topic", "topics must not be empty".into());
        }
        Ok(())
    }
}
