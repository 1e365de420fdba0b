//! Sinks, and the operator that makes their acknowledgements the pipeline's durable frontier.
//!
//! This file holds the [`Sink`] trait and [`deliver`] (with [`durable_sinks`] and
//! [`durable_events`] over it); then, in the order records leave: [`kafka`] (the output topics,
//! through the outbox), [`threaded`] (a writer thread with batching, retries and rejects, for
//! the servers below), [`influx`] (line protocol to InfluxDB or VictoriaMetrics), [`redis`]
//! (live per-series state, with the spend ledger in `redis::spend`) and [`alertmanager`].
//!
//! # Time contract of [`durable_sinks`]
//! - Input: the metrics collection; only insertions (`diff > 0`) at times `≥ resume_ms` are
//!   written (earlier windows were made durable before a restart, see [`crate::kafka::source`]).
//! - It holds a capability at time `t` for as long as any sink still owes an acknowledgement
//!   for a record of `t`. A probe after it therefore reads the *durable frontier*: every window
//!   ending before it has been acknowledged by every sink, on every worker. The source commits
//!   offsets against that frontier.
//! - State: the capabilities and tickets of unacknowledged batches; sinks keep their own
//!   bounded backlogs and report it through [`Sink::backlog`].

pub mod alertmanager;
pub mod influx;
pub mod kafka;
pub mod redis;
pub mod threaded;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use differential_dataflow::VecCollection;
use glassbox_operators::metrics::views::{Views, WindowKey};
use glassbox_operators::{Dimensions, WindowMetrics};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::{Capability, Probe};

use crate::records::metrics::MetricsRecord;
pub use crate::records::{Keyed, Record};
use crate::telemetry::Counters;

/// A destination for records (window records by default). Implementations batch, retry and
/// acknowledge.
pub trait Sink<T: Record = Keyed> {
    /// The sink's name in logs and counters.
    fn name(&self) -> &'static str;
    /// Takes `records`; once every one of them is durable, `ticket` is reported by [`Sink::poll`].
    fn submit(&mut self, ticket: u64, records: &[Arc<T>]);
    /// Appends tickets whose records are all durable since the last call.
    fn poll(&mut self, acked: &mut Vec<u64>);
    /// Records taken but not yet durable.
    fn backlog(&self) -> usize;
}

/// A shared handle on a worker's sinks, read by the source for back-pressure.
pub type SharedSinks = Rc<RefCell<Vec<Box<dyn Sink>>>>;

/// The total backlog of a worker's sinks.
pub fn backlog(sinks: &SharedSinks) -> usize {
    sinks.borrow().iter().map(|s| s.backlog()).sum()
}

/// Writes window records to every sink and returns a probe on the durable frontier.
pub fn durable_sinks<'scope>(
    metrics: VecCollection<'scope, u64, (WindowKey, WindowMetrics), isize>,
    sinks: SharedSinks,
    views: Views,
    dims: Dimensions,
    resume_ms: u64,
    counters: Arc<Counters>,
) -> ProbeHandle<u64> {
    deliver(
        metrics.inner,
        "DurableSinks",
        move |((key, m), time, diff), _| {
            (diff > 0 && time >= resume_ms).then(|| {
                Arc::new(Keyed {
                    key: MetricsRecord::key(&key, &dims),
                    record: MetricsRecord::new(&key, &m, &views, &dims),
                })
            })
        },
        sinks,
        move |n| {
            counters
                .windows_emitted
                .fetch_add(n as u64, Ordering::Relaxed);
        },
    )
}

/// Writes alert events (those `keep` accepts, at times `≥ resume_ms`) to every alert sink and
/// returns a probe on their durable frontier. Same time contract as [`durable_sinks`].
pub fn durable_events<'scope>(
    events: timely::dataflow::StreamVec<'scope, u64, glassbox_operators::alerts::AlertEvent>,
    sinks: Rc<RefCell<Vec<Box<dyn Sink<glassbox_operators::alerts::AlertEvent>>>>>,
    resume_ms: u64,
    keep: impl Fn(&glassbox_operators::alerts::AlertEvent) -> bool + 'static,
    counters: Arc<Counters>,
) -> ProbeHandle<u64> {
    deliver(
        events,
        "DurableAlerts",
        move |event, time| (time >= resume_ms && keep(&event)).then(|| Arc::new(event)),
        sinks,
        move |n| {
            counters.alert_events.fetch_add(n as u64, Ordering::Relaxed);
        },
    )
}

/// The delivery operator: each input element `convert`ed to a record (or dropped), records
/// of one time submitted to every sink as one ticket, the time's capability held until every
/// sink acknowledged it.
pub fn deliver<'scope, D, T>(
    stream: timely::dataflow::StreamVec<'scope, u64, D>,
    name: &'static str,
    mut convert: impl FnMut(D, u64) -> Option<Arc<T>> + 'static,
    sinks: Rc<RefCell<Vec<Box<dyn Sink<T>>>>>,
    mut emitted: impl FnMut(usize) + 'static,
) -> ProbeHandle<u64>
where
    D: Clone + 'static,
    T: Record,
{
    let scope = stream.scope();
    let (probe, _stream) = stream
        .unary_frontier::<timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _>(
            Pipeline,
            name,
            move |_cap, info| {
                let activator = scope.activator_for(info.address);
                let mut next_ticket = 0u64;
                // ticket → (capability held for its time, sinks that still owe an ack)
                let mut pending: HashMap<u64, (Capability<u64>, usize)> = HashMap::new();
                let mut acked = Vec::new();
                move |(input, _frontier), _output| {
                    input.for_each(|cap, data| {
                        let time = *cap.least().expect("vec containers carry a time");
                        let records: Vec<Arc<T>> =
                            data.drain(..).filter_map(|d| convert(d, time)).collect();
                        if records.is_empty() {
                            return;
                        }
                        let Some(held) = cap.retain_least(0) else {
                            return;
                        };
                        emitted(records.len());
                        let ticket = next_ticket;
                        next_ticket += 1;
                        let mut sinks = sinks.borrow_mut();
                        for sink in sinks.iter_mut() {
                            sink.submit(ticket, &records);
                        }
                        pending.insert(ticket, (held, sinks.len()));
                    });
                    for sink in sinks.borrow_mut().iter_mut() {
                        sink.poll(&mut acked);
                    }
                    for ticket in acked.drain(..) {
                        let done = match pending.get_mut(&ticket) {
                            Some((_, owed)) => {
                                *owed -= 1;
                                *owed == 0
                            }
                            None => false,
                        };
                        if done {
                            // Dropping the capability lets the durable frontier pass this time.
                            pending.remove(&ticket);
                        }
                    }
                    if !pending.is_empty() {
                        activator.activate_after(Duration::from_millis(5));
                    }
                }
            },
        )
        .probe();
    probe
}
