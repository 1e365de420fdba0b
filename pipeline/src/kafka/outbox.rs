//! A worker's Kafka producer that never loses a record: every record stays in the outbox until
//! the broker acknowledges it, failed deliveries are re-sent with backoff, and callers learn
//! which of their records are durable through [`Tag`]s.
//!
//! librdkafka already retries transient errors inside `message.timeout.ms`; the outbox adds the
//! retry beyond that (a broker down for minutes) and the bounded backlog the source reads to
//! apply back-pressure.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::KafkaResult;
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
    /// Nobody waits for this record (a dead-lettered window record): kept until acknowledged,
    /// like every record, but its acknowledgement is not reported.
    Untracked,
}

struct Pending {
    topic: Arc<str>,
    key: Vec<u8>,
    payload: Vec<u8>,
    headers: Vec<(&'static str, Vec<u8>)>,
    tag: Tag,
    attempts: u32,
}

/// Sends delivery reports from librdkafka's thread to the worker.
pub struct OutboxContext {
    acks: std::sync::Mutex<Sender<(usize, Option<String>)>>,
}

impl ClientContext for OutboxContext {}

impl ProducerContext for OutboxContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let outcome = match result {
            Ok(_) => None,
            Err((e, _)) => Some(e.to_string()),
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
    acks: Receiver<(usize, Option<String>)>,
    pending: HashMap<usize, Pending>,
    retry: VecDeque<(Instant, usize)>,
    next_id: usize,
    acked_dead_letters: Vec<(i32, i64)>,
    acked_tickets: Vec<u64>,
    counters: Arc<Counters>,
}

impl Outbox {
    /// A producer with idempotence on (no duplicates from librdkafka's own retries) and `acks=all`.
    pub fn new(mut config: ClientConfig, counters: Arc<Counters>) -> KafkaResult<Self> {
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
            pending: HashMap::new(),
            retry: VecDeque::new(),
            next_id: 0,
            acked_dead_letters: Vec::new(),
            acked_tickets: Vec::new(),
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
            },
        );
        self.attempt(id);
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
        if self.producer.send(record).is_err() {
            // Queue full or a transient client error: try again shortly.
            let backoff = backoff(p.attempts);
            self.retry.push_back((Instant::now() + backoff, id));
        }
    }

    /// Dead-letter copies acknowledged since the last call, as input `(partition, offset)`.
    pub fn take_dead_letter_acks(&mut self) -> Vec<(i32, i64)> {
        self.poll();
        std::mem::take(&mut self.acked_dead_letters)
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
                None => match self.pending.remove(&id).map(|p| p.tag) {
                    Some(Tag::DeadLetter { partition, offset }) => {
                        self.acked_dead_letters.push((partition, offset));
                    }
                    Some(Tag::Ticket(t)) => self.acked_tickets.push(t),
                    Some(Tag::Untracked) | None => {}
                },
                Some(error) => {
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
