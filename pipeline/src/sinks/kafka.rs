//! The Kafka metrics sink: one JSON record per window on the metrics topic, keyed by series.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::{Keyed, Record, Sink};
use crate::kafka::outbox::{Outbox, Tag};

/// Writes records (window records by default) to a Kafka topic through an [`Outbox`] of its
/// own: the outbox's ticket acknowledgements are this sink's alone.
pub struct KafkaSink<T: Record = Keyed> {
    outbox: Rc<RefCell<Outbox>>,
    topic: Arc<str>,
    /// sink ticket → records not yet acknowledged
    owed: HashMap<u64, usize>,
    /// outbox ticket → sink ticket
    records: HashMap<u64, u64>,
    next: u64,
    backlog: usize,
    _records: std::marker::PhantomData<fn(T)>,
}

impl<T: Record> KafkaSink<T> {
    /// A sink writing to `topic`.
    pub fn new(outbox: Rc<RefCell<Outbox>>, topic: &str) -> Self {
        Self {
            outbox,
            topic: topic.into(),
            owed: HashMap::new(),
            records: HashMap::new(),
            next: 0,
            backlog: 0,
            _records: std::marker::PhantomData,
        }
    }
}

impl<T: Record> Sink<T> for KafkaSink<T> {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn submit(&mut self, ticket: u64, records: &[Arc<T>]) {
        let mut outbox = self.outbox.borrow_mut();
        for r in records {
            let payload = r.to_json();
            let id = self.next;
            self.next += 1;
            self.records.insert(id, ticket);
            outbox.send(
                &self.topic,
                r.key().as_bytes().to_vec(),
                payload,
                Vec::new(),
                Tag::Ticket(id),
            );
        }
        self.owed.insert(ticket, records.len());
        self.backlog += records.len();
    }

    fn poll(&mut self, acked: &mut Vec<u64>) {
        for id in self.outbox.borrow_mut().take_ticket_acks() {
            let Some(ticket) = self.records.remove(&id) else {
                continue;
            };
            self.backlog -= 1;
            let owed = self
                .owed
                .get_mut(&ticket)
                .expect("a record's ticket is owed");
            *owed -= 1;
            if *owed == 0 {
                self.owed.remove(&ticket);
                acked.push(ticket);
            }
        }
    }

    fn backlog(&self) -> usize {
        self.backlog
    }
}
