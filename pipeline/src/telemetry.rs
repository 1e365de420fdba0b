//! The pipeline's own counters, named once, shared by every worker.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one glassbox process. Every field is monotone.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records read from the input topic.
    pub consumed: AtomicU64,
    /// Records decoded into spans.
    pub decoded: AtomicU64,
    /// Decoded spans that are not model calls (not counted in the request metrics).
    pub ignored_kind: AtomicU64,
    /// Spans whose window had closed when they arrived.
    pub late: AtomicU64,
    /// Records skipped on replay: their windows were already durable before a restart.
    pub skipped_replay: AtomicU64,
    /// Records sent to the dead-letter topic.
    pub deadlettered: AtomicU64,
    /// Window records handed to the sinks.
    pub windows_emitted: AtomicU64,
    /// Produce attempts that failed and were retried.
    pub produce_retries: AtomicU64,
    /// Sink writes that failed and were retried (server down, 5xx, timeouts).
    pub sink_retries: AtomicU64,
    /// Window records a sink refused for good, dead-lettered.
    pub sink_rejected: AtomicU64,
    /// Output records refused for good even by the dead-letter topic, and dropped.
    pub outputs_dropped: AtomicU64,
    /// Offset commits the broker took.
    pub commits: AtomicU64,
    /// Offset commits that failed (refused by the broker, or not sent); each is sent again.
    pub commit_failures: AtomicU64,
    /// Activations in which the source did not read because the sinks' backlog was full.
    pub backpressure_pauses: AtomicU64,
    /// Price tables reloaded.
    pub price_reloads: AtomicU64,
    /// Price table reloads that failed (the previous table stayed).
    pub price_reload_errors: AtomicU64,
    /// Alert events delivered to the alert sinks.
    pub alert_events: AtomicU64,
    /// Budget events fired (each threshold once per period).
    pub budget_events: AtomicU64,
    /// Budget events relayed to the alerts topic.
    pub budget_events_relayed: AtomicU64,
    /// What the cardinality limit folded into `__other__`.
    pub cardinality: std::sync::Arc<glassbox_operators::metrics::cardinality::CardinalityCounters>,
    dead_letter_reasons: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counters {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a dead-lettered record and its reason.
    pub fn dead_letter(&self, reason: &'static str) {
        Self::inc(&self.deadlettered);
        *self
            .dead_letter_reasons
            .lock()
            .expect("counters lock")
            .entry(reason)
            .or_default() += 1;
    }

    /// Dead-lettered records per reason.
    pub fn dead_letter_reasons(&self) -> BTreeMap<&'static str, u64> {
        self.dead_letter_reasons
            .lock()
            .expect("counters lock")
            .clone()
    }

    /// A snapshot of every counter, by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BTreeMap::from([
            ("consumed", get(&self.consumed)),
            ("decoded", get(&self.decoded)),
            ("ignored_kind", get(&self.ignored_kind)),
            ("late", get(&self.late)),
            ("skipped_replay", get(&self.skipped_replay)),
            ("deadlettered", get(&self.deadlettered)),
            ("windows_emitted", get(&self.windows_emitted)),
            ("produce_retries", get(&self.produce_retries)),
            ("sink_retries", get(&self.sink_retries)),
            ("sink_rejected", get(&self.sink_rejected)),
            ("outputs_dropped", get(&self.outputs_dropped)),
            ("commits", get(&self.commits)),
            ("commit_failures", get(&self.commit_failures)),
            ("backpressure_pauses", get(&self.backpressure_pauses)),
            ("price_reloads", get(&self.price_reloads)),
            ("price_reload_errors", get(&self.price_reload_errors)),
            ("alert_events", get(&self.alert_events)),
            ("budget_events", get(&self.budget_events)),
            ("budget_events_relayed", get(&self.budget_events_relayed)),
            ("overflow_spans", get(&self.cardinality.overflow_spans)),
            ("overflow_series", get(&self.cardinality.overflow_series)),
        ])
    }
}
