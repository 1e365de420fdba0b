//! The trace join: each generation paired with the retrievals that fed it, within its trace.
//!
//! A RAG answer is scored from three texts that live on different spans of one trace: the query
//! and chunks on the retrieval spans, the answer on the llm span. Spans arrive in any order (a
//! trace's records share a Kafka partition, keyed by trace id, but are produced as each span
//! ends), so the join keeps each trace for a configurable timeout of event time and then scores
//! what it has.
//!
//! # Pairing rule
//! For each generation (llm span) `g` of a trace, the candidates are the trace's retrievals `r`
//! with `r.end ≤ g.start` (nanoseconds). Among them, those *linked* to `g` win: a sibling
//! (`r.parent = g.parent`, both set), a child of `g` (`r.parent = g.span`) or the parent of `g`
//! (`g.parent = r.span`). Only when no candidate is linked are all candidates paired (the
//! trace's earlier retrievals, whatever the nesting). The paired retrievals are ordered by
//! (end, start, span id); the item's chunks are theirs in that order, its query the first
//! paired retrieval's query, else the generation's own query (the last user message), and its
//! answer the generation's answer. Only llm and retrieval spans take part (see
//! [`TraceSpan::from_span`]), so a retrieval nested under an intermediate chain span is paired
//! by the fallback, not by a link.
//!
//! A generation without a paired retrieval, or without an answer or any chunk text, is not
//! emitted: it is counted ([`TraceJoinCounters`]), never an error. A missing query does not
//! prevent scoring (faithfulness needs only chunks and answer).
//!
//! # Time contract
//! - Input: [`TraceSpan`]s at timely time `t` (event time, ms), exchanged by trace id. Each is
//!   expected by its own *deadline* `start_ms + timeout_ms`; one arriving later (`t >` its
//!   deadline) is counted late and dropped.
//! - Order: records are buffered until the input frontier passes their time and then processed
//!   in time order, interleaved with trace closings in deadline order (records at `t` before a
//!   deadline `d = t`). The output therefore depends only on which records arrive at which
//!   times, never on how the input was batched or scheduled.
//! - State: per open trace its llm and retrieval spans (with their text), its deadline
//!   `D = min(start_ms) + timeout_ms` over its spans — the timeout is measured from the trace's
//!   **earliest span start** — and one capability at the earliest time any of its spans
//!   arrived. A trace is closed, scored and released when the frontier passes `D`. After that
//!   a tombstone (trace id → `D`) is kept until the frontier passes `D + timeout_ms`: a span of
//!   the closed trace arriving by then is late (it would otherwise be scored a second time);
//!   one arriving later, with a start more than `timeout_ms` after the trace's first span, opens
//!   a new trace under the same id. Records not yet processed hold a capability at their time.
//!   All state is bounded by `timeout_ms` of event time (twice that for tombstones).
//! - Output: a trace's [`RagItem`]s when it closes, at the trace's capability: the earliest
//!   arrival time of its spans, which is at or before every generation's own arrival. A
//!   downstream window over `RagItem::event_ms` thus receives items under the same contract as
//!   the source's spans (time ≤ the pane end of the event time), and its frontier trails the
//!   input frontier by about the timeout while a trace is open. Nothing is retracted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

use glassbox_schemas::{Span, SpanKind, SpanText};
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use crate::metrics::facts::{Dimensions, Series};

/// How long the trace join waits for a trace's spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceJoinConfig {
    /// A trace is scored once the input frontier passes its earliest span start plus this
    /// many ms of event time. Longer than the longest RAG trace plus the source's allowed
    /// lateness, or late spans are dropped. Default 60,000 (1 min); e.g. `timeout_ms = 120000`.
    pub timeout_ms: u64,
    /// Most spans (llm and retrieval) kept per open trace; later ones are dropped and counted
    /// ([`TraceJoinCounters::spans_over_limit`]). Default 1,000. With the per-span limits of
    /// the text extraction this bounds a trace's memory, whatever a client sends.
    pub max_spans_per_trace: usize,
    /// Most chunks per [`RagItem`]: those of the paired retrievals that ended last are kept.
    /// Default 64. Without it one trace of 1,000 generations × 1,000 retrievals would copy a
    /// million retrievals' chunks.
    pub max_chunks_per_item: usize,
}

impl Default for TraceJoinConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 60_000,
            max_spans_per_trace: 1_000,
            max_chunks_per_item: 64,
        }
    }
}

/// What a span is to the trace join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TraceRole {
    /// An llm span: its answer is scored.
    Generation,
    /// A retrieval span: its chunks (and query) feed the generations after it.
    Retrieval,
}

/// A span as the trace join sees it: ids, times, series and text. (`Debug` is safe to log:
/// [`SpanText`]'s shows sizes only.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceSpan {
    /// The trace, lowercase hex.
    pub trace_id: String,
    /// The span, lowercase hex.
    pub span_id: String,
    /// The parent span, if any.
    pub parent_span_id: Option<String>,
    /// Generation or retrieval.
    pub role: TraceRole,
    /// Start, ns since the Unix epoch.
    pub start_unix_nano: u64,
    /// End, ns since the Unix epoch.
    pub end_unix_nano: u64,
    /// The span's series (a generation's is the series its item is scored under).
    pub series: Series,
    /// Query, answer, chunks: present when the decoder keeps text.
    pub text: Option<Box<SpanText>>,
}

impl TraceSpan {
    /// The join's view of `span` under `dims`, taking its text; `None` unless it is an llm or
    /// a retrieval span.
    pub fn from_span(span: Span, dims: &Dimensions) -> Option<Self> {
        let role = match span.kind {
            SpanKind::Llm => TraceRole::Generation,
            SpanKind::Retrieval => TraceRole::Retrieval,
            _ => return None,
        };
        Some(Self {
            series: dims.series_of(&span),
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            role,
            start_unix_nano: span.start_unix_nano,
            end_unix_nano: span.end_unix_nano,
            text: span.text,
        })
    }

    /// Event time: the start in ms since the Unix epoch.
    pub fn start_ms(&self) -> u64 {
        self.start_unix_nano / 1_000_000
    }

    fn query(&self) -> Option<&str> {
        self.text.as_ref()?.query.as_deref()
    }

    fn answer(&self) -> Option<&str> {
        self.text.as_ref()?.answer.as_deref()
    }

    fn chunks(&self) -> &[String] {
        self.text.as_ref().map_or(&[], |t| &t.chunks)
    }
}

/// One generation with the retrieved context it was given: what the quality scorers read.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RagItem {
    /// The trace.
    pub trace_id: String,
    /// The generation (llm span).
    pub span_id: String,
    /// The paired retrieval spans, ordered by end.
    pub retrieval_span_ids: Vec<String>,
    /// Whether the retrievals were paired by a parent/child link (else by time within the
    /// trace only).
    pub linked: bool,
    /// The generation's series.
    pub series: Series,
    /// Event time: the generation's start, ms since the Unix epoch.
    pub event_ms: u64,
    /// The query: the first paired retrieval's, else the generation's last user message.
    pub query: Option<String>,
    /// The paired retrievals' chunks, in retrieval order; never empty.
    pub chunks: Vec<String>,
    /// The generation's answer.
    pub answer: String,
}

impl fmt::Debug for RagItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sizes only: prompt and answer text must never reach a log line.
        f.debug_struct("RagItem")
            .field("trace_id", &self.trace_id)
            .field("span_id", &self.span_id)
            .field("retrieval_span_ids", &self.retrieval_span_ids)
            .field("linked", &self.linked)
            .field("series", &self.series)
            .field("event_ms", &self.event_ms)
            .field("query_bytes", &self.query.as_ref().map(String::len))
            .field("chunks", &self.chunks.len())
            .field("answer_bytes", &self.answer.len())
            .finish()
    }
}

/// The trace join's counters, shared by every worker's instance. All monotone except the two
/// gauges `open_traces` and `tombstones`, which are the operator's state size.
#[derive(Debug, Default)]
pub struct TraceJoinCounters {
    /// Spans taken into a trace.
    pub spans: AtomicU64,
    /// Spans dropped because they arrived after their own deadline or after their trace was
    /// scored.
    pub late_spans: AtomicU64,
    /// Spans dropped as a repeat of a span already in their trace (same id and role).
    pub duplicate_spans: AtomicU64,
    /// Spans dropped because their trace already held
    /// [`TraceJoinConfig::max_spans_per_trace`].
    pub spans_over_limit: AtomicU64,
    /// Items whose chunks were cut to [`TraceJoinConfig::max_chunks_per_item`].
    pub items_chunks_cut: AtomicU64,
    /// Traces closed at their timeout (every trace is closed exactly once).
    pub traces_closed: AtomicU64,
    /// Closed traces that produced at least one [`RagItem`].
    pub traces_scored: AtomicU64,
    /// Closed traces that timed out with retrievals but no generation.
    pub traces_without_generation: AtomicU64,
    /// Generations in closed traces.
    pub generations: AtomicU64,
    /// Generations with no retrieval ending before their start: counted, not emitted.
    pub generations_without_retrieval: AtomicU64,
    /// Generations with retrievals but no answer text or no chunk text: counted, not emitted.
    pub generations_missing_text: AtomicU64,
    /// [`RagItem`]s emitted.
    pub items: AtomicU64,
    /// Gauge: traces open now.
    pub open_traces: AtomicU64,
    /// Gauge: closed traces remembered now (tombstones).
    pub tombstones: AtomicU64,
}

impl TraceJoinCounters {
    /// A snapshot of every counter, by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BTreeMap::from([
            ("spans", get(&self.spans)),
            ("late_spans", get(&self.late_spans)),
            ("duplicate_spans", get(&self.duplicate_spans)),
            ("spans_over_limit", get(&self.spans_over_limit)),
            ("items_chunks_cut", get(&self.items_chunks_cut)),
            ("traces_closed", get(&self.traces_closed)),
            ("traces_scored", get(&self.traces_scored)),
            (
                "traces_without_generation",
                get(&self.traces_without_generation),
            ),
            ("generations", get(&self.generations)),
            (
                "generations_without_retrieval",
                get(&self.generations_without_retrieval),
            ),
            (
                "generations_missing_text",
                get(&self.generations_missing_text),
            ),
            ("items", get(&self.items)),
            ("open_traces", get(&self.open_traces)),
            ("tombstones", get(&self.tombstones)),
        ])
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn sub(counter: &AtomicU64, n: u64) {
    counter.fetch_sub(n, Ordering::Relaxed);
}

/// The exchange key of a trace id.
pub(crate) fn trace_hash(trace_id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    trace_id.hash(&mut h);
    h.finish()
}

/// One open trace.
struct Trace {
    /// At the earliest time any of its spans arrived: the time its items are emitted at.
    cap: Capability<u64>,
    /// Earliest span start + timeout, ms.
    deadline: u64,
    spans: Vec<TraceSpan>,
}

/// What pairing a closed trace's spans found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pairing {
    /// The items to emit, ordered by generation start and span id.
    pub items: Vec<RagItem>,
    /// Generations in the trace.
    pub generations: u64,
    /// Generations without a retrieval ending before their start.
    pub without_retrieval: u64,
    /// Generations with retrievals but no answer or no chunk text.
    pub missing_text: u64,
    /// Items whose chunks were cut to the limit.
    pub chunks_cut: u64,
}

/// Whether retrieval `r` is linked to generation `g` by a parent/child relation.
fn linked(r: &TraceSpan, g: &TraceSpan) -> bool {
    (r.parent_span_id.is_some() && r.parent_span_id == g.parent_span_id)
        || r.parent_span_id.as_deref() == Some(g.span_id.as_str())
        || g.parent_span_id.as_deref() == Some(r.span_id.as_str())
}

/// Pairs the spans of one trace (all of one trace id) by the module's pairing rule, keeping at
/// most `max_chunks` chunks per item (the last ones, of the retrievals that ended last). Public
/// so that a batch job can apply exactly the rule the operator applies.
pub fn pair_trace(spans: &[TraceSpan], max_chunks: usize) -> Pairing {
    let mut retrievals: Vec<&TraceSpan> = spans
        .iter()
        .filter(|s| s.role == TraceRole::Retrieval)
        .collect();
    retrievals.sort_by(|a, b| {
        (a.end_unix_nano, a.start_unix_nano, &a.span_id).cmp(&(
            b.end_unix_nano,
            b.start_unix_nano,
            &b.span_id,
        ))
    });
    let mut generations: Vec<&TraceSpan> = spans
        .iter()
        .filter(|s| s.role == TraceRole::Generation)
        .collect();
    generations
        .sort_by(|a, b| (a.start_unix_nano, &a.span_id).cmp(&(b.start_unix_nano, &b.span_id)));
    let mut pairing = Pairing {
        generations: generations.len() as u64,
        ..Pairing::default()
    };
    for g in generations {
        let before: Vec<&TraceSpan> = retrievals
            .iter()
            .copied()
            .filter(|r| r.end_unix_nano <= g.start_unix_nano)
            .collect();
        let linked_ones: Vec<&TraceSpan> =
            before.iter().copied().filter(|r| linked(r, g)).collect();
        let is_linked = !linked_ones.is_empty();
        let paired = if is_linked { linked_ones } else { before };
        if paired.is_empty() {
            pairing.without_retrieval += 1;
            continue;
        }
        let total: usize = paired.iter().map(|r| r.chunks().len()).sum();
        let skip = total.saturating_sub(max_chunks);
        if skip > 0 {
            pairing.chunks_cut += 1;
        }
        let chunks: Vec<String> = paired
            .iter()
            .flat_map(|r| r.chunks())
            .skip(skip)
            .cloned()
            .collect();
        let Some(answer) = g.answer().filter(|_| !chunks.is_empty()) else {
            pairing.missing_text += 1;
            continue;
        };
        pairing.items.push(RagItem {
            trace_id: g.trace_id.clone(),
            span_id: g.span_id.clone(),
            retrieval_span_ids: paired.iter().map(|r| r.span_id.clone()).collect(),
            linked: is_linked,
            series: g.series.clone(),
            event_ms: g.start_ms(),
            query: paired
                .iter()
                .find_map(|r| r.query())
                .or_else(|| g.query())
                .map(str::to_owned),
            chunks,
            answer: answer.to_owned(),
        });
    }
    pairing
}

/// Joins each trace's generations with their retrievals; see the module docs for the pairing
/// rule and the time contract.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use glassbox_operators::quality::trace_join::{TraceJoinConfig, TraceJoinCounters, TraceSpan, trace_join};
/// use timely::dataflow::operators::capture::{Capture, Extract};
/// use timely::dataflow::operators::vec::Input;
///
/// let counters = Arc::new(TraceJoinCounters::default());
/// let shared = counters.clone();
/// let items = timely::execute_directly(move |worker| {
///     let (mut input, items) = worker.dataflow::<u64, _, _>(|scope| {
///         let (input, spans) = scope.new_input::<TraceSpan>();
///         let config = TraceJoinConfig { timeout_ms: 30_000, ..TraceJoinConfig::default() };
///         (input, trace_join(spans, &config, shared).capture())
///     });
///     input.advance_to(1_000);
///     // … input.send(TraceSpan::from_span(span, &dims).unwrap()) for decoded spans …
///     drop(input);
///     while worker.step_or_park(None) {}
///     items.extract()
/// });
/// assert!(items.is_empty());
/// assert_eq!(counters.snapshot()["open_traces"], 0);
/// ```
pub fn trace_join<'scope>(
    spans: StreamVec<'scope, u64, TraceSpan>,
    config: &TraceJoinConfig,
    counters: Arc<TraceJoinCounters>,
) -> StreamVec<'scope, u64, RagItem> {
    let timeout = config.timeout_ms;
    let (max_spans, max_chunks) = (config.max_spans_per_trace, config.max_chunks_per_item);
    spans.unary_frontier(
        // A trace is joined by one worker, which sees all its spans.
        Exchange::new(|s: &TraceSpan| trace_hash(&s.trace_id)),
        "TraceJoin",
        move |_cap, _info| {
            // Records not yet processed, by input time, each time with its capability.
            let mut arrived: BTreeMap<u64, (Capability<u64>, Vec<TraceSpan>)> = BTreeMap::new();
            let mut open: HashMap<String, Trace> = HashMap::default();
            // (deadline, trace id) of every open trace.
            let mut due: BTreeSet<(u64, String)> = BTreeSet::new();
            // Tombstones: closed trace → its deadline; and when to forget each, in order.
            let mut closed: HashMap<String, u64> = HashMap::default();
            let mut forget: VecDeque<(u64, String)> = VecDeque::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let Some(&time) = cap.least() else { return };
                    let (_, spans) = arrived
                        .entry(time)
                        .or_insert_with(|| (cap.delayed(&time, 0), Vec::new()));
                    spans.append(data);
                });
                loop {
                    // The next event whose time the frontier has passed (so nothing at or
                    // before it can still arrive): the records of one input time, or one
                    // trace's deadline. Records at `t` go before a deadline at `t`.
                    let arrival = arrived
                        .first_key_value()
                        .map(|(t, _)| *t)
                        .filter(|t| !frontier.less_equal(t));
                    let deadline = due
                        .first()
                        .map(|(d, _)| *d)
                        .filter(|d| !frontier.less_equal(d));
                    match (arrival, deadline) {
                        (Some(t), d) if d.is_none_or(|d| t <= d) => {
                            let (cap, spans) = arrived.pop_first().expect("first exists").1;
                            for span in spans {
                                let own = span.start_ms().saturating_add(timeout);
                                let scored = closed
                                    .get(&span.trace_id)
                                    .is_some_and(|d| t <= d.saturating_add(timeout));
                                if t > own || scored {
                                    add(&counters.late_spans, 1);
                                    continue;
                                }
                                match open.get_mut(&span.trace_id) {
                                    Some(trace) => {
                                        if trace.spans.iter().any(|s| {
                                            s.span_id == span.span_id && s.role == span.role
                                        }) {
                                            add(&counters.duplicate_spans, 1);
                                            continue;
                                        }
                                        if trace.spans.len() >= max_spans {
                                            add(&counters.spans_over_limit, 1);
                                            continue;
                                        }
                                        // An earlier start brings the deadline forward; it
                                        // is still ≥ t (the span is not late), and every
                                        // earlier deadline has been processed already.
                                        if own < trace.deadline {
                                            due.remove(&(trace.deadline, span.trace_id.clone()));
                                            due.insert((own, span.trace_id.clone()));
                                            trace.deadline = own;
                                        }
                                        // Records are processed in time order: the trace's
                                        // capability is already at its earliest arrival.
                                        trace.spans.push(span);
                                    }
                                    None => {
                                        due.insert((own, span.trace_id.clone()));
                                        add(&counters.open_traces, 1);
                                        open.insert(
                                            span.trace_id.clone(),
                                            Trace {
                                                cap: cap.clone(),
                                                deadline: own,
                                                spans: vec![span],
                                            },
                                        );
                                    }
                                }
                                add(&counters.spans, 1);
                            }
                        }
                        (_, Some(d)) => {
                            let (_, id) = due.pop_first().expect("first exists");
                            let trace = open.remove(&id).expect("a due trace is open");
                            sub(&counters.open_traces, 1);
                            let pairing = pair_trace(&trace.spans, max_chunks);
                            add(&counters.items_chunks_cut, pairing.chunks_cut);
                            add(&counters.traces_closed, 1);
                            add(&counters.generations, pairing.generations);
                            add(
                                &counters.generations_without_retrieval,
                                pairing.without_retrieval,
                            );
                            add(&counters.generations_missing_text, pairing.missing_text);
                            if pairing.generations == 0 {
                                add(&counters.traces_without_generation, 1);
                            }
                            if !pairing.items.is_empty() {
                                add(&counters.traces_scored, 1);
                                add(&counters.items, pairing.items.len() as u64);
                                let mut items = pairing.items;
                                // Emitting at the trace's earliest arrival, long passed by
                                // the input frontier, is allowed: the trace held it.
                                output.session(&trace.cap).give_container(&mut items);
                            }
                            if closed.insert(id.clone(), d).is_none() {
                                add(&counters.tombstones, 1);
                            }
                            forget.push_back((d.saturating_add(timeout), id));
                        }
                        (_, None) => break,
                    }
                }
                // A tombstone is consulted only by records at or before its expiry; once the
                // frontier is past it no such record can come.
                while forget
                    .front()
                    .is_some_and(|(at, _)| !frontier.less_equal(at))
                {
                    let (at, id) = forget.pop_front().expect("front exists");
                    // The same id may have been closed again since (a later session).
                    if closed
                        .get(&id)
                        .is_some_and(|d| d.saturating_add(timeout) == at)
                    {
                        closed.remove(&id);
                        sub(&counters.tombstones, 1);
                    }
                }
            }
        },
    )
}
