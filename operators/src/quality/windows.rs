//! The quality windows: scored answers and feedback summed per (view, series, window) in event
//! time, one [`QualityRecord`] per window once its end has passed the frontier.
//!
//! [`QualityFact`] is what they sum (a scored answer or a feedback record); the same facts feed
//! the alert rules through [`crate::quality::parts`]. Quality records lag the metrics by the
//! trace timeout and the scoring time, so they are a companion record (same key and window)
//! on their own topic, not fields of the metrics record.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use crate::metrics::facts::Series;
use crate::metrics::panes::pane_end;
use crate::metrics::sketch::{bucket_of, bucket_value_us, rank};
use crate::quality::feedback::FeedbackFact;
use crate::quality::scoring::{QualityCounters, ScoredItem};
use crate::{Dimensions, Views};

/// What the quality windows sum: a scored answer or a feedback record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum QualityFact {
    /// A scored answer.
    Scored(ScoredItem),
    /// A feedback record under its generation's series.
    Feedback(FeedbackFact),
}

impl QualityFact {
    /// The series the fact counts under.
    pub fn series(&self) -> &Series {
        match self {
            QualityFact::Scored(s) => &s.series,
            QualityFact::Feedback(f) => &f.series,
        }
    }

    /// The event time the fact counts at, ms.
    pub fn event_ms(&self) -> u64 {
        match self {
            QualityFact::Scored(s) => s.event_ms,
            QualityFact::Feedback(f) => f.event_ms,
        }
    }
}

impl QualityFact {
    /// The fact's contribution to a window's quality fields
    /// ([`crate::metrics::QUALITY_FIELDS`]).
    pub fn quality_fields(&self) -> [i64; 7] {
        match self {
            QualityFact::Scored(s) => [
                1,
                ppm(s.scores.faithfulness),
                i64::from(s.scores.hallucination),
                0,
                0,
                0,
                0,
            ],
            QualityFact::Feedback(f) => {
                let x = f.figures();
                [0, 0, 0, x.count, x.negative, x.scored, x.score_sum_ppm]
            }
        }
    }
}

fn ppm(v: f32) -> i64 {
    (f64::from(v) * 1e6).round() as i64
}

/// Open quality windows by end: the capability to emit at the end, and sums per (view, series).
type OpenWindows = BTreeMap<u64, (Capability<u64>, HashMap<(u8, Series), QualityAcc>)>;

/// Scores and feedback of one (view, series, window), in exact integers (scores in ppm).
#[derive(Clone, Debug, Default, PartialEq)]
struct QualityAcc {
    answers: i64,
    faithfulness_ppm: i64,
    /// DDSketch buckets of `1 + faithfulness` in ppm (shifted so that it is positive).
    faithfulness_buckets: BTreeMap<i32, i64>,
    hallucinations: i64,
    answer_relevance_n: i64,
    answer_relevance_ppm: i64,
    context_relevance_n: i64,
    context_relevance_ppm: i64,
    feedback: crate::FeedbackFigures,
}

impl QualityAcc {
    fn add(&mut self, fact: &QualityFact) {
        match fact {
            QualityFact::Scored(s) => {
                let sc = &s.scores;
                self.answers += 1;
                let f = ppm(sc.faithfulness);
                self.faithfulness_ppm += f;
                // Support is in [-1, 1]: shifted by 1 so the sketch sees a positive value.
                let shifted = u64::try_from(f + 1_000_000).unwrap_or(0);
                *self
                    .faithfulness_buckets
                    .entry(bucket_of(shifted))
                    .or_default() += 1;
                self.hallucinations += i64::from(sc.hallucination);
                if let Some(r) = sc.answer_relevance {
                    self.answer_relevance_n += 1;
                    self.answer_relevance_ppm += ppm(r);
                }
                if let Some(r) = sc.context_relevance {
                    self.context_relevance_n += 1;
                    self.context_relevance_ppm += ppm(r);
                }
            }
            QualityFact::Feedback(f) => {
                let x = f.figures();
                self.feedback.count += x.count;
                self.feedback.negative += x.negative;
                self.feedback.scored += x.scored;
                self.feedback.score_sum_ppm += x.score_sum_ppm;
            }
        }
    }

    /// The `q` quantile of faithfulness from the sketch (relative error of the sketch on
    /// `1 + faithfulness`).
    fn faithfulness_quantile(&self, q: f64) -> Option<f64> {
        let target = rank(q, self.answers);
        let mut seen = 0;
        for (b, n) in &self.faithfulness_buckets {
            seen += n;
            if seen > target {
                return Some(bucket_value_us(*b) as f64 / 1e6 - 1.0);
            }
        }
        None
    }
}

/// The quality of one (view, series, window): a companion of the metrics record, on
/// `quality.topic`, in InfluxDB (`glassbox_quality`) and Redis (`glassbox:quality:{view}:{series}`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QualityRecord {
    /// `1`.
    pub schema_version: u32,
    /// The view.
    pub view: String,
    /// Window start, ms (inclusive).
    pub window_start_ms: u64,
    /// Window end, ms (exclusive).
    pub window_end_ms: u64,
    /// Series dimensions.
    pub series: BTreeMap<String, String>,
    /// The series key (the Kafka key).
    #[serde(skip)]
    pub key: String,
    /// RAG answers scored in the window (by generation start).
    pub answers_scored: i64,
    /// Mean faithfulness (mean sentence support) of those answers.
    pub faithfulness_mean: Option<f64>,
    /// 10th percentile of faithfulness (DDSketch, within 1% of `1 + faithfulness`).
    pub faithfulness_p10: Option<f64>,
    /// Answers with an unsupported sentence / answers scored.
    pub hallucination_rate: Option<f64>,
    /// Mean cos(query, answer), over answers with a query.
    pub answer_relevance_mean: Option<f64>,
    /// Mean of each answer's mean cos(query, chunk), over answers with a query.
    pub context_relevance_mean: Option<f64>,
    /// Feedback records in the window (by their own time).
    pub feedback_count: i64,
    /// Negative feedback / feedback.
    pub negative_feedback_rate: Option<f64>,
    /// Mean feedback score, over records with a score.
    pub feedback_mean_score: Option<f64>,
}

fn mean(sum_ppm: i64, n: i64) -> Option<f64> {
    (n > 0).then(|| sum_ppm as f64 / 1e6 / n as f64)
}

impl QualityRecord {
    /// The figures that are undefined without data (`None`), by field name, as the InfluxDB
    /// and Redis sinks write them.
    pub fn rates(&self) -> [(&'static str, Option<f64>); 7] {
        [
            ("faithfulness_mean", self.faithfulness_mean),
            ("faithfulness_p10", self.faithfulness_p10),
            ("hallucination_rate", self.hallucination_rate),
            ("answer_relevance_mean", self.answer_relevance_mean),
            ("context_relevance_mean", self.context_relevance_mean),
            ("negative_feedback_rate", self.negative_feedback_rate),
            ("feedback_mean_score", self.feedback_mean_score),
        ]
    }

    fn new(
        view: &str,
        length: u64,
        end: u64,
        series: &Series,
        dims: &Dimensions,
        acc: &QualityAcc,
    ) -> Self {
        let names = dims.names();
        Self {
            schema_version: 1,
            view: view.to_owned(),
            window_start_ms: end - length,
            window_end_ms: end,
            series: names
                .iter()
                .cloned()
                .zip(series.values().iter().cloned())
                .collect(),
            key: dims.key(series),
            answers_scored: acc.answers,
            faithfulness_mean: mean(acc.faithfulness_ppm, acc.answers),
            faithfulness_p10: acc.faithfulness_quantile(0.10),
            hallucination_rate: (acc.answers > 0)
                .then(|| acc.hallucinations as f64 / acc.answers as f64),
            answer_relevance_mean: mean(acc.answer_relevance_ppm, acc.answer_relevance_n),
            context_relevance_mean: mean(acc.context_relevance_ppm, acc.context_relevance_n),
            feedback_count: acc.feedback.count,
            negative_feedback_rate: acc.feedback.negative_rate(),
            feedback_mean_score: acc.feedback.mean_score(),
        }
    }
}

/// Sums [`QualityFact`]s per (view, series, window) and emits each window once.
///
/// # Time contract
/// - Input: facts at a time not after their event time (the joins stamp them with their
///   records' arrival watermark), so a window `[E − L, E)` is complete once the frontier has
///   passed `E`.
/// - Capabilities: one per window end with data; the window's record is emitted at `E` when
///   the frontier passes `E`, and its state released. Nothing is retracted.
/// - A fact that breaks the input contract (a feedback arriving after its generation's windows
///   were emitted) is added to the windows still open and counted in
///   [`QualityCounters::late_facts`]; it used to ask for a capability in the past, which
///   panics the worker.
pub fn quality_windows<'scope>(
    facts: StreamVec<'scope, u64, QualityFact>,
    views: &Views,
    dims: &Dimensions,
    counters: Arc<QualityCounters>,
) -> StreamVec<'scope, u64, QualityRecord> {
    let views = views.clone();
    let dims = dims.clone();
    let w = views.pane_ms;
    facts.unary_frontier(
        timely::dataflow::channels::pact::Exchange::new(|f: &QualityFact| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            f.series().hash(&mut h);
            h.finish()
        }),
        "QualityWindows",
        move |_cap, _info| {
            // window end → (capability, (view, series) → sums)
            let mut open: OpenWindows = BTreeMap::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let Some(&now) = cap.least() else { return };
                    for fact in data.drain(..) {
                        let first = pane_end(fact.event_ms(), w);
                        let mut late = false;
                        for (v, view) in views.views.iter().enumerate() {
                            for end in (first..first + view.length_ms).step_by(w as usize) {
                                if end < now {
                                    late = true;
                                    continue;
                                }
                                let (_, windows) = open
                                    .entry(end)
                                    .or_insert_with(|| (cap.delayed(&end, 0), HashMap::new()));
                                windows
                                    .entry((v as u8, fact.series().clone()))
                                    .or_default()
                                    .add(&fact);
                            }
                        }
                        if late {
                            counters.late_facts.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
                while let Some(entry) = open.first_entry() {
                    let end = *entry.key();
                    if frontier.less_equal(&end) {
                        break;
                    }
                    let (cap, windows) = entry.remove();
                    let mut records: Vec<QualityRecord> = windows
                        .iter()
                        .map(|((v, series), acc)| {
                            let view = &views.views[usize::from(*v)];
                            QualityRecord::new(&view.name, view.length_ms, end, series, &dims, acc)
                        })
                        .collect();
                    records.sort_by(|a, b| (&a.view, &a.key).cmp(&(&b.view, &b.key)));
                    output.session(&cap).give_iterator(records.into_iter());
                }
            }
        },
    )
}
