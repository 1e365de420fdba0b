//! The quality path's records as the sinks carry them: [`QualityRecord`] (one per view, series
//! and window, computed by `glassbox_operators::quality::windows`) and [`FlaggedRecord`] (an
//! answer with an unsupported sentence, on `quality.flagged_topic`, keyed by trace id).

use std::collections::BTreeMap;

use glassbox_operators::Dimensions;
pub use glassbox_operators::quality::scoring::{ScoredItem, Scores};
pub use glassbox_operators::quality::windows::QualityRecord;
use serde::Serialize;

use super::Record;

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
