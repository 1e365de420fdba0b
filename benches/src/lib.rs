//! Shared pieces of glassbox's benchmarks: generated input and an in-process pipeline that
//! runs the real decode → facts → graph (windows, sketches, cost) path without a broker.

pub mod broker;
pub mod otlp;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glassbox_operators::graph::{self, Inputs, Plan};
use glassbox_operators::metrics::views::WindowKey;
use glassbox_operators::{Dimensions, SpanFacts, Views, WindowMetrics};
use glassbox_schemas::{DecodeLimits, JsonDecoder};
use glassbox_support::loadgen::Generator;
use timely::dataflow::operators::generic::operator::source;

/// `n` native JSON spans starting at `start_ms`, `rate` per second of event time.
pub fn payloads(n: usize, start_ms: u64, rate: f64) -> Vec<Vec<u8>> {
    let mut g = Generator::new(42, start_ms, rate);
    (0..n).map(|_| g.next_span().to_json()).collect()
}

/// Decoder limits that accept any timestamp (benchmarks replay fixed data).
pub fn lenient() -> JsonDecoder {
    JsonDecoder::new(DecodeLimits {
        horizon_past_ms: u64::MAX / 2,
        horizon_future_ms: u64::MAX / 2,
        ..DecodeLimits::default()
    })
}

/// `n` generated spans decoded into facts (default dimensions); non-model spans are dropped.
pub fn facts(n: usize, start_ms: u64, rate: f64) -> Vec<SpanFacts> {
    let decoder = lenient();
    let dims = Dimensions::default();
    payloads(n, start_ms, rate)
        .iter()
        .filter_map(|p| {
            SpanFacts::from_span(
                &decoder.decode(p, 0).expect("generated spans decode"),
                &dims,
            )
        })
        .collect()
}

/// A timely source that emits the batches `next_batch` yields (`None`: input finished) at a
/// watermark 5 s behind the largest event time seen, as the Kafka source does.
fn replay<'scope>(
    scope: timely::dataflow::Scope<'scope, u64>,
    mut next_batch: impl FnMut() -> Option<Vec<SpanFacts>> + 'static,
) -> timely::dataflow::StreamVec<'scope, u64, SpanFacts> {
    source(scope, "Replay", move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut cap = Some(cap);
        let mut max_seen = 0u64;
        move |output| {
            let Some(c) = cap.as_mut() else { return };
            match next_batch() {
                None => cap = None,
                Some(mut batch) => {
                    max_seen = batch.iter().map(|f| f.start_ms).fold(max_seen, u64::max);
                    if !batch.is_empty() {
                        output.session(c).give_container(&mut batch);
                    }
                    let w = max_seen.saturating_sub(5_000);
                    if w > *c.time() {
                        c.downgrade(&w);
                    }
                    activator.activate();
                }
            }
        }
    })
}

/// Window records of [`replay_windows`].
pub type Windows = Vec<(WindowKey, WindowMetrics)>;

/// Runs the graph's metrics path (`graph::build`: windows + sketches) over pre-decoded `facts` (sorted by event time)
/// in one timely worker on the calling thread, fed in batches of 10,000 under a watermark 5 s
/// behind the largest event time, as the Kafka source does. Returns the number of window
/// records and, when `keep`, the records themselves.
pub fn replay_windows(facts: Vec<SpanFacts>, views: Views, keep: bool) -> (usize, Windows) {
    timely::execute_directly(move |worker| {
        let out: Rc<RefCell<(usize, Windows)>> = Rc::default();
        let sink = out.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let mut facts = facts.into_iter();
            let stream = replay(scope, move || {
                let batch: Vec<SpanFacts> = facts.by_ref().take(10_000).collect();
                (!batch.is_empty()).then_some(batch)
            });
            let outputs = graph::build(
                Inputs {
                    facts: stream,
                    quality: None,
                },
                &Plan::metrics(views),
            );
            let (probe, _) = outputs
                .metrics
                .inspect_batch(move |_, data| {
                    let mut s = sink.borrow_mut();
                    for ((key, metrics), _, diff) in data {
                        if *diff > 0 {
                            s.0 += 1;
                            if keep {
                                s.1.push((key.clone(), metrics.clone()));
                            }
                        }
                    }
                })
                .probe();
            probe
        });
        while !probe.done() {
            worker.step();
        }
        let mut r = out.borrow_mut();
        (r.0, std::mem::take(&mut r.1))
    })
}

/// Runs the in-process path over `payloads` with `workers` threads, with cost (the shipped
/// price table) when `priced`; returns the elapsed time and the number of window records.
pub fn in_process(
    payloads: std::sync::Arc<Vec<Vec<u8>>>,
    workers: usize,
    views: Views,
    priced: bool,
) -> (Duration, usize) {
    let table = glassbox_operators::cost::PriceTable::default_table();
    let keying = std::sync::Arc::new(glassbox_operators::CostKeying {
        thresholds: table.tier_thresholds(),
        ..Default::default()
    });
    let board =
        glassbox_operators::cost::pricing::PriceBoard::new(table, Duration::from_millis(100));
    let started = Instant::now();
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let payloads = payloads.clone();
        let views = views.clone();
        let dims = Dimensions::default();
        let decoder = lenient();
        let emitted = std::rc::Rc::new(std::cell::Cell::new(0usize));
        let count = emitted.clone();
        let (board, keying) = (board.clone(), keying.clone());
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let mut next = index;
            let facts = replay(scope, move || {
                if next >= payloads.len() {
                    return None;
                }
                let mut batch = Vec::with_capacity(10_000);
                for _ in 0..10_000 {
                    let Some(payload) = payloads.get(next) else {
                        break;
                    };
                    let span = decoder.decode(payload, 0).expect("generated spans decode");
                    next += peers;
                    batch.extend(SpanFacts::from_span_priced(
                        &span,
                        &dims,
                        priced.then_some(keying.as_ref()),
                    ));
                }
                Some(batch)
            });
            // The pipeline's graph, metrics (and cost) only.
            let plan = Plan {
                prices: priced.then_some(board),
                ..Plan::metrics(views)
            };
            let outputs = graph::build(
                Inputs {
                    facts,
                    quality: None,
                },
                &plan,
            );
            let (probe, _) = outputs
                .metrics
                .inspect_batch(move |_, data| {
                    count.set(count.get() + data.iter().filter(|(_, _, d)| *d > 0).count())
                })
                .probe();
            probe
        });
        while !probe.done() {
            worker.step();
        }
        emitted.get()
    })
    .expect("timely runs");
    let emitted = guards.join().into_iter().map(|r| r.expect("worker")).sum();
    (started.elapsed(), emitted)
}

/// Peak resident set size of this process, in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_owned())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time (user + system, seconds) of process `pid` (`"self"` for this one), from
/// `/proc/PID/stat`; assumes the usual 100 clock ticks per second.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The nearest-rank `q` quantile of sorted `values` (0 when empty).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
