//! The scoring operator: each RAG answer handed to a pool of scoring threads, its scores emitted
//! at the item's own time.
//!
//! The model is behind [`AnswerScorer`], so this crate stays free of the model runtime and of
//! I/O: the pipeline implements it over `glassbox_quality::Scorer`, tests over a closure-like
//! stub. [`score_items`] feeds the [`ScoringPool`] through a bounded queue; the metrics path
//! never waits for it. When the queue is full, items are admitted by a deterministic sample (a
//! hash of trace and span id below an admission level that halves on overflow and recovers
//! while the queue drains); the scored fraction is counted in [`QualityCounters`]. A given
//! item's scores never depend on timing.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use crate::metrics::facts::Series;
use crate::quality::trace_join::RagItem;

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

/// Scores one answer. Implemented in the pipeline over `glassbox_quality::Scorer`; tests may
/// use their own.
pub trait AnswerScorer: Send + Sync + 'static {
    /// The scores of `answer` given `query` and `chunks`; `Err` with a message when the model
    /// fails (counted, the item is not scored).
    fn score(&self, query: Option<&str>, chunks: &[String], answer: &str)
    -> Result<Scores, String>;
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
    /// Quality facts (a late feedback, say) that reached their windows after some had been
    /// emitted: left out of those, counted here.
    pub late_facts: AtomicU64,
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
            ("quality_late_facts", get(&self.late_facts)),
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
                        // A scorer that panics must still answer: an unanswered job would hold
                        // its capability, and so every commit, forever. Counted as failed.
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            scorer.score(item.query.as_deref(), &item.chunks, &item.answer)
                        }))
                        .unwrap_or_else(|_| Err("the scorer panicked".to_owned()));
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
