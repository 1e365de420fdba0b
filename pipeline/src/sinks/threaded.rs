//! A sink whose writes happen on a thread of its own, with batching, retries and a backlog.
//!
//! The timely worker must never block on a slow or unreachable server. [`ThreadedSink`] hands
//! each submitted batch to a writer thread and reports the batch's ticket once the server has
//! acknowledged it. While the server is down the thread retries with exponential backoff and
//! jitter, forever, and the backlog grows until the source pauses reading (back-pressure): no
//! record is dropped. A batch the server refuses for good (a client error no retry can fix) is
//! dead-lettered with the server's message and counted; the tickets of that batch are reported
//! acknowledged only once every dead letter is durable ([`Rejects::settle`]), so the offsets
//! that produced a refused record are never committed before its dead letter is safe.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use super::{Keyed, Record, Sink};

/// Why a write failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WriteError {
    /// A later attempt may succeed (server down, 5xx, timeout); `false`: the server refuses
    /// this data for good (e.g. a 4xx), so it is dead-lettered.
    pub retryable: bool,
    /// What the server or the client said. Never contains credentials.
    pub message: String,
    /// For a refusal of only some records (the rest written): their indexes in the batch.
    /// `None`: the refusal is of the whole batch.
    pub refused: Option<Vec<usize>>,
}

impl WriteError {
    /// A failure worth retrying.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
            refused: None,
        }
    }

    /// A refusal no retry can fix.
    pub fn reject(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
            refused: None,
        }
    }

    /// A refusal of the records at `indexes` of the batch only; the others are written.
    pub fn reject_some(message: impl Into<String>, indexes: Vec<usize>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
            refused: Some(indexes),
        }
    }
}

/// Writes batches of records (window records by default) to one server. Runs on the sink's
/// own thread.
pub trait Writer<T: Record = Keyed>: Send + 'static {
    /// Writes `batch`; `Ok` only once the server has durably accepted all of it. Writing the
    /// same batch again must be harmless (replays rewrite the same keys/points).
    fn write(&mut self, batch: &[Arc<T>]) -> Result<(), WriteError>;

    /// Called about once a second while no batch is waiting, for housekeeping that must not
    /// wait for the next record (the Redis spend ledger re-prices and relays budget events).
    /// A failure is the writer's to log; the next call tries again.
    fn idle(&mut self) {}
}

/// Batching and retry settings.
#[derive(Clone, Debug)]
pub struct BatchSettings {
    /// At most this many records per write.
    pub max_records: usize,
    /// Wait at most this long for a batch to fill.
    pub max_delay: Duration,
    /// First retry delay; doubles per failure up to `max_backoff`, with ±25% jitter.
    pub min_backoff: Duration,
    /// Largest retry delay.
    pub max_backoff: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_records: 5_000,
            max_delay: Duration::from_millis(200),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// What the writer thread reports back.
#[derive(Debug)]
pub enum Report<T = Keyed> {
    /// These tickets are durable.
    Acked(Vec<u64>),
    /// These records, of the batch of these tickets, were refused for good: dead-letter them.
    /// The tickets are reported separately, as acknowledged by the server, and held until the
    /// dead letters are durable.
    Rejected {
        /// The refused records.
        records: Vec<Arc<T>>,
        /// The server's message.
        message: String,
        /// The tickets of the batch they were in.
        tickets: Vec<u64>,
    },
    /// A write failed and will be retried (for the counters and logs).
    Retrying(String),
}

/// Where the records a sink refused for good go, and how the sink learns they are durable there.
pub trait Rejects<T> {
    /// Dead-letters `records` refused by `sink` with the server's `message`; returns one
    /// receipt per dead letter.
    fn dead_letter(
        &mut self,
        sink: &'static str,
        records: Vec<Arc<T>>,
        message: String,
    ) -> Vec<u64>;

    /// Removes from `receipts` those whose dead letters are now durable.
    fn settle(&mut self, receipts: &mut HashSet<u64>);
}

/// The dead-letter route of a sink.
pub type OnReject<T = Keyed> = Box<dyn Rejects<T>>;
/// Counts a retried write of a sink.
pub type OnRetry = Box<dyn FnMut(&'static str)>;

/// The worker-side half: submits batches, collects reports.
pub struct ThreadedSink<T: Record = Keyed> {
    name: &'static str,
    to_thread: Option<Sender<(u64, Vec<Arc<T>>)>>,
    reports: Receiver<Report<T>>,
    backlog: usize,
    outstanding: HashMap<u64, usize>,
    on_reject: OnReject<T>,
    /// Tickets with refused records → receipts of their dead letters not yet durable.
    held: HashMap<u64, HashSet<u64>>,
    /// Held tickets the server has acknowledged, waiting for their dead letters.
    waiting: Vec<u64>,
    on_retry: OnRetry,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<T: Record> ThreadedSink<T> {
    /// Starts the writer thread. `on_reject` dead-letters refused records; `on_retry` counts.
    pub fn new(
        name: &'static str,
        writer: impl Writer<T>,
        settings: BatchSettings,
        on_reject: OnReject<T>,
        on_retry: OnRetry,
    ) -> Self {
        let (to_thread, from_worker) = channel();
        let (to_worker, reports) = channel();
        let thread = std::thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || write_loop(name, writer, settings, from_worker, to_worker))
            .expect("spawn sink thread");
        Self {
            name,
            to_thread: Some(to_thread),
            reports,
            backlog: 0,
            outstanding: Default::default(),
            on_reject,
            held: HashMap::new(),
            waiting: Vec::new(),
            on_retry,
            thread: Some(thread),
        }
    }

    fn ack(&mut self, ticket: u64, acked: &mut Vec<u64>) {
        if let Some(n) = self.outstanding.remove(&ticket) {
            self.backlog -= n;
            acked.push(ticket);
        }
    }
}

impl<T: Record> Drop for ThreadedSink<T> {
    fn drop(&mut self) {
        self.to_thread.take();
        if let Some(t) = self.thread.take() {
            // The thread exits once its queue is empty or it is stuck retrying; never wait on
            // an unreachable server here.
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

impl<T: Record> Sink<T> for ThreadedSink<T> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn submit(&mut self, ticket: u64, records: &[Arc<T>]) {
        self.backlog += records.len();
        self.outstanding.insert(ticket, records.len());
        if let Some(tx) = &self.to_thread {
            tx.send((ticket, records.to_vec()))
                .expect("sink thread alive");
        }
    }

    fn poll(&mut self, acked: &mut Vec<u64>) {
        while let Ok(report) = self.reports.try_recv() {
            match report {
                Report::Acked(tickets) => {
                    for t in tickets {
                        if self.held.contains_key(&t) {
                            self.waiting.push(t);
                        } else {
                            self.ack(t, acked);
                        }
                    }
                }
                Report::Rejected {
                    records,
                    message,
                    tickets,
                } => {
                    let receipts = self.on_reject.dead_letter(self.name, records, message);
                    for t in tickets {
                        self.held.entry(t).or_default().extend(&receipts);
                    }
                }
                Report::Retrying(_) => (self.on_retry)(self.name),
            }
        }
        // Acknowledged tickets whose dead letters have become durable.
        let mut settled = Vec::new();
        for &t in &self.waiting {
            let receipts = self.held.get_mut(&t).expect("a waiting ticket is held");
            self.on_reject.settle(receipts);
            if receipts.is_empty() {
                settled.push(t);
            }
        }
        for t in settled {
            self.waiting.retain(|w| *w != t);
            self.held.remove(&t);
            self.ack(t, acked);
        }
    }

    fn backlog(&self) -> usize {
        self.backlog
    }
}

fn jitter(d: Duration, seed: &mut u64) -> Duration {
    // xorshift: a little randomness without a dependency; ±25%.
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let factor = 0.75 + (*seed % 1_000) as f64 / 2_000.0;
    d.mul_f64(factor)
}

fn write_loop<T: Record>(
    name: &'static str,
    mut writer: impl Writer<T>,
    settings: BatchSettings,
    from_worker: Receiver<(u64, Vec<Arc<T>>)>,
    to_worker: Sender<Report<T>>,
) {
    let mut queue: VecDeque<(u64, Vec<Arc<T>>)> = VecDeque::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ std::process::id() as u64;
    let mut closed = false;
    loop {
        // Gather: wait for work, then up to max_delay for the batch to fill.
        if queue.is_empty() {
            if closed {
                return;
            }
            match from_worker.recv_timeout(Duration::from_secs(1)) {
                Ok(item) => queue.push_back(item),
                Err(RecvTimeoutError::Timeout) => {
                    writer.idle();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let deadline = Instant::now() + settings.max_delay;
        while queue.iter().map(|(_, r)| r.len()).sum::<usize>() < settings.max_records && !closed {
            let left = deadline.saturating_duration_since(Instant::now());
            match from_worker.recv_timeout(left) {
                Ok(item) => queue.push_back(item),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => closed = true,
            }
        }
        // Take whole tickets up to max_records (a single larger ticket goes alone).
        let mut tickets = Vec::new();
        let mut batch: Vec<Arc<T>> = Vec::new();
        while let Some((_, records)) = queue.front() {
            if !batch.is_empty() && batch.len() + records.len() > settings.max_records {
                break;
            }
            let (t, records) = queue.pop_front().expect("front exists");
            tickets.push(t);
            batch.extend(records);
        }
        let mut backoff = settings.min_backoff;
        let mut failing_since: Option<Instant> = None;
        for chunk_start in (0..batch.len().max(1)).step_by(settings.max_records.max(1)) {
            let chunk = &batch[chunk_start..(chunk_start + settings.max_records).min(batch.len())];
            loop {
                match writer.write(chunk) {
                    Ok(()) => {
                        if let Some(since) = failing_since.take() {
                            tracing::info!(
                                sink = name,
                                outage_s = since.elapsed().as_secs_f64(),
                                "sink recovered"
                            );
                        }
                        break;
                    }
                    Err(e) if e.retryable => {
                        if failing_since.is_none() {
                            tracing::warn!(sink = name, error = %e.message, "sink write failed; retrying with backoff");
                            failing_since = Some(Instant::now());
                        }
                        let _ = to_worker.send(Report::Retrying(e.message));
                        std::thread::sleep(jitter(backoff, &mut seed));
                        backoff = (backoff * 2).min(settings.max_backoff);
                        // Keep accepting work while down, so the worker sees the backlog grow.
                        while let Ok(item) = from_worker.try_recv() {
                            queue.push_back(item);
                        }
                    }
                    Err(e) => {
                        let refused: Vec<Arc<T>> = match &e.refused {
                            Some(indexes) => indexes
                                .iter()
                                .filter_map(|&i| chunk.get(i).cloned())
                                .collect(),
                            None => chunk.to_vec(),
                        };
                        tracing::error!(sink = name, error = %e.message, records = refused.len(), batch = chunk.len(), "sink refused records; dead-lettering them");
                        let _ = to_worker.send(Report::Rejected {
                            records: refused,
                            message: e.message,
                            tickets: tickets.clone(),
                        });
                        break;
                    }
                }
            }
        }
        if to_worker.send(Report::Acked(tickets)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Flaky {
        fail_first: usize,
        reject: bool,
        seen: Arc<Mutex<Vec<usize>>>,
    }

    impl Writer for Flaky {
        fn write(&mut self, batch: &[Arc<Keyed>]) -> Result<(), WriteError> {
            self.seen.lock().unwrap().push(batch.len());
            if self.fail_first > 0 {
                self.fail_first -= 1;
                return Err(WriteError::retry("503"));
            }
            if self.reject {
                return Err(WriteError::reject("400 bad field"));
            }
            Ok(())
        }
    }

    fn keyed(n: usize) -> Vec<Arc<Keyed>> {
        use crate::records::metrics::{MetricsRecord, Tokens};
        (0..n)
            .map(|i| {
                Arc::new(Keyed {
                    key: format!("k{i}"),
                    record: MetricsRecord {
                        schema_version: 1,
                        view: "tumbling_1m".into(),
                        window_start_ms: 0,
                        window_end_ms: 60_000,
                        series: Default::default(),
                        requests: 1,
                        errors: 0,
                        errors_by_type: Default::default(),
                        truncations: 0,
                        error_rate: 0.0,
                        truncation_rate: 0.0,
                        rpm: 1.0,
                        tpm: 1.0,
                        tokens: Tokens {
                            input: 1,
                            output: 1,
                            cache_read: 0,
                            cache_write: 0,
                            reasoning: 0,
                        },
                        latency_ms: None,
                        ttft_ms: None,
                        tpot_ms: None,
                        sketch_relative_error: 0.01,
                        cost: None,
                    },
                })
            })
            .collect()
    }

    fn settings() -> BatchSettings {
        BatchSettings {
            max_records: 3,
            max_delay: Duration::from_millis(10),
            min_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        }
    }

    fn drain(sink: &mut ThreadedSink, want: usize) -> Vec<u64> {
        let mut acked = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while acked.len() < want {
            assert!(Instant::now() < deadline, "acks did not arrive: {acked:?}");
            sink.poll(&mut acked);
            std::thread::sleep(Duration::from_millis(1));
        }
        acked
    }

    #[test]
    fn retries_until_the_server_accepts_and_acks_every_ticket_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let retries = Arc::new(Mutex::new(0));
        let r = retries.clone();
        let writer = Flaky {
            fail_first: 3,
            reject: false,
            seen: seen.clone(),
        };
        let letters = Letters::default();
        let mut sink = ThreadedSink::new(
            "flaky",
            writer,
            settings(),
            Box::new(letters.clone()),
            Box::new(move |_| *r.lock().unwrap() += 1),
        );
        sink.submit(1, &keyed(2));
        sink.submit(2, &keyed(2));
        assert_eq!(sink.backlog(), 4);
        let mut acked = drain(&mut sink, 2);
        acked.sort();
        assert_eq!(acked, vec![1, 2]);
        assert_eq!(sink.backlog(), 0);
        assert_eq!(*retries.lock().unwrap(), 3);
        assert!(
            letters.got.lock().unwrap().is_empty(),
            "nothing is rejected"
        );
        // Batches never exceed max_records (a ticket is never split unless it alone is larger).
        assert!(
            seen.lock().unwrap().iter().all(|n| *n <= 3),
            "{:?}",
            seen.lock().unwrap()
        );
    }

    /// A dead-letter route that records what it gets and makes receipts durable only when
    /// the test says so.
    /// (sink, keys of the refused records, message) of each dead-lettering.
    type Got = Vec<(&'static str, Vec<String>, String)>;

    #[derive(Clone, Default)]
    struct Letters {
        got: Arc<Mutex<Got>>,
        durable: Arc<Mutex<HashSet<u64>>>,
        next: Arc<Mutex<u64>>,
    }

    impl Rejects<Keyed> for Letters {
        fn dead_letter(
            &mut self,
            sink: &'static str,
            records: Vec<Arc<Keyed>>,
            message: String,
        ) -> Vec<u64> {
            let keys = records.iter().map(|r| r.key.clone()).collect();
            self.got.lock().unwrap().push((sink, keys, message));
            let mut next = self.next.lock().unwrap();
            records
                .iter()
                .map(|_| {
                    *next += 1;
                    *next
                })
                .collect()
        }

        fn settle(&mut self, receipts: &mut HashSet<u64>) {
            let durable = self.durable.lock().unwrap();
            receipts.retain(|r| !durable.contains(r));
        }
    }

    /// Refuses the record keyed `k1` of each batch, writes the others.
    struct RefusesOne;

    impl Writer for RefusesOne {
        fn write(&mut self, batch: &[Arc<Keyed>]) -> Result<(), WriteError> {
            match batch.iter().position(|r| r.key == "k1") {
                Some(i) => Err(WriteError::reject_some("400 bad point", vec![i])),
                None => Ok(()),
            }
        }
    }

    #[test]
    fn a_refused_batch_is_dead_lettered_and_its_ticket_held_until_the_letters_are_durable() {
        let letters = Letters::default();
        let writer = Flaky {
            fail_first: 0,
            reject: true,
            seen: Arc::default(),
        };
        let mut sink = ThreadedSink::new(
            "refusing",
            writer,
            settings(),
            Box::new(letters.clone()),
            Box::new(|_| {}),
        );
        sink.submit(7, &keyed(2));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut acked = Vec::new();
        while letters.got.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "nothing was dead-lettered");
            sink.poll(&mut acked);
            std::thread::sleep(Duration::from_millis(1));
        }
        // The server is done with the batch, but its dead letters are not durable yet.
        std::thread::sleep(Duration::from_millis(50));
        sink.poll(&mut acked);
        assert!(
            acked.is_empty(),
            "acknowledged before its dead letters: {acked:?}"
        );
        assert_eq!(sink.backlog(), 2);
        letters.durable.lock().unwrap().insert(1);
        sink.poll(&mut acked);
        assert!(acked.is_empty(), "one dead letter is still not durable");
        letters.durable.lock().unwrap().insert(2);
        assert_eq!(drain(&mut sink, 1), vec![7]);
        assert_eq!(sink.backlog(), 0);
        assert_eq!(
            *letters.got.lock().unwrap(),
            vec![(
                "refusing",
                vec!["k0".to_owned(), "k1".to_owned()],
                "400 bad field".to_owned()
            )]
        );
    }

    #[test]
    fn only_the_records_a_server_refuses_are_dead_lettered() {
        let letters = Letters::default();
        letters.durable.lock().unwrap().extend(1..100);
        let mut sink = ThreadedSink::new(
            "partial",
            RefusesOne,
            settings(),
            Box::new(letters.clone()),
            Box::new(|_| {}),
        );
        sink.submit(1, &keyed(3));
        assert_eq!(drain(&mut sink, 1), vec![1]);
        assert_eq!(
            *letters.got.lock().unwrap(),
            vec![("partial", vec!["k1".to_owned()], "400 bad point".to_owned())]
        );
    }
}
