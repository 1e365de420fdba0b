//! The quality path (issue #6) in the pipeline: RAG answers scored off the metrics path, user
//! feedback, and their figures per series and window.
//!
//! ```text
//! source ─┬─ facts ──────────────────────────────► windows → metrics, alerts
//!         ├─ llm + retrieval spans ─► trace_join ─► score_items ─┬─► quality_windows ─► sinks
//!         └─ feedback ─────────────► feedback_join ──────────────┘   flagged answers ─► topic
//! ```
//!
//! - [`score_items`] hands each [`RagItem`] to a pool of scoring threads through a bounded
//!   queue and emits its scores at the item's own time. The metrics path never waits for it:
//!   the windows read only the facts. When the queue is full, items are admitted by a
//!   deterministic sample (a hash of trace and span id below an admission level that halves
//!   on overflow and recovers while the queue drains); the scored fraction is counted. A
//!   given item's scores never depend on timing.
//! - [`quality_windows`] sums scores and feedback per (view, series, window) in event time and
//!   emits one [`QualityRecord`] when the window's end has passed the frontier.
//! - Answers with an unsupported sentence become [`FlaggedRecord`]s.
//!
//! Quality records lag the metrics by the trace timeout and the scoring time, so they are a
//! companion record (same key and window) on their own topic, not fields of the metrics
//! record: holding every metrics window back for the slowest trace would break the metrics'
//! latency.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glassbox_operators::facts::Series;
use glassbox_operators::feedback::FeedbackFact;
use glassbox_operators::panes::{Part, pane_end};
use glassbox_operators::sketch::{bucket_of, bucket_value_us, rank};
use glassbox_operators::trace_join::RagItem;
use glassbox_operators::views::WindowKey;
use glassbox_operators::{Dimensions, Views};
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

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

/// A span's share for the quality path, split off by the source.
#[derive(Clone, Debug)]
pub enum QualityInput {
    /// A generation or retrieval, for the trace join.
    Trace(glassbox_operators::TraceSpan),
    /// A feedback record or a generation, for the feedback join.
    Feedback(glassbox_operators::FeedbackInput),
}

/// The scores of one answer that glassbox keeps (see `glassbox_quality::score` for the
/// formulas).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// `en` or `zh`.
    pub lang: String,
    /// Mean sentence support.
    pub faithfulness: f32,
    /// Least sentence support.
    pub faithfulness_min: f32,
    /// Some sentence is below the language's threshold.
    pub hallucination: bool,
    /// cos(query, answer); `None` without a query.
    pub answer_relevance: Option<f32>,
    /// Mean cos(query, chunk); `None` without a query.
    pub context_relevance: Option<f32>,
    /// Index of the least supported sentence.
    pub least_supported: Option<usize>,
    /// Its text (only put into outputs when `quality.text_in_outputs`).
    pub least_supported_text: Option<String>,
    /// Kinds of the facts the answer states that the chunks do not (`number`, `name`, …).
    pub ungrounded: Vec<String>,
}

/// Scores one answer. Implemented by `glassbox_quality::Scorer`; tests may use their own.
pub trait AnswerScorer: Send + Sync + 'static {
    /// The scores of `answer` given `query` and `chunks`; `Err` with a message when the model
    /// fails (counted, the item is not scored).
    fn score(&self, query: Option<&str>, chunks: &[String], answer: &str)
    -> Result<Scores, String>;
}

impl AnswerScorer for glassbox_quality::Scorer {
    fn score(
        &self,
        query: Option<&str>,
        chunks: &[String],
        answer: &str,
    ) -> Result<Scores, String> {
        let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let s = glassbox_quality::Scorer::score(self, query.unwrap_or(""), &chunks, answer)
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

/// Counters of the quality path.
#[derive(Debug, Default)]
pub struct QualityCounters {
    /// Answers handed to the scoring threads.
    pub submitted: AtomicU64,
    /// Answers scored.
    pub scored: AtomicU64,
    /// Answers left out by the deterministic sample while the queue was saturated.
    pub sampled_out: AtomicU64,
    /// Answers the model failed on.
    pub failed: AtomicU64,
    /// Answers flagged unfaithful.
    pub flagged: AtomicU64,
}

impl QualityCounters {
    /// Every counter, by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BTreeMap::from([
            ("answers_submitted", get(&self.submitted)),
            ("answers_scored", get(&self.scored)),
            ("answers_sampled_out", get(&self.sampled_out)),
            ("answers_failed", get(&self.failed)),
            ("answers_flagged", get(&self.flagged)),
        ])
    }

    /// scored / (scored + sampled out + failed); 1 when nothing was offered.
    pub fn scored_fraction(&self) -> f64 {
        let s = self.scored.load(Ordering::Relaxed) as f64;
        let all = s
            + self.sampled_out.load(Ordering::Relaxed) as f64
            + self.failed.load(Ordering::Relaxed) as f64;
        if all == 0.0 { 1.0 } else { s / all }
    }
}

/// A scoring thread's answer: the job id and the scores (or why there are none).
type Reply = (u64, Result<Scores, String>);

/// Open quality windows by end: the capability to emit at the end, and sums per (view, series).
type OpenWindows = BTreeMap<u64, (Capability<u64>, HashMap<(u8, Series), QualityAcc>)>;

/// One scoring job: the item, and where its result goes.
struct Job {
    id: u64,
    item: Arc<RagItem>,
    reply: Sender<Reply>,
}

/// The scoring threads, shared by every worker, fed through a bounded queue.
pub struct ScoringPool {
    queue: SyncSender<Job>,
}

impl std::fmt::Debug for ScoringPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScoringPool")
    }
}

impl ScoringPool {
    /// `threads` scoring threads behind a queue of `capacity` answers.
    pub fn new(scorer: Arc<dyn AnswerScorer>, threads: usize, capacity: usize) -> Arc<Self> {
        let (queue, jobs) = sync_channel::<Job>(capacity.max(1));
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..threads.max(1) {
            let (jobs, scorer) = (jobs.clone(), scorer.clone());
            std::thread::Builder::new()
                .name(format!("glassbox-score-{i}"))
                .spawn(move || {
                    loop {
                        let job = match jobs.lock().expect("scoring queue lock").recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        };
                        let item = &job.item;
                        let result =
                            scorer.score(item.query.as_deref(), &item.chunks, &item.answer);
                        let _ = job.reply.send((job.id, result));
                    }
                })
                .expect("spawn scoring thread");
        }
        Arc::new(Self { queue })
    }
}

/// A scored answer, at its item's time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredItem {
    /// The trace.
    pub trace_id: String,
    /// The generation span.
    pub span_id: String,
    /// The retrieval spans that fed it.
    pub retrieval_span_ids: Vec<String>,
    /// The generation's series.
    pub series: Series,
    /// The generation's start, ms.
    pub event_ms: u64,
    /// Its scores.
    pub scores: Scores,
}

fn admission_hash(item: &RagItem) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    item.trace_id.hash(&mut h);
    item.span_id.hash(&mut h);
    h.finish() % 1_024
}

/// Scores every [`RagItem`] on the pool; see the module doc.
///
/// # Time contract
/// - Input: items at any time; output: each scored item at its input time.
/// - Capabilities: one per input time with items still being scored; released when the last
///   of them returns. The metrics path does not read this output, so a slow model delays only
///   the quality records and the offset commits.
/// - State: the items in flight, bounded by the queue (plus one per thread).
pub fn score_items<'scope>(
    items: StreamVec<'scope, u64, RagItem>,
    pool: Arc<ScoringPool>,
    counters: Arc<QualityCounters>,
) -> StreamVec<'scope, u64, ScoredItem> {
    let scope = items.scope();
    items.unary(Pipeline, "ScoreAnswers", move |_cap, info| {
        let activator = scope.activator_for(info.address);
        let (reply, results): (Sender<Reply>, Receiver<Reply>) = channel();
        let mut next_id = 0u64;
        // id → (item, its time); time → (capability, items in flight)
        let mut flying: HashMap<u64, (Arc<RagItem>, u64)> = HashMap::new();
        let mut held: BTreeMap<u64, (Capability<u64>, usize)> = BTreeMap::new();
        // Admission level out of 1,024: halved on overflow, doubled after a quiet second.
        let mut level = 1_024u64;
        let mut last_overflow = Instant::now();
        move |input, output| {
            input.for_each(|cap, data| {
                let time = *cap.least().expect("vec containers carry a time");
                for item in data.drain(..) {
                    if level < 1_024 && last_overflow.elapsed() > Duration::from_secs(1) {
                        level = (level * 2).min(1_024);
                        last_overflow = Instant::now();
                    }
                    if admission_hash(&item) >= level {
                        counters.sampled_out.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let item = Arc::new(item);
                    let job = Job {
                        id: next_id,
                        item: item.clone(),
                        reply: reply.clone(),
                    };
                    match pool.queue.try_send(job) {
                        Ok(()) => {
                            counters.submitted.fetch_add(1, Ordering::Relaxed);
                            flying.insert(next_id, (item, time));
                            next_id += 1;
                            held.entry(time)
                                .or_insert_with(|| (cap.delayed(&time, 0), 0))
                                .1 += 1;
                        }
                        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                            counters.sampled_out.fetch_add(1, Ordering::Relaxed);
                            level = (level / 2).max(8);
                            last_overflow = Instant::now();
                        }
                    }
                }
            });
            while let Ok((id, result)) = results.try_recv() {
                let Some((item, time)) = flying.remove(&id) else {
                    continue;
                };
                let entry = held
                    .get_mut(&time)
                    .expect("a capability per time in flight");
                match result {
                    Ok(scores) => {
                        counters.scored.fetch_add(1, Ordering::Relaxed);
                        if scores.hallucination {
                            counters.flagged.fetch_add(1, Ordering::Relaxed);
                        }
                        output.session(&entry.0).give(ScoredItem {
                            trace_id: item.trace_id.clone(),
                            span_id: item.span_id.clone(),
                            retrieval_span_ids: item.retrieval_span_ids.clone(),
                            series: item.series.clone(),
                            event_ms: item.event_ms,
                            scores,
                        });
                    }
                    Err(error) => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, trace_id = %item.trace_id, "scoring failed");
                    }
                }
                entry.1 -= 1;
                if entry.1 == 0 {
                    held.remove(&time);
                }
            }
            if !flying.is_empty() {
                activator.activate_after(Duration::from_millis(5));
            }
        }
    })
}

/// What the quality windows sum: a scored answer or a feedback record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum QualityFact {
    /// A scored answer.
    Scored(ScoredItem),
    /// A feedback record under its generation's series.
    Feedback(FeedbackFact),
}

impl QualityFact {
    fn series(&self) -> &Series {
        match self {
            QualityFact::Scored(s) => &s.series,
            QualityFact::Feedback(f) => &f.series,
        }
    }

    fn event_ms(&self) -> u64 {
        match self {
            QualityFact::Scored(s) => s.event_ms,
            QualityFact::Feedback(f) => f.event_ms,
        }
    }
}

impl QualityFact {
    /// The fact's contribution to a window's quality fields
    /// ([`glassbox_operators::metrics::QUALITY_FIELDS`]).
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

/// The quality facts as pane parts for the alert rules: each fact's
/// [`QualityFact::quality_fields`] as [`Part::Quality`] updates of the window of the pane-width
/// view (`pane_view`) that holds its event time, at that window's end, which is when the alerts
/// operator reads a pane.
///
/// # Time contract
/// Input facts at a time not after their event time; output at the end of their pane (later).
/// A fact that arrives after its pane's end (possible only for a trace whose first span was
/// late) is dropped: its pane has been evaluated already. Nothing is retracted, and the alerts
/// operator reads only these insertions.
pub fn quality_parts<'scope>(
    facts: StreamVec<'scope, u64, QualityFact>,
    pane_ms: u64,
    pane_view: u8,
) -> differential_dataflow::VecCollection<'scope, u64, (WindowKey, Part), i64> {
    use differential_dataflow::AsCollection;
    facts
        .unary(Pipeline, "QualityParts", move |_cap, _info| {
            move |input, output| {
                input.for_each(|cap, data| {
                    let time = *cap.least().expect("vec containers carry a time");
                    for fact in data.drain(..) {
                        let end = pane_end(fact.event_ms(), pane_ms);
                        if end < time {
                            continue;
                        }
                        let key = WindowKey {
                            view: pane_view,
                            series: fact.series().clone(),
                            end_ms: end,
                        };
                        let at = cap.delayed(&end, 0);
                        let mut session = output.session(&at);
                        for (i, n) in fact.quality_fields().into_iter().enumerate() {
                            if n != 0 {
                                session.give(((key.clone(), Part::Quality(i as u8)), end, n));
                            }
                        }
                    }
                });
            }
        })
        .as_collection()
}

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
    feedback: glassbox_operators::FeedbackFigures,
}

fn ppm(v: f32) -> i64 {
    (f64::from(v) * 1e6).round() as i64
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

impl Record for QualityRecord {
    fn key(&self) -> &str {
        &self.key
    }

    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("quality records serialize")
    }
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
            key: names
                .iter()
                .zip(series.values())
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join(","),
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
pub fn quality_windows<'scope>(
    facts: StreamVec<'scope, u64, QualityFact>,
    views: &Views,
    dims: &Dimensions,
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
                    for fact in data.drain(..) {
                        let first = pane_end(fact.event_ms(), w);
                        for (v, view) in views.views.iter().enumerate() {
                            for end in (first..first + view.length_ms).step_by(w as usize) {
                                let (_, windows) = open
                                    .entry(end)
                                    .or_insert_with(|| (cap.delayed(&end, 0), HashMap::new()));
                                windows
                                    .entry((v as u8, fact.series().clone()))
                                    .or_default()
                                    .add(&fact);
                            }
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
