//! A worker's Kafka producer that never loses a record: every record stays in the outbox until
//! the broker acknowledges it, failed deliveries are re-sent with backoff, and callers learn
//! which of their records are durable through [`Tag`]s.
//!
//! librdkafka already retries transient errors inside `message.timeout.ms`; the outbox adds the
//! retry beyond that (a broker down for minutes) and the bounded backlog the source reads to
//! apply back-pressure.
//!
//! A refusal that no retry can cure (a record over the broker's or the client's size limit, a
//! record the broker calls invalid) is final: the record is replaced by a dead letter of
//! itself — key and payload cut to [`DEAD_LETTER_CUT`] bytes, reason `too_large` or
//! `refused` — which carries the same [`Tag`], so its owner learns it is settled once the dead
//! letter is durable. If even the dead-letter topic refuses it, it is dropped with an error and
//! counted (`outputs_dropped`): it never wedges the commits of everything else.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::telemetry::Counters;

/// What a record stands for, returned to its owner once the broker has acknowledged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tag {
    /// A dead-letter copy of input record `(partition, offset)`.
    DeadLetter {
        /// Input partition.
        partition: i32,
        /// Input offset.
        offset: i64,
    },
    /// A sink ticket (see [`crate::sinks`]).
    Ticket(u64),
    /// The dead letter of a record a sink refused, whose owner holds the record's ticket until
    /// it is durable (a receipt of [`Outbox::receipt`]).
    Held(u64),
}

/// How much of a refused record's key and payload its dead letter keeps.
pub const DEAD_LETTER_CUT: usize = 64 * 1024;

struct Pending {
    topic: Arc<str>,
    key: Vec<u8>,
    payload: Vec<u8>,
    headers: Vec<(&'static str, Vec<u8>)>,
    tag: Tag,
    attempts: u32,
    /// Already the dead letter of a refused record.
    replaced: bool,
}

/// Why a produce can never succeed, if it cannot.
fn permanent(code: RDKafkaErrorCode) -> Option<&'static str> {
    use RDKafkaErrorCode as C;
    match code {
        C::MessageSizeTooLarge | C::InvalidMessageSize | C::MessageBatchTooLarge => {
            Some("too_large")
        }
        C::InvalidMessage | C::InvalidRecord | C::UnknownTopic | C::TopicAuthorizationFailed => {
            Some("refused")
        }
        _ => None,
    }
}

/// Sends delivery reports from librdkafka's thread to the worker.
pub struct OutboxContext {
    acks: std::sync::Mutex<Sender<(usize, Option<Failure>)>>,
}

/// A failed delivery: the message, and why it is final if it is.
type Failure = (String, Option<&'static str>);

impl ClientContext for OutboxContext {}

impl ProducerContext for OutboxContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let outcome = match result {
            Ok(_) => None,
            Err((e, _)) => Some((e.to_string(), e.rdkafka_error_code().and_then(permanent))),
        };
        // The receiver only disappears when the worker is gone; nothing is left to tell.
        let _ = self
            .acks
            .lock()
            .expect("ack channel lock")
            .send((id, outcome));
    }
}

/// A producer with an acknowledgement-tracked outbox. One per worker.
pub struct Outbox {
    producer: ThreadedProducer<OutboxContext>,
    acks: Receiver<(usize, Option<Failure>)>,
    deadletter_topic: Arc<str>,
    pending: HashMap<usize, Pending>,
    retry: VecDeque<(Instant, usize)>,
    next_id: usize,
    acked_dead_letters: Vec<(i32, i64)>,
    acked_tickets: Vec<u64>,
    /// Receipts of [`Tag::Held`] records acknowledged, until their owners take them.
    acked_held: std::collections::HashSet<u64>,
    next_receipt: u64,
    counters: Arc<Counters>,
}

impl Outbox {
    /// A producer with idempotence on (no duplicates from librdkafka's own retries) and
    /// `acks=all`; records refused for good go to `deadletter_topic`.
    pub fn new(
        mut config: ClientConfig,
        deadletter_topic: &str,
        counters: Arc<Counters>,
    ) -> KafkaResult<Self> {
        let (tx, rx) = channel();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4");
        let producer = config.create_with_context(OutboxContext {
            acks: std::sync::Mutex::new(tx),
        })?;
        Ok(Self {
            producer,
            acks: rx,
            deadletter_topic: deadletter_topic.into(),
            pending: HashMap::new(),
            retry: VecDeque::new(),
            next_id: 0,
            acked_dead_letters: Vec::new(),
            acked_tickets: Vec::new(),
            acked_held: Default::default(),
            next_receipt: 0,
            counters,
        })
    }

    /// Queues a record; it is sent now or, if librdkafka's queue is full, on a later [`Outbox::poll`].
    pub fn send(
        &mut self,
        topic: &Arc<str>,
        key: Vec<u8>,
        payload: Vec<u8>,
        headers: Vec<(&'static str, Vec<u8>)>,
        tag: Tag,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(
            id,
            Pending {
                topic: topic.clone(),
                key,
                payload,
                headers,
                tag,
                attempts: 0,
                replaced: false,
            },
        );
        self.attempt(id);
    }

    /// Settles record `id`, refused for good (`reason`, `error`): replaced by its dead letter,
    /// or dropped if it already was one (see the module docs).
    fn refused(&mut self, id: usize, reason: &'static str, error: &str) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        if p.replaced || *p.topic == *self.deadletter_topic {
            Counters::inc(&self.counters.outputs_dropped);
            tracing::error!(topic = %p.topic, reason, %error, "the dead-letter topic refused a record for good; dropped");
            let tag = self.pending.remove(&id).map(|p| p.tag);
            self.settled(tag);
            return;
        }
        tracing::warn!(topic = %p.topic, reason, %error, bytes = p.payload.len(), "record refused for good; dead-lettered");
        self.counters.dead_letter(reason);
        let topic = std::mem::replace(&mut p.topic, self.deadletter_topic.clone());
        p.key.truncate(DEAD_LETTER_CUT);
        p.payload.truncate(DEAD_LETTER_CUT);
        p.headers.retain(|(k, _)| !k.starts_with("glassbox.reason"));
        p.headers
            .push(("glassbox.reason", reason.as_bytes().to_vec()));
        p.headers
            .push(("glassbox.error", error.as_bytes().to_vec()));
        p.headers
            .push(("glassbox.output.topic", topic.as_bytes().to_vec()));
        p.headers.push((
            "glassbox.truncated_to",
            DEAD_LETTER_CUT.to_string().into_bytes(),
        ));
        p.replaced = true;
        p.attempts = 0;
        self.attempt(id);
    }

    /// Reports a durable (or settled) record to its owner.
    fn settled(&mut self, tag: Option<Tag>) {
        match tag {
            Some(Tag::DeadLetter { partition, offset }) => {
                self.acked_dead_letters.push((partition, offset));
            }
            Some(Tag::Ticket(t)) => self.acked_tickets.push(t),
            Some(Tag::Held(r)) => {
                self.acked_held.insert(r);
            }
            None => {}
        }
    }

    fn attempt(&mut self, id: usize) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        p.attempts += 1;
        let mut headers = OwnedHeaders::new_with_capacity(p.headers.len());
        for (k, v) in &p.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let record = BaseRecord::with_opaque_to(&p.topic, id)
            .key(&p.key)
            .payload(&p.payload)
            .headers(headers);
        match self.producer.send(record) {
            Ok(()) => {}
            Err((KafkaError::MessageProduction(code), _)) if permanent(code).is_some() => {
                let reason = permanent(code).unwrap_or("refused");
                self.refused(id, reason, &code.to_string());
            }
            Err(_) => {
                // Queue full or a transient client error: try again shortly.
                let backoff = backoff(p.attempts);
                self.retry.push_back((Instant::now() + backoff, id));
            }
        }
    }

    /// Dead-letter copies acknowledged since the last call, as input `(partition, offset)`.
    pub fn take_dead_letter_acks(&mut self) -> Vec<(i32, i64)> {
        self.poll();
        std::mem::take(&mut self.acked_dead_letters)
    }

    /// A new receipt for a [`Tag::Held`] record.
    pub fn receipt(&mut self) -> u64 {
        self.next_receipt += 1;
        self.next_receipt
    }

    /// Removes from `receipts` those whose [`Tag::Held`] records are durable (or settled).
    pub fn settle(&mut self, receipts: &mut std::collections::HashSet<u64>) {
        self.poll();
        receipts.retain(|r| !self.acked_held.remove(r));
    }

    /// Sink tickets acknowledged since the last call.
    pub fn take_ticket_acks(&mut self) -> Vec<u64> {
        self.poll();
        std::mem::take(&mut self.acked_tickets)
    }

    /// Collects acknowledgements and re-sends what is due.
    fn poll(&mut self) {
        while let Ok((id, outcome)) = self.acks.try_recv() {
            match outcome {
                None => {
                    let tag = self.pending.remove(&id).map(|p| p.tag);
                    self.settled(tag);
                }
                Some((error, Some(reason))) => self.refused(id, reason, &error),
                Some((error, None)) => {
                    Counters::inc(&self.counters.produce_retries);
                    if let Some(p) = self.pending.get(&id) {
                        tracing::warn!(topic = %p.topic, attempts = p.attempts, %error, "produce failed, will retry");
                        self.retry
                            .push_back((Instant::now() + backoff(p.attempts), id));
                    }
                }
            }
        }
        let now = Instant::now();
        let mut due = Vec::new();
        self.retry.retain(|(at, id)| {
            let ready = *at <= now;
            if ready {
                due.push(*id);
            }
            !ready
        });
        for id in due {
            self.attempt(id);
        }
    }

    /// Records not yet acknowledged.
    pub fn backlog(&self) -> usize {
        self.pending.len()
    }

    /// Blocks up to `timeout` for librdkafka to deliver what it holds.
    pub fn flush(&self, timeout: Duration) {
        let _ = self.producer.flush(timeout);
    }
}

fn backoff(attempts: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempts.min(6)).min(5_000))
}
