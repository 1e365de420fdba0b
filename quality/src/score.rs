//! Scores of one RAG answer: faithfulness to the retrieved chunks, hallucination, answer
//! relevance and context relevance.
//!
//! With `e(x)` the L2-normalised embedding of `x` ([`crate::embed`]) and `cos(a, b) = e(a)·e(b)`:
//!
//! ```text
//! sentences   s_1..s_n = units(answer, min_words)            (crate::sentences: fragments
//!                                                             like "Yes." join a neighbour)
//! evidence    E = chunks ∪ sentences of each chunk (when chunk_sentences, the default)
//! cosine_i    = max_{x ∈ E} cos(s_i, x)                       (0 when there are no chunks)
//! ungrounded_i = numbers, dates, identifiers, names of s_i not stated by the chunks
//!                (crate::grounding), plus clauses of s_i whose negation differs from the
//!                chunk clause they copy (crate::polarity, when polarity_check)
//! support_i   = clamp(cosine_i − penalty · min(|ungrounded_i|, max_penalized), −1, 1)
//! unsupported_i ⇔ support_i < threshold(lang)
//!
//! faithfulness      = mean_i support_i      faithfulness_min = min_i support_i
//! cosine_mean       = mean_i cosine_i       cosine_min       = min_i cosine_i   (no grounding)
//! hallucination     ⇔ ∃ i: unsupported_i
//! answer_relevance  = cos(query, answer)
//! context_relevance = mean_j cos(query, chunk_j), context_relevance_max = max_j cos(query, chunk_j)
//! ```
//!
//! An answer without a sentence (empty, or punctuation only) has faithfulness 1 and no
//! hallucination: it claims nothing. Relevance scores are 0 when query, answer or chunks are empty.
//!
//! `lang` is [`Lang::Zh`] when the answer has at least as many CJK ideographs as Latin letters / 4
//! — i.e. Chinese text with some English terms stays Chinese — else [`Lang::En`]. The Chinese
//! model is used for Chinese answers when one is configured, else the default one.
//!
//! Determinism: every text's embedding depends on the text alone (batch size 1, see
//! [`crate::EmbedderConfig::batch_size`]), sums run in a fixed order, so identical input gives
//! identical scores, cached chunks or not.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::embed::{EmbedError, Embedder, Embedding};
use crate::grounding::{Evidence, Item};
use crate::polarity::Polarity;
use crate::sentences;

/// The language an answer is scored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// Chinese when CJK ideographs ≥ Latin letters / 4, else English.
    pub fn detect(text: &str) -> Lang {
        let cjk = text
            .chars()
            .filter(|&c| sentences::is_cjk(c) && c.is_alphabetic())
            .count();
        let latin = text.chars().filter(char::is_ascii_alphabetic).count();
        if cjk > 0 && cjk * 4 >= latin {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    /// `"en"` or `"zh"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Scoring knobs. Thresholds depend on the embedding model: MiniLM cosines spread over
/// [0, 1], e5 cosines bunch in [0.7, 1]. Calibrate with [`crate::eval::run_eval`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfig {
    /// A sentence of an English answer is unsupported below this support. Default 0.70
    /// (all-MiniLM-L6-v2: max Youden's J on the 80 English answers of
    /// `testdata/faithfulness_cases.jsonl`; a small set, recalibrate on your own data).
    #[serde(default = "default_threshold_en")]
    pub threshold_en: f32,
    /// A sentence of a Chinese answer is unsupported below this support. Default 0.97
    /// (multilingual-e5-small, whose cosines bunch in [0.9, 1]: max Youden's J on the 64
    /// Chinese answers of `testdata/faithfulness_cases.jsonl`). Wrong for any other model.
    #[serde(default = "default_threshold_zh")]
    pub threshold_zh: f32,
    /// Support lost per ungrounded item. Default 0.2 (on the labelled set, English AUC rises
    /// from 0.72 at 0 to 0.82 at 0.2 and stays there; Chinese is flat above 0.05).
    #[serde(default = "default_penalty")]
    pub penalty: f32,
    /// At most this many ungrounded items count per sentence. Default 3.
    #[serde(default = "default_max_penalized")]
    pub max_penalized: usize,
    /// Answer sentences shorter than this many words join a neighbour (CJK characters count
    /// half). Default 3.
    #[serde(default = "default_min_words")]
    pub min_words: usize,
    /// Compare answer sentences with each chunk sentence as well as whole chunks. Default true.
    #[serde(default = "default_true")]
    pub chunk_sentences: bool,
    /// Count a clause that flips the negation of the chunk clause it copies as an ungrounded
    /// item ([`crate::polarity`]). Default true.
    #[serde(default = "default_true")]
    pub polarity_check: bool,
    /// Accept facts stated by the question as grounded (the answer may repeat them).
    /// Default true.
    #[serde(default = "default_true")]
    pub ground_in_query: bool,
}

fn default_threshold_en() -> f32 {
    0.70
}
fn default_threshold_zh() -> f32 {
    0.97
}
fn default_penalty() -> f32 {
    0.2
}
fn default_max_penalized() -> usize {
    3
}
fn default_min_words() -> usize {
    3
}
fn default_true() -> bool {
    true
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            threshold_en: default_threshold_en(),
            threshold_zh: default_threshold_zh(),
            penalty: default_penalty(),
            max_penalized: default_max_penalized(),
            min_words: default_min_words(),
            chunk_sentences: true,
            polarity_check: true,
            ground_in_query: true,
        }
    }
}

impl ScoreConfig {
    /// The unsupported-sentence threshold for `lang`.
    pub fn threshold(&self, lang: Lang) -> f32 {
        match lang {
            Lang::En => self.threshold_en,
            Lang::Zh => self.threshold_zh,
        }
    }

    /// A sentence's support: `clamp(cosine − penalty · min(ungrounded, max_penalized), −1, 1)`.
    pub fn support(&self, cosine: f32, ungrounded: usize) -> f32 {
        let n = ungrounded.min(self.max_penalized) as f32;
        (cosine - self.penalty * n).clamp(-1.0, 1.0)
    }

    /// Rejects values outside their range, naming the field.
    pub fn validate(&self) -> Result<(), ScoreError> {
        for (field, v) in [
            ("threshold_en", self.threshold_en),
            ("threshold_zh", self.threshold_zh),
        ] {
            if !(-1.0..=1.0).contains(&v) {
                return Err(ScoreError::Config {
                    field,
                    reason: format!("{v} is outside [-1, 1]"),
                });
            }
        }
        if !(0.0..=2.0).contains(&self.penalty) {
            return Err(ScoreError::Config {
                field: "penalty",
                reason: format!("{} is outside [0, 2]", self.penalty),
            });
        }
        Ok(())
    }
}

/// What can go wrong scoring.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("score config: `{field}` {reason}")]
    Config { field: &'static str, reason: String },
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// One answer sentence and how well the chunks support it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentenceScore {
    pub text: String,
    /// Highest cosine to a chunk or chunk sentence.
    pub cosine: f32,
    /// Index of the chunk holding that best match (`None` without chunks).
    pub best_chunk: Option<usize>,
    /// Facts of the sentence the chunks do not state.
    pub ungrounded: Vec<Item>,
    /// `cosine − penalty · min(|ungrounded|, max_penalized)`, clamped to [−1, 1].
    pub support: f32,
    /// `support < threshold(lang)`.
    pub unsupported: bool,
}

/// All scores of one answer (formulas in the module docs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerScore {
    pub lang: Lang,
    pub faithfulness: f32,
    pub faithfulness_min: f32,
    pub cosine_mean: f32,
    pub cosine_min: f32,
    pub hallucination: bool,
    pub answer_relevance: f32,
    pub context_relevance: f32,
    pub context_relevance_max: f32,
    pub sentences: Vec<SentenceScore>,
}

/// Scores answers. Cheap to share: `&self` methods, embedders behind `Arc`.
#[derive(Debug, Clone)]
pub struct Scorer {
    default: Arc<Embedder>,
    chinese: Option<Arc<Embedder>>,
    config: ScoreConfig,
}

impl Scorer {
    /// A scorer using `embedder` for every language.
    pub fn new(embedder: Arc<Embedder>, config: ScoreConfig) -> Result<Self, ScoreError> {
        config.validate()?;
        Ok(Scorer {
            default: embedder,
            chinese: None,
            config,
        })
    }

    /// Uses `embedder` (e.g. multilingual-e5-small) for Chinese answers.
    pub fn with_chinese(mut self, embedder: Arc<Embedder>) -> Self {
        self.chinese = Some(embedder);
        self
    }

    /// The config in use.
    pub fn config(&self) -> &ScoreConfig {
        &self.config
    }

    /// The embedder that scores answers in `lang`.
    pub fn embedder(&self, lang: Lang) -> &Arc<Embedder> {
        match (lang, &self.chinese) {
            (Lang::Zh, Some(e)) => e,
            _ => &self.default,
        }
    }

    /// Scores `answer` to `query` given the retrieved `chunks`. Chunks (and their sentences)
    /// go through the embedder's cache; query and answer do not.
    pub fn score<S: AsRef<str>>(
        &self,
        query: &str,
        chunks: &[S],
        answer: &str,
    ) -> Result<AnswerScore, ScoreError> {
        let lang = Lang::detect(answer);
        let embedder = self.embedder(lang);
        let chunks: Vec<&str> = chunks.iter().map(AsRef::as_ref).collect();

        // Evidence texts: each chunk, then its sentences; `owner` maps back to the chunk.
        let mut evidence: Vec<&str> = Vec::new();
        let mut owner: Vec<usize> = Vec::new();
        let mut whole: Vec<usize> = Vec::new();
        for (j, chunk) in chunks.iter().enumerate() {
            if chunk.trim().is_empty() {
                continue;
            }
            whole.push(evidence.len());
            evidence.push(chunk);
            owner.push(j);
            if self.config.chunk_sentences {
                let parts = sentences::split(chunk);
                if parts.len() > 1 {
                    for p in parts {
                        evidence.push(p);
                        owner.push(j);
                    }
                }
            }
        }
        let evidence_vecs = embedder.embed_cached(&evidence)?;

        let answer_sentences = sentences::units(answer, self.config.min_words);
        // Query, answer and its sentences, each distinct text embedded once (a one-sentence
        // answer is its own sentence).
        let mut own: Vec<&str> = vec![query, answer.trim()];
        own.extend(&answer_sentences);
        let mut distinct: Vec<&str> = Vec::new();
        let slot: Vec<usize> = own
            .iter()
            .map(|t| {
                distinct.iter().position(|d| d == t).unwrap_or_else(|| {
                    distinct.push(t);
                    distinct.len() - 1
                })
            })
            .collect();
        let vecs = embedder.embed_batch(&distinct)?;
        let own_vecs: Vec<&Vec<f32>> = slot.iter().map(|&k| &vecs[k]).collect();
        let (query_vec, answer_vec, sentence_vecs) = (own_vecs[0], own_vecs[1], &own_vecs[2..]);

        let mut grounding_texts = chunks.clone();
        if self.config.ground_in_query {
            grounding_texts.push(query);
        }
        let facts = Evidence::new(&grounding_texts);
        let polarity = self.config.polarity_check.then(|| Polarity::new(&chunks));
        let threshold = self.config.threshold(lang);
        let mut scored = Vec::with_capacity(answer_sentences.len());
        for (text, v) in answer_sentences.iter().zip(sentence_vecs) {
            let (cosine, best_chunk) = best_match(v, &evidence_vecs, &owner);
            let mut ungrounded = facts.ungrounded(text);
            if let Some(p) = &polarity {
                ungrounded.extend(
                    p.conflicts(text)
                        .iter()
                        .map(|c| Item::polarity(&c.answer_clause, &c.chunk_clause)),
                );
            }
            let support = self.config.support(cosine, ungrounded.len());
            scored.push(SentenceScore {
                text: text.to_string(),
                cosine,
                best_chunk,
                ungrounded,
                support,
                unsupported: support < threshold,
            });
        }

        let chunk_cos: Vec<f32> = whole
            .iter()
            .map(|&k| dot(query_vec, &evidence_vecs[k]))
            .collect();
        let nonempty = |s: &str| !s.trim().is_empty();
        let relevant = nonempty(query);
        Ok(AnswerScore {
            lang,
            faithfulness: mean(scored.iter().map(|s| s.support)).unwrap_or(1.0),
            faithfulness_min: min(scored.iter().map(|s| s.support)).unwrap_or(1.0),
            cosine_mean: mean(scored.iter().map(|s| s.cosine)).unwrap_or(1.0),
            cosine_min: min(scored.iter().map(|s| s.cosine)).unwrap_or(1.0),
            hallucination: scored.iter().any(|s| s.unsupported),
            answer_relevance: if relevant && nonempty(answer) {
                dot(query_vec, answer_vec)
            } else {
                0.0
            },
            context_relevance: if relevant {
                mean(chunk_cos.iter().copied()).unwrap_or(0.0)
            } else {
                0.0
            },
            context_relevance_max: if relevant {
                max(chunk_cos.iter().copied()).unwrap_or(0.0)
            } else {
                0.0
            },
            sentences: scored,
        })
    }
}

/// Highest cosine of `v` to the evidence vectors and the chunk that holds it. Ties keep the
/// first, so the result does not depend on anything but the input order.
fn best_match(v: &[f32], evidence: &[Embedding], owner: &[usize]) -> (f32, Option<usize>) {
    let mut best = (0.0f32, None);
    for (e, &j) in evidence.iter().zip(owner) {
        let c = dot(v, e);
        if best.1.is_none() || c > best.0 {
            best = (c, Some(j));
        }
    }
    best
}

/// Dot product = cosine for normalised vectors; falls back to cosine when not normalised.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    crate::embed::cosine(a, b)
}

fn mean(it: impl Iterator<Item = f32>) -> Option<f32> {
    let (mut sum, mut n) = (0f64, 0usize);
    for x in it {
        sum += x as f64;
        n += 1;
    }
    (n > 0).then(|| (sum / n as f64) as f32)
}

fn min(it: impl Iterator<Item = f32>) -> Option<f32> {
    it.fold(None, |m: Option<f32>, x| Some(m.map_or(x, |m| m.min(x))))
}

fn max(it: impl Iterator<Item = f32>) -> Option<f32> {
    it.fold(None, |m: Option<f32>, x| Some(m.map_or(x, |m| m.max(x))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_detection() {
        assert_eq!(Lang::detect("Refunds take 3 days."), Lang::En);
        assert_eq!(Lang::detect("退款需要三天。"), Lang::Zh);
        assert_eq!(Lang::detect("请在Kafka控制台中创建topic。"), Lang::Zh);
        assert_eq!(
            Lang::detect("The Chinese word 退款 means refund."),
            Lang::En
        );
    }

    #[test]
    fn mean_and_min() {
        assert_eq!(mean([0.5f32, 1.0].into_iter()), Some(0.75));
        assert_eq!(mean(std::iter::empty()), None);
        assert_eq!(min([0.5f32, -1.0, 1.0].into_iter()), Some(-1.0));
    }

    #[test]
    fn config_validation_names_the_field() {
        let c = ScoreConfig {
            penalty: -1.0,
            ..Default::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("`penalty`"), "{e}");
        let c = ScoreConfig {
            threshold_zh: 3.0,
            ..Default::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("`threshold_zh`")
        );
    }

    #[test]
    fn support_formula() {
        let c = ScoreConfig {
            penalty: 0.2,
            max_penalized: 2,
            ..Default::default()
        };
        assert_eq!(c.support(0.9, 0), 0.9);
        assert!((c.support(0.9, 1) - 0.7).abs() < 1e-6);
        assert!(
            (c.support(0.9, 5) - 0.5).abs() < 1e-6,
            "capped at max_penalized items"
        );
        let c = ScoreConfig {
            penalty: 1.5,
            ..Default::default()
        };
        assert_eq!(c.support(0.1, 3), -1.0, "clamped");
    }

    #[test]
    fn best_match_keeps_the_first_of_equals() {
        let e: Vec<Embedding> = vec![
            vec![1.0, 0.0].into(),
            vec![0.0, 1.0].into(),
            vec![1.0, 0.0].into(),
        ];
        assert_eq!(best_match(&[1.0, 0.0], &e, &[0, 1, 2]), (1.0, Some(0)));
        assert_eq!(best_match(&[0.0, 1.0], &e, &[0, 1, 2]), (1.0, Some(1)));
        assert_eq!(best_match(&[0.0, 1.0], &[], &[]), (0.0, None));
    }
}
