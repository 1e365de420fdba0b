//! The Kafka source: records → spans → facts, stamped with event time under a watermark.
//!
//! # Time contract
//! - Each worker owns a static set of partitions (`partition % workers == worker`), read with
//!   `assign()`: a group rebalance would move a partition without its capability. `group.id` is
//!   still set so that offsets are committed to the group and lag shows in standard tools.
//! - The worker holds one capability at its watermark: the minimum, over its non-idle
//!   partitions, of (largest event time seen − allowed lateness). A partition that has not
//!   produced a record for `idle_timeout_ms` stops holding it back; when all are idle the
//!   watermark follows the wall clock from the last event time seen (or, with
//!   `stop_when_idle`, the capability is dropped and every window closes). Both decisions are
//!   the pure [`crate::kafka::watermark`], tested without a broker.
//! - A span is emitted at the capability's time if its pane has not closed (`pane_end ≥`
//!   watermark); otherwise it is late: counted, and dead-lettered with reason `late`.
//! - Offsets: see [`crate::kafka::offsets`]. Each commit carries the durable frontier (see
//!   [`CommitBoard`]); after a restart, spans whose windows all ended before it are skipped
//!   (their results are already durable) and the sinks suppress windows before it, so replay
//!   re-emits only windows it can rebuild whole, with the same key and content.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glassbox_operators::metrics::panes::pane_end;
use glassbox_operators::{Dimensions, FeedbackInput, SpanFacts, TraceSpan, Views};

use glassbox_operators::quality::QualityInput;
use glassbox_schemas::{DecodeError, Decoded, InputFormat, JsonDecoder, Span, confluent_frame};
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::offsets::CommitBoard;
use crate::kafka::outbox::{Outbox, Tag};
use crate::kafka::watermark::{Ends, Held, Partition, Watermark};
use crate::registry::{Lookup, SchemaRegistry};
use crate::telemetry::Counters;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Asks the broker and the consumer for a partition's ends, for [`Partition::idle`]; `None`
/// (logged) when the broker cannot say.
fn ends(consumer: &BaseConsumer, topic: &str, partition: i32) -> Option<Ends> {
    let consumer_position = consumer.position().ok().and_then(|tpl| {
        match tpl.find_partition(topic, partition)?.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        }
    });
    match consumer.fetch_watermarks(topic, partition, Duration::from_secs(2)) {
        Ok((low, high)) => Some(Ends {
            consumer_position,
            low,
            high,
        }),
        Err(e) => {
            tracing::warn!(partition, error = %e, "cannot fetch watermarks; partition counts as active");
            None
        }
    }
}

/// Settings of a worker's source.
#[derive(Clone, Debug)]
pub struct SourceSettings {
    /// Input topic.
    pub topic: String,
    /// The input records' format (`decode.format`).
    pub format: InputFormat,
    /// The schema registry of `avro_registry` records, when one is configured.
    pub registry: Option<Arc<SchemaRegistry>>,
    /// Dead-letter topic.
    pub deadletter_topic: Arc<str>,
    /// Series dimensions.
    pub dims: Dimensions,
    /// Window views.
    pub views: Views,
    /// Allowed lateness, ms.
    pub lateness_ms: u64,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Finish when all partitions are idle.
    pub stop_when_idle: bool,
    /// Finish when all partitions are idle, once this is set (at run time).
    pub drain: Arc<std::sync::atomic::AtomicBool>,
    /// Dead-letter late spans.
    pub deadletter_late: bool,
    /// Records per activation.
    pub max_records: usize,
    /// Backlog beyond which reading pauses.
    pub max_backlog: usize,
    /// Windows ending before this were durable before the restart.
    pub resume_ms: u64,
    /// Records to rewind before a committed offset, -1 for all (`source.resume_rewind_records`).
    pub rewind: i64,
    /// How calls are keyed for pricing; `None` when cost is off.
    pub keying: Option<glassbox_operators::CostKeying>,
    /// The quality path's trace timeout (ms) when `quality.enabled`: llm, retrieval and
    /// feedback spans are then also handed to it (see [`KafkaSource::take_quality`]), and
    /// their offsets held until their quality windows are durable too.
    pub quality_timeout_ms: Option<u64>,
    /// How long after its last window a span is still needed (ms): the alert rules' history
    /// and lifecycle (see `alerting`). A span's offset is committed, and a replayed span
    /// skipped, only once this much event time has passed its last window too.
    pub retention_ms: u64,
}

/// One worker's share of the input: its consumer, partitions, watermark and commits.
pub struct KafkaSource {
    consumer: Arc<BaseConsumer>,
    /// One queue per owned partition, read round-robin so that no partition starves another.
    queues: Vec<(i32, PartitionQueue<DefaultConsumerContext>)>,
    inner: Inner,
    watermark: Watermark,
    finished: bool,
}

/// Everything but the consumer, so that a record borrowed from the consumer can be handled.
struct Inner {
    settings: SourceSettings,
    decoder: JsonDecoder,
    partitions: BTreeMap<i32, Partition>,
    outbox: Rc<RefCell<Outbox>>,
    counters: Arc<Counters>,
    /// Spans for the quality path, read since the last [`KafkaSource::take_quality`].
    quality: Vec<QualityInput>,
    /// The registry's final answers (schema, or unknown) by schema id, for this worker.
    schemas: HashMap<u32, Lookup>,
}

/// What one activation of the source did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Activation {
    /// Records read.
    pub records: usize,
    /// The watermark after the read; `None` once the input is finished.
    pub watermark: Option<u64>,
}

impl KafkaSource {
    /// A source reading `partitions` (with their start offsets) through `consumer`.
    pub fn new(
        consumer: BaseConsumer,
        partitions: &[(i32, Offset)],
        settings: SourceSettings,
        decoder: JsonDecoder,
        outbox: Rc<RefCell<Outbox>>,
        counters: Arc<Counters>,
    ) -> rdkafka::error::KafkaResult<Self> {
        let mut tpl = TopicPartitionList::new();
        for (p, offset) in partitions {
            let start = match offset {
                Offset::Offset(_) if settings.rewind < 0 => Offset::Beginning,
                Offset::Offset(c) if settings.rewind > 0 => {
                    Offset::Offset((c - settings.rewind).max(0))
                }
                other => *other,
            };
            tpl.add_partition_offset(&settings.topic, *p, start)?;
        }
        consumer.assign(&tpl)?;
        let consumer = Arc::new(consumer);
        let queues = partitions
            .iter()
            .map(|(p, _)| {
                consumer
                    .split_partition_queue(&settings.topic, *p)
                    .map(|q| (*p, q))
                    .ok_or(KafkaError::Subscription(format!(
                        "cannot split the queue of partition {p}"
                    )))
            })
            .collect::<Result<_, _>>()?;
        let now = Instant::now();
        let partitions = partitions
            .iter()
            .map(|(p, start)| (*p, Partition::new(*start, now)))
            .collect();
        let watermark = Watermark::new(settings.lateness_ms);
        Ok(Self {
            consumer,
            queues,
            inner: Inner {
                settings,
                decoder,
                partitions,
                outbox,
                counters,
                quality: Vec::new(),
                schemas: HashMap::new(),
            },
            watermark,
            finished: false,
        })
    }

    /// Moves the spans read for the quality path (with `quality_timeout_ms`) since the last
    /// call into `out`. They were read at the times of the activations that read them, so they
    /// may be emitted at any time not after the source's current capability.
    pub fn take_quality(&mut self, out: &mut Vec<QualityInput>) {
        out.append(&mut self.inner.quality);
    }

    /// Reads up to `max_records` records into `out`, given the capability's time, and returns
    /// the watermark to hold next.
    pub fn activate(
        &mut self,
        cap_time: u64,
        backlog: usize,
        out: &mut Vec<SpanFacts>,
    ) -> Activation {
        if self.finished || self.inner.partitions.is_empty() {
            self.finished = true;
            return Activation {
                records: 0,
                watermark: None,
            };
        }
        let mut records = 0;
        if backlog + self.inner.outbox.borrow().backlog() >= self.inner.settings.max_backlog {
            // Back-pressure: the sinks are behind. Not reading is not idleness.
            Counters::inc(&self.inner.counters.backpressure_pauses);
            let now = Instant::now();
            for p in self.inner.partitions.values_mut() {
                p.last_record = now;
            }
        } else {
            let now_ms = now_ms();
            // The main queue first: it holds any record fetched before the partition queues
            // were split off, and those come before every record of their partition's own
            // queue. The commit bookkeeping and the watermark rely on each partition's records
            // arriving in offset order; read the other way round, offsets k.. could be counted
            // (and k committed) before 0..k were.
            while let Some(result) = self.consumer.poll(Duration::ZERO) {
                records += 1;
                self.inner.message(result, cap_time, now_ms, out);
            }
            let budget = (self.inner.settings.max_records / self.queues.len().max(1)).max(1);
            for (partition, queue) in &self.queues {
                // Records waiting for their schema first; while one still waits, the
                // partition is not read further, and it is not idle: it is paused.
                if !self.inner.retry_held(*partition, cap_time, now_ms, out) {
                    if let Some(p) = self.inner.partitions.get_mut(partition) {
                        p.last_record = Instant::now();
                    }
                    continue;
                }
                for _ in 0..budget {
                    let Some(result) = queue.poll(Duration::ZERO) else {
                        break;
                    };
                    records += 1;
                    self.inner.message(result, cap_time, now_ms, out);
                    if self
                        .inner
                        .partitions
                        .get(partition)
                        .is_some_and(|p| !p.held.is_empty())
                    {
                        break;
                    }
                }
            }
            // Callbacks that arrived meanwhile.
            while let Some(result) = self.consumer.poll(Duration::ZERO) {
                records += 1;
                self.inner.message(result, cap_time, now_ms, out);
            }
        }
        for (partition, offset) in self.inner.outbox.borrow_mut().take_dead_letter_acks() {
            if let Some(p) = self.inner.partitions.get_mut(&partition) {
                p.commits.dead_letter_acked(offset);
            }
        }
        let watermark = self.next_watermark();
        Activation { records, watermark }
    }

    fn next_watermark(&mut self) -> Option<u64> {
        let now = Instant::now();
        let idle = self.inner.settings.idle_timeout;
        let (consumer, topic) = (&self.consumer, &self.inner.settings.topic);
        let states: Vec<(bool, Option<u64>)> = self
            .inner
            .partitions
            .iter_mut()
            .map(|(&partition, p)| {
                let idle = p.idle(idle, now, || ends(consumer, topic, partition));
                (idle, p.max_event_ms)
            })
            .collect();
        let finish_when_idle = self.inner.settings.stop_when_idle
            || self
                .inner
                .settings
                .drain
                .load(std::sync::atomic::Ordering::Relaxed);
        let next = self.watermark.next(&states, finish_when_idle, now);
        if next.is_none() {
            self.finished = true;
        }
        next
    }

    /// Whether the source has finished (`stop_when_idle` and all partitions idle).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Deposits, per partition, the offset whose outputs are all durable, and this worker's
    /// frontier (see [`CommitBoard`]). `durable`: every output before this time is acknowledged
    /// by every sink (`None`: every output is).
    pub fn deposit(&mut self, durable: Option<u64>, board: &std::sync::Mutex<CommitBoard>) {
        for (partition, offset) in self.inner.outbox.borrow_mut().take_dead_letter_acks() {
            if let Some(p) = self.inner.partitions.get_mut(&partition) {
                p.commits.dead_letter_acked(offset);
            }
        }
        let mut points = Vec::new();
        let mut max_derived = 0;
        for (&partition, p) in self.inner.partitions.iter_mut() {
            if let Some(offset) = p.commits.commit_point(durable) {
                points.push((partition, offset));
            }
            max_derived = max_derived.max(p.commits.max_derived());
        }
        let frontier = durable
            .unwrap_or(u64::MAX)
            .min(max_derived.saturating_add(1));
        board
            .lock()
            .expect("commit board lock")
            .deposit(points, frontier);
    }
}

impl Inner {
    fn message(
        &mut self,
        result: KafkaResult<BorrowedMessage<'_>>,
        cap_time: u64,
        now_ms: u64,
        out: &mut Vec<SpanFacts>,
    ) {
        match result {
            Ok(msg) => {
                let key = msg.key().unwrap_or_default();
                let payload = msg.payload().unwrap_or_default();
                let (partition, offset) = (msg.partition(), msg.offset());
                let hold = |p: &mut Partition| {
                    p.held.push_back(Held {
                        offset,
                        key: key.to_vec(),
                        payload: payload.to_vec(),
                    })
                };
                // Behind a held record, a record waits its turn (the main queue can still
                // deliver records of a paused partition).
                if let Some(p) = self.partitions.get_mut(&partition)
                    && !p.held.is_empty()
                {
                    hold(p);
                    return;
                }
                let read = self.record(partition, offset, key, payload, cap_time, now_ms, out);
                if read == Read::Held
                    && let Some(p) = self.partitions.get_mut(&partition)
                {
                    hold(p);
                }
            }
            Err(e) => tracing::warn!(error = %e, "kafka consumer error"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        partition: i32,
        offset: i64,
        key: &[u8],
        payload: &[u8],
        cap_time: u64,
        now_ms: u64,
        out: &mut Vec<SpanFacts>,
    ) -> Read {
        let Some(p) = self.partitions.get_mut(&partition) else {
            tracing::error!(
                partition,
                "record from a partition this worker does not own"
            );
            return Read::Done;
        };
        p.last_record = Instant::now();
        let first = p.position.is_none();
        if let Some(expected) = p.position
            && offset + 1 < expected
            && p.held.is_empty()
        {
            // Never expected: the commit bookkeeping assumes offset order.
            tracing::error!(
                partition,
                expected,
                got = offset,
                "an input record arrived out of offset order"
            );
        }
        if let Some(expected) = p.position
            && offset > expected
        {
            // Legitimate after compaction or transactions; otherwise the broker skipped records.
            tracing::warn!(
                partition,
                expected,
                got = offset,
                "offset gap in the input partition"
            );
        }
        p.position = Some(p.position.map_or(offset + 1, |next| next.max(offset + 1)));
        if offset < p.skip_below {
            return Read::Done; // read before the restart, and committed: rewound past on purpose
        }
        let resolved = self
            .settings
            .format
            .resolve(payload, self.settings.registry.is_some());
        // The record decoded with its format, or why not (with its format once known).
        let decoded = match resolved {
            Err(e) => Err((None, e)),
            Ok(InputFormat::AvroRegistry) => match self.avro(payload, now_ms) {
                None => return Read::Held,
                Some(span) => span
                    .map(|s| (InputFormat::AvroRegistry, Decoded::Span(Box::new(s))))
                    .map_err(|e| (Some(InputFormat::AvroRegistry), e)),
            },
            Ok(format) => self
                .decoder
                .decode_as(format, payload, now_ms)
                .map(|d| (format, d))
                .map_err(|e| (Some(format), e)),
        };
        let p = self
            .partitions
            .get_mut(&partition)
            .expect("owned partition");
        Counters::inc(&self.counters.consumed);
        if first && offset > p.skip_below && matches!(p.start, Offset::Offset(_)) {
            tracing::error!(
                partition,
                expected = p.skip_below,
                got = offset,
                "the broker skipped records after the committed offset; raise source.resume_rewind_records"
            );
        }
        let (format, decoded) = match decoded {
            Ok(decoded) => decoded,
            Err((format, e)) => {
                let letter = Letter::record(payload, e.reason(), e.to_string(), format);
                self.dead_letter(partition, offset, key, letter);
                return Read::Done;
            }
        };
        let derived = match decoded {
            Decoded::Span(span) => match self.span(partition, *span, cap_time, out) {
                Fate::Counted(derived) => derived,
                Fate::Late(late) => {
                    if self.settings.deadletter_late {
                        let letter = Letter::record(payload, "late", late.detail, Some(format));
                        self.dead_letter(partition, offset, key, letter);
                    }
                    0
                }
            },
            Decoded::Batch(batch) => {
                let mut derived = 0;
                let mut late = Vec::new();
                for (at, item) in batch.into_iter().enumerate() {
                    match item {
                        Ok(span) => match self.span(partition, span, cap_time, out) {
                            Fate::Counted(d) => derived = derived.max(d),
                            Fate::Late(l) => late.push((at, l)),
                        },
                        Err(rejected) => {
                            let letter = Letter {
                                payload: &rejected.record,
                                reason: rejected.error.reason(),
                                detail: rejected.error.to_string(),
                                span: Some((at, &rejected.trace_id, &rejected.span_id)),
                                format: Some(format),
                            };
                            self.dead_letter(partition, offset, key, letter);
                        }
                    }
                }
                if self.settings.deadletter_late && !late.is_empty() {
                    // Only the late spans, each alone: their neighbours were counted.
                    let at: Vec<usize> = late.iter().map(|(at, _)| *at).collect();
                    let alone: BTreeMap<usize, Vec<u8>> =
                        format.spans_alone(payload, &at).into_iter().collect();
                    for (at, l) in late {
                        let payload = alone.get(&at).map_or(&[][..], |r| &r[..]);
                        let letter = Letter {
                            payload,
                            reason: "late",
                            detail: l.detail,
                            span: Some((at, &l.trace_id, &l.span_id)),
                            format: Some(format),
                        };
                        self.dead_letter(partition, offset, key, letter);
                    }
                }
                derived
            }
        };
        // Every span of the record is accounted for: counted, skipped or dead-lettered.
        self.partitions
            .get_mut(&partition)
            .expect("owned partition")
            .commits
            .consumed(offset, derived);
        Read::Done
    }

    /// An `avro_registry` record's span, or `None` while its schema is being fetched (the
    /// record is then held, see [`Inner::retry_held`]).
    fn avro(&mut self, payload: &[u8], now_ms: u64) -> Option<Result<Span, DecodeError>> {
        let registry = self.settings.registry.as_ref()?;
        let (id, body) = match confluent_frame(payload) {
            Ok(frame) => frame,
            Err(e) => return Some(Err(e)),
        };
        // Final answers are kept here, so that a record does not take the client's lock
        // shared by every worker.
        let lookup = match self.schemas.get(&id) {
            Some(known) => known.clone(),
            None => {
                let lookup = registry.lookup(id);
                if !matches!(lookup, Lookup::Pending) {
                    self.schemas.insert(id, lookup.clone());
                }
                lookup
            }
        };
        match lookup {
            Lookup::Pending => None,
            Lookup::Unknown(_) => Some(Err(DecodeError::UnknownSchema { id })),
            Lookup::Ready(schema) => Some(self.decoder.decode_avro(&schema, id, body, now_ms)),
        }
    }

    /// Handles the records `partition` holds, oldest first, as far as their schemas are known;
    /// `true` when none is held any more.
    fn retry_held(
        &mut self,
        partition: i32,
        cap_time: u64,
        now_ms: u64,
        out: &mut Vec<SpanFacts>,
    ) -> bool {
        loop {
            let Some(held) = self
                .partitions
                .get_mut(&partition)
                .and_then(|p| p.held.pop_front())
            else {
                return true;
            };
            let read = self.record(
                partition,
                held.offset,
                &held.key,
                &held.payload,
                cap_time,
                now_ms,
                out,
            );
            if read == Read::Held {
                if let Some(p) = self.partitions.get_mut(&partition) {
                    p.held.push_front(held);
                }
                return false;
            }
        }
    }

    /// One decoded span of a record read from `partition`: into `out` (and the quality path),
    /// skipped, or late. Returns the end of the last window it feeds (0: none).
    fn span(
        &mut self,
        partition: i32,
        span: Span,
        cap_time: u64,
        out: &mut Vec<SpanFacts>,
    ) -> Fate {
        Counters::inc(&self.counters.decoded);
        let facts =
            SpanFacts::from_span_priced(&span, &self.settings.dims, self.settings.keying.as_ref());
        // The quality path's share of the span: its generation/retrieval part for the trace
        // join, its feedback part for the feedback join. Taken before the span is moved.
        let mut quality = Vec::new();
        let mut quality_end = 0;
        if let Some(timeout) = self.settings.quality_timeout_ms {
            let start_ms = span.start_ms();
            quality_end = self.settings.views.last_window_end(start_ms)
                + timeout
                + self.settings.retention_ms;
            if let Some(fb) = FeedbackInput::from_span(&span, &self.settings.dims) {
                quality.push(QualityInput::Feedback(fb));
            }
        }
        // Only spans with text can be scored or feed a scored answer: the others stay out of
        // the trace join (most spans of an application without RAG have none). Their ids are
        // kept in case the span turns out late.
        let mut ids = None;
        let span = if self.settings.quality_timeout_ms.is_some() && span.text.is_some() {
            ids = Some((span.trace_id.clone(), span.span_id.clone()));
            if let Some(t) = TraceSpan::from_span(span, &self.settings.dims) {
                quality.push(QualityInput::Trace(t));
            }
            None
        } else {
            Some(span)
        };
        let Some(facts) = facts else {
            if quality.is_empty() {
                Counters::inc(&self.counters.ignored_kind);
                return Fate::Counted(0);
            } else if quality_end < self.settings.resume_ms {
                Counters::inc(&self.counters.skipped_replay);
                return Fate::Counted(0);
            }
            self.quality.extend(quality);
            return Fate::Counted(quality_end);
        };
        let last_end = (self.settings.views.last_window_end(facts.start_ms)
            + self.settings.retention_ms)
            .max(quality_end);
        if last_end < self.settings.resume_ms {
            // Every window of this span was durable before the restart.
            Counters::inc(&self.counters.skipped_replay);
            return Fate::Counted(0);
        }
        let p = self
            .partitions
            .get_mut(&partition)
            .expect("owned partition");
        p.max_event_ms = Some(
            p.max_event_ms
                .map_or(facts.start_ms, |m| m.max(facts.start_ms)),
        );
        if pane_end(facts.start_ms, self.settings.views.pane_ms) < cap_time {
            Counters::inc(&self.counters.late);
            let (trace_id, span_id) = span
                .map(|s| (s.trace_id, s.span_id))
                .or(ids)
                .unwrap_or_default();
            return Fate::Late(Late {
                detail: format!(
                    "window closed: span start {} ms, watermark {} ms",
                    facts.start_ms, cap_time
                ),
                trace_id,
                span_id,
            });
        }
        out.push(facts);
        self.quality.extend(quality);
        Fate::Counted(last_end)
    }

    /// Sends `letter` to the dead-letter topic for record `offset` of `partition`; the record's
    /// offset is held back until it is acknowledged.
    fn dead_letter(&mut self, partition: i32, offset: i64, key: &[u8], letter: Letter<'_>) {
        self.counters.dead_letter(letter.reason);
        let p = self
            .partitions
            .get_mut(&partition)
            .expect("owned partition");
        p.commits.consumed(offset, 0);
        p.commits.dead_letter_sent(offset);
        let mut headers = vec![
            ("glassbox.reason", letter.reason.as_bytes().to_vec()),
            ("glassbox.error", letter.detail.into_bytes()),
            (
                "glassbox.source.topic",
                self.settings.topic.as_bytes().to_vec(),
            ),
            (
                "glassbox.source.partition",
                partition.to_string().into_bytes(),
            ),
            ("glassbox.source.offset", offset.to_string().into_bytes()),
        ];
        if let Some(format) = letter.format {
            headers.push(("glassbox.format", format.as_str().as_bytes().to_vec()));
        }
        if let Some((at, trace_id, span_id)) = letter.span {
            headers.push(("glassbox.span.index", at.to_string().into_bytes()));
            headers.push(("glassbox.trace_id", trace_id.as_bytes().to_vec()));
            headers.push(("glassbox.span_id", span_id.as_bytes().to_vec()));
        }
        self.outbox.borrow_mut().send(
            &self.settings.deadletter_topic,
            key.to_vec(),
            letter.payload.to_vec(),
            headers,
            Tag::DeadLetter { partition, offset },
        );
    }
}

/// Whether a record was handled, or is held until its schema is known.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// Counted, skipped or dead-lettered.
    Done,
    /// Waiting for its schema.
    Held,
}

/// What became of one decoded span.
enum Fate {
    /// Counted, or skipped: its outputs end at this time (ms; 0 for none).
    Counted(u64),
    /// Its window had closed.
    Late(Late),
}

/// A late span: why, and its ids (for the dead letter of a span of a batch).
struct Late {
    detail: String,
    trace_id: String,
    span_id: String,
}

/// One dead-letter record: the input record, or one span of an OTLP batch cut out alone.
struct Letter<'a> {
    payload: &'a [u8],
    reason: &'static str,
    detail: String,
    /// For a span of a batch: its position in the batch, trace id and span id.
    span: Option<(usize, &'a str, &'a str)>,
    /// The record's format, once known.
    format: Option<InputFormat>,
}

impl<'a> Letter<'a> {
    /// The whole record.
    fn record(
        payload: &'a [u8],
        reason: &'static str,
        detail: String,
        format: Option<InputFormat>,
    ) -> Self {
        Self {
            payload,
            reason,
            detail,
            span: None,
            format,
        }
    }
}
