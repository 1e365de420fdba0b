//! The feedback join: user feedback counted under the series of the generation it rates.
//!
//! Feedback records (`kind: feedback`, `feedback.score` in `0..=1` and/or `feedback.label`, for
//! a trace id) arrive seconds to minutes after the answer. Each counts in the window of its
//! **own** event time, under the series of the generation it refers to: taken from the record
//! itself when it carries every series dimension ([`FeedbackInput::from_span`]), otherwise
//! found by joining on the trace id with the trace's generations (llm spans) of the last
//! `horizon_ms`.
//!
//! Feedback is *negative* when its score is below [`FeedbackConfig::negative_below`] or its
//! label is one of [`FeedbackConfig::negative_labels`] (compared case-insensitively). The
//! figures of a window (feedback count, negative rate, mean score) come from integer sums
//! over its [`FeedbackFact`]s ([`FeedbackFigures`]), exact and order-independent.
//!
//! # Which generation
//! A trace may hold several generations. The feedback goes to the one its `parent_span_id`
//! names if that one is known, else to the latest-starting known generation (ties: the larger
//! span id): the final answer of the trace.
//!
//! # Time contract
//! - Input: [`FeedbackInput`]s at timely time `t` (event time, ms), exchanged by trace id.
//!   Records are buffered until the input frontier passes their time and then processed in
//!   time order, generations before feedback at one time, so the output depends only on which
//!   records arrive at which times.
//! - State:
//!   - per trace, its generations (span id, start, series), each kept until the frontier
//!     passes `start_ms + horizon_ms` (so the state is bounded by the horizon);
//!   - feedback waiting for a generation: a feedback record that finds none is kept, with a
//!     capability at its arrival time `t`, until a generation of its trace arrives (at a time
//!     `≤ t + wait_ms`) or the frontier passes `t + wait_ms`; then it is counted unmatched and
//!     dropped. Waiting feedback holds the output frontier back by at most `wait_ms`, which
//!     is why the wait is shorter than the horizon.
//! - Matching: feedback at event time `f` processed at time `τ` matches a generation starting
//!   at `g` when `f ≤ g + horizon_ms` and `τ ≤ g + horizon_ms` (the generation is still
//!   kept).
//! - Output: one [`FeedbackFact`] per matched or self-describing feedback record, at the
//!   record's own arrival time `t` (held while it waits). A window over `FeedbackFact::event_ms`
//!   downstream thus receives facts under the same contract as the source's spans. Nothing is
//!   retracted.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

use glassbox_schemas::{Span, SpanKind};
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use crate::metrics::facts::{Dimensions, Series};
use crate::quality::trace_join::trace_hash;

/// A feedback join configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedbackConfigError {
    /// `wait_ms` above `horizon_ms`: waiting feedback could never find a generation the
    /// horizon has already forgotten.
    #[error("feedback wait_ms ({wait_ms}) must not exceed horizon_ms ({horizon_ms})")]
    WaitBeyondHorizon {
        /// The configured wait.
        wait_ms: u64,
        /// The configured horizon.
        horizon_ms: u64,
    },
    /// `negative_below` outside `0..=1`, or not a number.
    #[error("feedback negative_below must be within 0..=1")]
    Threshold,
}

/// How feedback finds its generation, and what counts as negative.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedbackConfig {
    /// How long a generation is remembered for feedback joined by trace id, ms of event time
    /// after its start. Default 900,000 (15 min); e.g. `horizon_ms = 1800000`.
    pub horizon_ms: u64,
    /// How long feedback that arrived before its generation waits for it, ms of event time
    /// after its arrival. It holds the feedback output back meanwhile, so keep it short.
    /// At most `horizon_ms`. Default 60,000 (1 min).
    pub wait_ms: u64,
    /// A score below this is negative. Default 0.5.
    pub negative_below: f64,
    /// Labels that are negative, compared case-insensitively. Default
    /// `["thumbs_down", "negative", "bad"]`.
    pub negative_labels: Vec<String>,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            horizon_ms: 15 * 60 * 1000,
            wait_ms: 60 * 1000,
            negative_below: 0.5,
            negative_labels: ["thumbs_down", "negative", "bad"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl FeedbackConfig {
    /// Checks that the configuration can work.
    pub fn validate(&self) -> Result<(), FeedbackConfigError> {
        if self.wait_ms > self.horizon_ms {
            return Err(FeedbackConfigError::WaitBeyondHorizon {
                wait_ms: self.wait_ms,
                horizon_ms: self.horizon_ms,
            });
        }
        if !(0.0..=1.0).contains(&self.negative_below) {
            return Err(FeedbackConfigError::Threshold);
        }
        Ok(())
    }

    /// Whether a feedback of this score and label is negative.
    pub fn is_negative(&self, score: Option<f64>, label: Option<&str>) -> bool {
        score.is_some_and(|s| s < self.negative_below)
            || label.is_some_and(|l| {
                self.negative_labels
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(l))
            })
    }
}

/// What the feedback join reads: generations, and feedback on them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FeedbackInput {
    /// An llm span: feedback on its trace may count under its series.
    Generation {
        /// The trace.
        trace_id: String,
        /// The llm span.
        span_id: String,
        /// Start, ms since the Unix epoch.
        start_ms: u64,
        /// Its series.
        series: Series,
    },
    /// A feedback record.
    Feedback {
        /// The trace it rates.
        trace_id: String,
        /// Its parent span: the generation it rates, when the sender says so.
        parent_span_id: Option<String>,
        /// Event time: its start, ms since the Unix epoch.
        event_ms: u64,
        /// The series, when the record carries every series dimension itself.
        series: Option<Series>,
        /// `feedback.score`, in `0..=1`.
        score: Option<f64>,
        /// `feedback.label`.
        label: Option<String>,
    },
}

/// Dimensions that describe a span itself, not the generation: a feedback record cannot carry
/// them, so a series that uses one is always found by the join.
const SPAN_OWN_DIMENSIONS: [&str; 3] = ["name", "operation", "error_type"];

impl FeedbackInput {
    /// The feedback join's view of `span` under `dims`: a generation for an llm span, feedback
    /// for a feedback span with a score or a label, `None` otherwise.
    ///
    /// A feedback record carries its series when it has a value for every dimension; `kind` is
    /// taken as `llm` (the series of the generation it rates), and a series using `name`,
    /// `operation` or `error_type` is never carried.
    pub fn from_span(span: &Span, dims: &Dimensions) -> Option<Self> {
        match span.kind {
            SpanKind::Llm => Some(FeedbackInput::Generation {
                trace_id: span.trace_id.clone(),
                span_id: span.span_id.clone(),
                start_ms: span.start_ms(),
                series: dims.series_of(span),
            }),
            SpanKind::Feedback
                if span.feedback_score.is_some() || span.feedback_label.is_some() =>
            {
                let carried: Option<Vec<String>> = dims
                    .names()
                    .iter()
                    .map(|d| match d.as_str() {
                        "kind" => Some(SpanKind::Llm.as_str().to_owned()),
                        d if SPAN_OWN_DIMENSIONS.contains(&d) => None,
                        d => span.dimension(d).map(str::to_owned),
                    })
                    .collect();
                Some(FeedbackInput::Feedback {
                    trace_id: span.trace_id.clone(),
                    parent_span_id: span.parent_span_id.clone(),
                    event_ms: span.start_ms(),
                    series: carried.map(Series::new),
                    score: span.feedback_score,
                    label: span.feedback_label.clone(),
                })
            }
            _ => None,
        }
    }

    fn trace_id(&self) -> &str {
        match self {
            FeedbackInput::Generation { trace_id, .. }
            | FeedbackInput::Feedback { trace_id, .. } => trace_id,
        }
    }
}

/// One feedback record, counted under a generation's series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedbackFact {
    /// The series of the generation it rates.
    pub series: Series,
    /// Event time: the feedback's own start, ms since the Unix epoch.
    pub event_ms: u64,
    /// `feedback.score`, when given.
    pub score: Option<f64>,
    /// Whether the feedback is negative ([`FeedbackConfig::is_negative`]).
    pub negative: bool,
}

impl FeedbackFact {
    /// This fact's contribution to its window's figures.
    pub fn figures(&self) -> FeedbackFigures {
        FeedbackFigures {
            count: 1,
            negative: i64::from(self.negative),
            scored: i64::from(self.score.is_some()),
            score_sum_ppm: self.score.map_or(0, |s| (s * 1e6).round() as i64),
        }
    }
}

/// The additive feedback figures of a window: sums of [`FeedbackFact::figures`].
///
/// Integers, so that sums are exact and their order never matters (a score is kept in
/// millionths: `0.85` → `850_000`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FeedbackFigures {
    /// Feedback records.
    pub count: i64,
    /// Negative ones.
    pub negative: i64,
    /// Those with a score.
    pub scored: i64,
    /// Sum of the scores, in millionths.
    pub score_sum_ppm: i64,
}

impl FeedbackFigures {
    /// Negative feedback / all feedback; `None` without feedback.
    pub fn negative_rate(&self) -> Option<f64> {
        (self.count > 0).then(|| self.negative as f64 / self.count as f64)
    }

    /// The mean score; `None` without a score.
    pub fn mean_score(&self) -> Option<f64> {
        (self.scored > 0).then(|| self.score_sum_ppm as f64 / 1e6 / self.scored as f64)
    }
}

impl std::ops::AddAssign for FeedbackFigures {
    fn add_assign(&mut self, other: Self) {
        self.count += other.count;
        self.negative += other.negative;
        self.scored += other.scored;
        self.score_sum_ppm += other.score_sum_ppm;
    }
}

/// The feedback join's counters, shared by every worker's instance. All monotone except the
/// gauges `generations_kept` and `waiting`, which are the operator's state size.
#[derive(Debug, Default)]
pub struct FeedbackCounters {
    /// Feedback records read.
    pub feedback: AtomicU64,
    /// Feedback that carried its series.
    pub carried: AtomicU64,
    /// Feedback matched to a generation by trace id (right away or after waiting).
    pub joined: AtomicU64,
    /// Feedback that found no generation within the horizon and the wait: dropped.
    pub unmatched: AtomicU64,
    /// Gauge: generations remembered now.
    pub generations_kept: AtomicU64,
    /// Gauge: feedback records waiting for a generation now.
    pub waiting: AtomicU64,
}

impl FeedbackCounters {
    /// A snapshot of every counter, by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BTreeMap::from([
            ("feedback", get(&self.feedback)),
            ("carried", get(&self.carried)),
            ("joined", get(&self.joined)),
            ("unmatched", get(&self.unmatched)),
            ("generations_kept", get(&self.generations_kept)),
            ("waiting", get(&self.waiting)),
        ])
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn sub(counter: &AtomicU64, n: u64) {
    counter.fetch_sub(n, Ordering::Relaxed);
}

/// A generation remembered for feedback.
struct Generation {
    span_id: String,
    start_ms: u64,
    series: Series,
}

/// Feedback waiting for its generation.
struct Waiting {
    /// At its arrival time: the time its fact is emitted at.
    cap: Capability<u64>,
    parent_span_id: Option<String>,
    event_ms: u64,
    score: Option<f64>,
    negative: bool,
}

/// The generation a feedback record rates among `generations` of its trace: the one its
/// parent names, else the latest-starting (ties: the larger span id). Only generations whose
/// horizon covers both the feedback's event time and `now` are eligible.
fn choose<'a>(
    generations: &'a [Generation],
    parent: Option<&str>,
    event_ms: u64,
    now: u64,
    horizon: u64,
) -> Option<&'a Generation> {
    let eligible: Vec<&Generation> = generations
        .iter()
        .filter(|g| {
            let until = g.start_ms.saturating_add(horizon);
            event_ms <= until && now <= until
        })
        .collect();
    let named = eligible
        .iter()
        .find(|g| parent.is_some_and(|p| p == g.span_id));
    named
        .or_else(|| {
            eligible
                .iter()
                .max_by(|a, b| (a.start_ms, &a.span_id).cmp(&(b.start_ms, &b.span_id)))
        })
        .copied()
}

/// The join's state on one worker.
#[derive(Default)]
struct State {
    /// Per trace, its generations still inside the horizon.
    generations: HashMap<String, Vec<Generation>>,
    /// start + horizon → (trace id, span id) of the generations to forget after it.
    forget: BTreeMap<u64, Vec<(String, String)>>,
    /// Per trace, feedback waiting for a generation.
    waiting: HashMap<String, Vec<Waiting>>,
    /// (arrival + wait, trace id) of every waiting feedback, in arrival order.
    expire: VecDeque<(u64, String)>,
}

impl State {
    /// Forgets the generations and gives up on the waiting feedback whose time is before
    /// `now` (everything, for `None`): nothing processed at or after `now` may use them.
    fn release(&mut self, now: Option<u64>, wait: u64, counters: &FeedbackCounters) {
        let before_now = |at: u64| now.is_none_or(|now| at < now);
        while let Some(entry) = self.forget.first_entry()
            && before_now(*entry.key())
        {
            for (trace, span) in entry.remove() {
                if let Some(kept) = self.generations.get_mut(&trace) {
                    let before = kept.len();
                    kept.retain(|g| g.span_id != span);
                    sub(&counters.generations_kept, (before - kept.len()) as u64);
                    if kept.is_empty() {
                        self.generations.remove(&trace);
                    }
                }
            }
        }
        while self.expire.front().is_some_and(|(at, _)| before_now(*at)) {
            let (at, trace) = self.expire.pop_front().expect("front exists");
            if let Some(list) = self.waiting.get_mut(&trace) {
                let before = list.len();
                list.retain(|w| w.cap.time().saturating_add(wait) != at);
                let gone = (before - list.len()) as u64;
                add(&counters.unmatched, gone);
                sub(&counters.waiting, gone);
                if list.is_empty() {
                    self.waiting.remove(&trace);
                }
            }
        }
    }
}

/// Counts each feedback record under its generation's series; see the module's time contract.
///
/// # Panics
/// If `config` does not [`validate`](FeedbackConfig::validate): a configuration error the
/// caller must report before building the dataflow.
pub fn feedback_join<'scope>(
    input: StreamVec<'scope, u64, FeedbackInput>,
    config: &FeedbackConfig,
    counters: Arc<FeedbackCounters>,
) -> StreamVec<'scope, u64, FeedbackFact> {
    if let Err(error) = config.validate() {
        panic!("feedback_join: {error}");
    }
    let config = config.clone();
    let (horizon, wait) = (config.horizon_ms, config.wait_ms);
    input.unary_frontier(
        // All records of a trace meet on one worker.
        Exchange::new(|r: &FeedbackInput| trace_hash(r.trace_id())),
        "FeedbackJoin",
        move |_cap, _info| {
            // Records not yet processed, by input time, each time with its capability.
            let mut arrived: BTreeMap<u64, (Capability<u64>, Vec<FeedbackInput>)> = BTreeMap::new();
            let mut state = State::default();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let Some(&time) = cap.least() else { return };
                    let (_, records) = arrived
                        .entry(time)
                        .or_insert_with(|| (cap.delayed(&time, 0), Vec::new()));
                    records.append(data);
                });
                while let Some(t) = arrived
                    .first_key_value()
                    .map(|(t, _)| *t)
                    .filter(|t| !frontier.less_equal(t))
                {
                    state.release(Some(t), wait, &counters);
                    let State {
                        generations,
                        forget,
                        waiting,
                        expire,
                    } = &mut state;
                    let (cap, mut records) = arrived.pop_first().expect("first exists").1;
                    // Generations first, in a fixed order, so feedback at `t` sees them all.
                    records.sort_by_key(|r| matches!(r, FeedbackInput::Feedback { .. }));
                    let mut facts = Vec::new();
                    let mut fresh: Vec<String> = Vec::new();
                    for record in records {
                        match record {
                            FeedbackInput::Generation {
                                trace_id,
                                span_id,
                                start_ms,
                                series,
                            } => {
                                let until = start_ms.saturating_add(horizon);
                                if t > until {
                                    // Arrived after its own horizon: no feedback may use it.
                                    continue;
                                }
                                let kept = generations.entry(trace_id.clone()).or_default();
                                if kept.iter().any(|g| g.span_id == span_id) {
                                    continue;
                                }
                                forget
                                    .entry(until)
                                    .or_default()
                                    .push((trace_id.clone(), span_id.clone()));
                                kept.push(Generation {
                                    span_id,
                                    start_ms,
                                    series,
                                });
                                add(&counters.generations_kept, 1);
                                if waiting.contains_key(&trace_id) {
                                    fresh.push(trace_id);
                                }
                            }
                            FeedbackInput::Feedback {
                                trace_id,
                                parent_span_id,
                                event_ms,
                                series,
                                score,
                                label,
                            } => {
                                add(&counters.feedback, 1);
                                let negative = config.is_negative(score, label.as_deref());
                                if let Some(series) = series {
                                    add(&counters.carried, 1);
                                    facts.push(FeedbackFact {
                                        series,
                                        event_ms,
                                        score,
                                        negative,
                                    });
                                    continue;
                                }
                                let found = generations.get(&trace_id).and_then(|kept| {
                                    choose(kept, parent_span_id.as_deref(), event_ms, t, horizon)
                                });
                                match found {
                                    Some(g) => {
                                        add(&counters.joined, 1);
                                        facts.push(FeedbackFact {
                                            series: g.series.clone(),
                                            event_ms,
                                            score,
                                            negative,
                                        });
                                    }
                                    None => {
                                        add(&counters.waiting, 1);
                                        expire
                                            .push_back((t.saturating_add(wait), trace_id.clone()));
                                        waiting.entry(trace_id).or_default().push(Waiting {
                                            cap: cap.clone(),
                                            parent_span_id,
                                            event_ms,
                                            score,
                                            negative,
                                        });
                                    }
                                }
                            }
                        }
                    }
                    if !facts.is_empty() {
                        output.session(&cap).give_container(&mut facts);
                    }
                    // Waiting feedback whose trace got a generation at `t`.
                    fresh.sort();
                    fresh.dedup();
                    for trace in fresh {
                        let kept = generations.get(&trace).map_or(&[][..], Vec::as_slice);
                        let Some(list) = waiting.get_mut(&trace) else {
                            continue;
                        };
                        list.retain(|w| {
                            let Some(g) =
                                choose(kept, w.parent_span_id.as_deref(), w.event_ms, t, horizon)
                            else {
                                return true;
                            };
                            add(&counters.joined, 1);
                            sub(&counters.waiting, 1);
                            // Emitting at the feedback's arrival, which the frontier may have
                            // passed, is allowed: the waiting feedback held it.
                            output.session(&w.cap).give(FeedbackFact {
                                series: g.series.clone(),
                                event_ms: w.event_ms,
                                score: w.score,
                                negative: w.negative,
                            });
                            false
                        });
                        if list.is_empty() {
                            waiting.remove(&trace);
                        }
                    }
                }
                // Nothing before the frontier can arrive any more (nothing at all once it is
                // empty).
                state.release(frontier.frontier().first().copied(), wait, &counters);
            }
        },
    )
}
