//! One timely worker: its Kafka source → the graph (`glassbox_operators::graph`) → its sinks →
//! the probes on their durable frontier → the commits, driven until shutdown (or the end of
//! input).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use glassbox_operators::alerts::rules::Rules;
use glassbox_operators::cost::pricing::PriceBoard;
use glassbox_operators::graph::{self, Inputs, Plan, QualityPlan};
use glassbox_schemas::JsonDecoder;
use rdkafka::consumer::BaseConsumer;
use rdkafka::{ClientConfig, Offset};
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Input, Inspect};

use crate::config::Config;
use crate::kafka::offsets::CommitBoard;
use crate::kafka::outbox::{Outbox, Tag};
use crate::kafka::source::{KafkaSource, SourceSettings};
use crate::quality::{QualityCounters, QualityInput};
use crate::records::quality::{FlaggedRecord, QualityRecord, ScoredItem};
use crate::sinks::influx::InfluxWriter;
use crate::sinks::kafka::KafkaSink;
use crate::sinks::redis::RedisWriter;
use crate::sinks::threaded::{BatchSettings, OnReject, OnRetry, Rejects, ThreadedSink};
use crate::sinks::{Sink, deliver, durable_events, durable_sinks};
use crate::telemetry::Counters;
use timely::dataflow::operators::probe::Handle as ProbeHandle;

/// Extra sinks a caller adds to every worker (the demo's live table, tests).
pub type SinkFactory = Arc<dyn Fn(usize) -> Box<dyn Sink> + Send + Sync>;

/// What a caller can control and observe of a running pipeline.
#[derive(Clone)]
pub struct Handles {
    /// Set to stop: the pipeline commits what is durable and returns; open windows are not
    /// flushed (they are rebuilt from the committed offsets on restart).
    pub shutdown: Arc<AtomicBool>,
    /// Set to treat the input as finished once every partition is idle, as
    /// `source.stop_when_idle` does: every window closes, then the pipeline commits and returns.
    pub drain: Arc<AtomicBool>,
    /// The pipeline's counters.
    pub counters: Arc<Counters>,
    /// Sinks added to the configured ones.
    pub extra_sinks: Option<SinkFactory>,
    /// The quality path's counters.
    pub quality: Arc<QualityCounters>,
}

impl Default for Handles {
    fn default() -> Self {
        Self {
            shutdown: Arc::new(AtomicBool::new(false)),
            drain: Arc::new(AtomicBool::new(false)),
            counters: Arc::default(),
            extra_sinks: None,
            quality: Arc::default(),
        }
    }
}

/// Dead-letters the records a sink refused for good through the worker's outbox, with the
/// sink and its message in headers; the sink holds their tickets until the outbox reports the
/// dead letters durable.
struct OutboxRejects {
    outbox: Rc<RefCell<Outbox>>,
    topic: Arc<str>,
    counters: Arc<Counters>,
}

impl<T: crate::sinks::Record> Rejects<T> for OutboxRejects {
    fn dead_letter(
        &mut self,
        sink: &'static str,
        records: Vec<Arc<T>>,
        message: String,
    ) -> Vec<u64> {
        self.counters
            .sink_rejected
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let mut outbox = self.outbox.borrow_mut();
        records
            .into_iter()
            .map(|r| {
                self.counters.dead_letter("sink_rejected");
                let headers = vec![
                    ("glassbox.reason", b"sink_rejected".to_vec()),
                    ("glassbox.sink", sink.as_bytes().to_vec()),
                    ("glassbox.error", message.as_bytes().to_vec()),
                ];
                let receipt = outbox.receipt();
                outbox.send(
                    &self.topic,
                    r.key().as_bytes().to_vec(),
                    r.to_json(),
                    headers,
                    Tag::Held(receipt),
                );
                receipt
            })
            .collect()
    }

    fn settle(&mut self, receipts: &mut std::collections::HashSet<u64>) {
        self.outbox.borrow_mut().settle(receipts);
    }
}

fn dead_letter_rejects<T: crate::sinks::Record>(
    config: &Config,
    outbox: &Rc<RefCell<Outbox>>,
    counters: &Arc<Counters>,
) -> OnReject<T> {
    Box::new(OutboxRejects {
        outbox: outbox.clone(),
        topic: config.kafka.deadletter_topic.as_str().into(),
        counters: counters.clone(),
    })
}

/// The alert sinks: the alerts topic (through an outbox of its own), and Redis, InfluxDB and
/// Alertmanager when configured, each on a writer thread of its own.
fn alert_sinks(
    config: &Config,
    base: &ClientConfig,
    outbox: &Rc<RefCell<Outbox>>,
    counters: &Arc<Counters>,
) -> Result<(AlertSinks, Rc<RefCell<Outbox>>), String> {
    type Event = glassbox_operators::alerts::AlertEvent;
    let alerts_outbox = Rc::new(RefCell::new(
        Outbox::new(
            base.clone(),
            &config.kafka.deadletter_topic,
            counters.clone(),
        )
        .map_err(|e| format!("producer: {e}"))?,
    ));
    let mut sinks: Vec<Box<dyn Sink<Event>>> = vec![Box::new(KafkaSink::<Event>::new(
        alerts_outbox.clone(),
        &config.kafka.alerts_topic,
    ))];
    let on_retry = || -> OnRetry {
        let counters = counters.clone();
        Box::new(move |_| Counters::inc(&counters.sink_retries))
    };
    if config.influx.enabled {
        sinks.push(Box::new(ThreadedSink::<Event>::new(
            "influx-alerts",
            InfluxWriter::new(&config.influx)?,
            config.influx.batch_settings(),
            dead_letter_rejects(config, outbox, counters),
            on_retry(),
        )));
    }
    if config.redis.enabled {
        sinks.push(Box::new(ThreadedSink::<Event>::new(
            "redis-alerts",
            RedisWriter::new(&config.redis)?,
            BatchSettings::default(),
            dead_letter_rejects(config, outbox, counters),
            on_retry(),
        )));
    }
    if !config.alerts.alertmanager_url.is_empty() {
        sinks.push(Box::new(ThreadedSink::<Event>::new(
            "alertmanager",
            crate::sinks::alertmanager::AlertmanagerWriter::new(
                &config.alerts.alertmanager_url,
                Duration::from_millis(config.alerts.alertmanager_resend_ms),
            ),
            BatchSettings::default(),
            dead_letter_rejects(config, outbox, counters),
            on_retry(),
        )));
    }
    Ok((Rc::new(RefCell::new(sinks)), alerts_outbox))
}

/// A worker's alert sinks.
type AlertSinks = Rc<RefCell<Vec<Box<dyn Sink<glassbox_operators::alerts::AlertEvent>>>>>;

/// The InfluxDB and Redis sinks the configuration enables, each on a writer thread of its own.
fn server_sinks(
    config: &Config,
    outbox: &Rc<RefCell<Outbox>>,
    counters: &Arc<Counters>,
    ledger: Option<crate::sinks::redis::spend::SharedLedger>,
) -> Result<Vec<Box<dyn Sink>>, String> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let on_reject = || dead_letter_rejects(config, outbox, counters);
    let on_retry = || -> OnRetry {
        let counters = counters.clone();
        Box::new(move |_| Counters::inc(&counters.sink_retries))
    };
    if config.influx.enabled {
        let writer = InfluxWriter::new(&config.influx)?;
        sinks.push(Box::new(ThreadedSink::new(
            "influx",
            writer,
            config.influx.batch_settings(),
            on_reject(),
            on_retry(),
        )));
    }
    if config.redis.enabled {
        let mut writer = RedisWriter::new(&config.redis)?;
        if let Some(ledger) = ledger {
            writer = writer.with_spend(ledger);
        }
        sinks.push(Box::new(ThreadedSink::new(
            "redis",
            writer,
            BatchSettings::default(),
            on_reject(),
            on_retry(),
        )));
    }
    Ok(sinks)
}

/// What a worker needs for cost: the live price table with the span keying, and the spend
/// ledger shared by every worker's Redis writer.
pub(crate) struct Costing {
    pub(crate) prices: Option<(Arc<PriceBoard>, Arc<glassbox_operators::CostKeying>)>,
    pub(crate) ledger: Option<crate::sinks::redis::spend::SharedLedger>,
    pub(crate) rules: Option<Arc<Rules>>,
    pub(crate) quality: Option<QualityPlan>,
    /// The schema registry client, shared by every worker's source.
    pub(crate) registry: Option<Arc<crate::registry::SchemaRegistry>>,
}

/// The quality path's input: the spans the Kafka source hands over through `gate`, at the
/// source's times, with the source's time after each activation (`None` once it finished).
fn quality_source<'scope>(
    scope: timely::dataflow::Scope<'scope, u64>,
    gate: Rc<RefCell<(Vec<QualityInput>, Option<u64>)>>,
) -> timely::dataflow::StreamVec<'scope, u64, QualityInput> {
    source(scope, "QualitySource", move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut cap = Some(cap);
        move |output| {
            let Some(c) = cap.as_mut() else { return };
            let mut g = gate.borrow_mut();
            if !g.0.is_empty() {
                // Read at the Kafka source's times, which are not before this capability.
                output.session(c).give_container(&mut g.0);
            }
            match g.1 {
                Some(t) => {
                    if t > *c.time() {
                        c.downgrade(&t);
                    }
                    activator.activate_after(Duration::from_millis(10));
                }
                None => cap = None,
            }
        }
    })
}

/// Delivers the quality path's outputs: flagged answers (Kafka) and quality records (Kafka,
/// InfluxDB, Redis). Returns the probes of both.
fn quality_deliveries<'scope>(
    scored: timely::dataflow::StreamVec<'scope, u64, ScoredItem>,
    records: timely::dataflow::StreamVec<'scope, u64, QualityRecord>,
    sinks: &QualitySinks,
    config: &Config,
    resume_ms: u64,
    counters: &Arc<Counters>,
) -> Vec<ProbeHandle<u64>> {
    let (flag_dims, with_text) = (config.metrics.dimensions(), config.quality.text_in_outputs);
    let flagged = deliver(
        scored,
        "DurableFlagged",
        move |item: ScoredItem, time| {
            (time >= resume_ms)
                .then(|| FlaggedRecord::of(&item, &flag_dims, with_text).map(Arc::new))
                .flatten()
        },
        sinks.flagged.clone(),
        |_| {},
    );
    let emitted = counters.clone();
    let windows = deliver(
        records,
        "DurableQuality",
        move |r, time| (time >= resume_ms).then(|| Arc::new(r)),
        sinks.records.clone(),
        move |n| {
            emitted
                .windows_emitted
                .fetch_add(n as u64, Ordering::Relaxed);
        },
    );
    vec![flagged, windows]
}

/// A worker's quality sinks: flagged answers (Kafka), quality records (Kafka, InfluxDB,
/// Redis), and the outboxes to flush at the end.
#[derive(Clone)]
struct QualitySinks {
    flagged: Rc<RefCell<Vec<Box<dyn Sink<FlaggedRecord>>>>>,
    records: Rc<RefCell<Vec<Box<dyn Sink<QualityRecord>>>>>,
    outboxes: Vec<Rc<RefCell<Outbox>>>,
}

fn quality_sinks(
    config: &Config,
    base: &ClientConfig,
    outbox: &Rc<RefCell<Outbox>>,
    counters: &Arc<Counters>,
) -> Result<QualitySinks, String> {
    let new_outbox = || -> Result<Rc<RefCell<Outbox>>, String> {
        Ok(Rc::new(RefCell::new(
            Outbox::new(
                base.clone(),
                &config.kafka.deadletter_topic,
                counters.clone(),
            )
            .map_err(|e| format!("producer: {e}"))?,
        )))
    };
    let (flagged_outbox, records_outbox) = (new_outbox()?, new_outbox()?);
    let flagged: Vec<Box<dyn Sink<FlaggedRecord>>> = vec![Box::new(
        KafkaSink::<FlaggedRecord>::new(flagged_outbox.clone(), &config.quality.flagged_topic),
    )];
    let mut records: Vec<Box<dyn Sink<QualityRecord>>> = vec![Box::new(
        KafkaSink::<QualityRecord>::new(records_outbox.clone(), &config.quality.quality_topic),
    )];
    let on_retry = || -> OnRetry {
        let counters = counters.clone();
        Box::new(move |_| Counters::inc(&counters.sink_retries))
    };
    if config.influx.enabled {
        records.push(Box::new(ThreadedSink::<QualityRecord>::new(
            "influx-quality",
            InfluxWriter::new(&config.influx)?,
            config.influx.batch_settings(),
            dead_letter_rejects(config, outbox, counters),
            on_retry(),
        )));
    }
    if config.redis.enabled {
        records.push(Box::new(ThreadedSink::<QualityRecord>::new(
            "redis-quality",
            RedisWriter::new(&config.redis)?,
            BatchSettings::default(),
            dead_letter_rejects(config, outbox, counters),
            on_retry(),
        )));
    }
    Ok(QualitySinks {
        flagged: Rc::new(RefCell::new(flagged)),
        records: Rc::new(RefCell::new(records)),
        outboxes: vec![flagged_outbox, records_outbox],
    })
}

/// How long after its last window a span is still needed by `rules`: their longest history,
/// plus the longest `for` + `keep_firing_for`, so that a replay re-derives the lifecycle of an
/// episode that was open at the crash (episodes longer than that restart as new ones).
pub fn alert_retention_ms(rules: &Rules) -> u64 {
    let lifecycle = rules
        .rules
        .iter()
        .map(|r| r.for_ms + r.keep_firing_for_ms)
        .max()
        .unwrap_or(0);
    rules.history_ms() + lifecycle
}

// Each argument is a distinct piece of the worker's environment; bundling them would only
// move the list into a struct built at the one call site.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_worker(
    worker: &mut timely::worker::Worker,
    config: &Config,
    base: &ClientConfig,
    offsets: &BTreeMap<i32, Offset>,
    resume_ms: u64,
    handles: &Handles,
    board: &std::sync::Mutex<CommitBoard>,
    costing: Costing,
) -> Result<(), String> {
    let Costing {
        prices,
        ledger,
        rules,
        quality,
        registry,
    } = costing;
    let (index, peers) = (worker.index(), worker.peers());
    let counters = handles.counters.clone();
    let outbox = Outbox::new(
        base.clone(),
        &config.kafka.deadletter_topic,
        counters.clone(),
    )
    .map_err(|e| format!("producer: {e}"))?;
    let outbox = Rc::new(RefCell::new(outbox));
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(KafkaSink::new(
        outbox.clone(),
        &config.kafka.metrics_topic,
    ))];
    sinks.extend(server_sinks(config, &outbox, &counters, ledger)?);
    if let Some(extra) = &handles.extra_sinks {
        sinks.push(extra(index));
    }
    let sinks = Rc::new(RefCell::new(sinks));
    let alerting = match &rules {
        Some(_) => Some(alert_sinks(config, base, &outbox, &counters)?),
        None => None,
    };
    let quality = match quality {
        Some(shared) => Some((shared, quality_sinks(config, base, &outbox, &counters)?)),
        None => None,
    };
    let mine: Vec<(i32, Offset)> = offsets
        .iter()
        .filter(|(p, _)| (**p as usize) % peers == index)
        .map(|(p, o)| (*p, *o))
        .collect();
    let consumer: BaseConsumer = base
        .clone()
        .set("group.id", &config.kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", &config.kafka.auto_offset_reset)
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    let views = config.metrics.views();
    let dims = config.metrics.dimensions();
    let settings = SourceSettings {
        topic: config.kafka.input_topic.clone(),
        format: config.decode.format,
        registry,
        deadletter_topic: config.kafka.deadletter_topic.as_str().into(),
        dims: dims.clone(),
        views: views.clone(),
        lateness_ms: config.source.allowed_lateness_ms,
        idle_timeout: Duration::from_millis(config.source.idle_timeout_ms),
        stop_when_idle: config.source.stop_when_idle,
        drain: handles.drain.clone(),
        deadletter_late: config.source.deadletter_late,
        max_records: config.source.max_records_per_activation,
        max_backlog: config.source.max_backlog,
        resume_ms,
        rewind: config.source.resume_rewind_records,
        keying: prices.as_ref().map(|(_, k)| k.as_ref().clone()),
        retention_ms: rules.as_deref().map_or(0, alert_retention_ms),
        quality_timeout_ms: quality.as_ref().map(|_| config.quality.trace_timeout_ms),
    };
    let decoder = JsonDecoder::new(config.decode.limits()).with_text(config.quality.text());
    let src = KafkaSource::new(
        consumer,
        &mine,
        settings,
        decoder,
        outbox.clone(),
        counters.clone(),
    )
    .map_err(|e| format!("assign: {e}"))?;
    let src = Rc::new(RefCell::new(src));

    let plan = Plan {
        views: views.clone(),
        prices: prices.as_ref().map(|(board, _)| board.clone()),
        rules: rules.clone(),
        quality: quality.as_ref().map(|(plan, _)| plan.clone()),
        cardinality: (config.metrics.cardinality(), counters.cardinality.clone()),
    };
    let dataflow_id = worker.next_dataflow_index();
    let probe = worker.dataflow::<u64, _, _>(|scope| {
        let reader = src.clone();
        let backlog_of = sinks.clone();
        // The quality path's spans: handed over by the Kafka source through `gate`, with the
        // source's time after each activation (`None` once it finished).
        let gate: Rc<RefCell<(Vec<QualityInput>, Option<u64>)>> =
            Rc::new(RefCell::new((Vec::new(), Some(0))));
        let source_gate = gate.clone();
        let facts = source(scope, "KafkaSource", move |cap, info| {
            let activator = scope.activator_for(info.address);
            let mut cap = Some(cap);
            let mut batch = Vec::new();
            move |output| {
                let Some(c) = cap.as_mut() else { return };
                let backlog = crate::sinks::backlog(&backlog_of);
                let act = reader.borrow_mut().activate(*c.time(), backlog, &mut batch);
                if !batch.is_empty() {
                    output.session(c).give_container(&mut batch);
                }
                match act.watermark {
                    // Downgrading is safe: every span emitted from now on is at or after it.
                    Some(w) if w > *c.time() => c.downgrade(&w),
                    Some(_) => {}
                    // Input finished: releasing the capability closes every window.
                    None => cap = None,
                }
                {
                    let mut g = source_gate.borrow_mut();
                    reader.borrow_mut().take_quality(&mut g.0);
                    g.1 = cap.as_ref().map(|c| *c.time());
                }
                if cap.is_some() {
                    if act.records > 0 {
                        activator.activate();
                    } else {
                        activator.activate_after(Duration::from_millis(10));
                    }
                }
            }
        });
        let quality_in = quality.as_ref().map(|_| quality_source(scope, gate));
        let out = graph::build(
            Inputs {
                facts,
                quality: quality_in,
            },
            &plan,
        );
        let metrics_probe = durable_sinks(
            out.metrics,
            sinks.clone(),
            views.clone(),
            dims.clone(),
            resume_ms,
            counters.clone(),
        );
        let quality_probe = quality.as_ref().map(|(_, sinks)| {
            let scored = out.scored.expect("the quality path scores");
            let records = out.quality.expect("the quality path has windows");
            quality_deliveries(scored, records, sinks, config, resume_ms, &counters)
        });
        let alerts_probe = out
            .alerts
            .zip(alerting.as_ref())
            .map(|(events, (sinks, _))| {
                let delivery = config.alerts.clone();
                durable_events(
                    events,
                    sinks.clone(),
                    resume_ms,
                    move |e| delivery.delivers(e.kind),
                    counters.clone(),
                )
            });
        (metrics_probe, alerts_probe, quality_probe)
    });
    let (probe, alerts_probe, quality_probe) = probe;

    // A stop seen by one process (SIGTERM, SIGINT) reaches every worker of the cluster: timely
    // clusters are static, and a process that stopped alone would leave the others waiting
    // for its workers for ever (a clean stop closes its connections without the error that a
    // crash causes). Each process then makes its own last commit.
    let everywhere = handles.shutdown.clone();
    let mut stop = worker.dataflow::<u64, _, _>(|scope| {
        let (input, stream) = scope.new_input::<Vec<()>>();
        stream
            .broadcast()
            .inspect(move |_| everywhere.store(true, Ordering::Relaxed));
        input
    });

    // The process's committer (`kafka::commits::Committer`, a thread of its own) commits what
    // the workers deposit, offsets and frontier together.
    let commit_every = Duration::from_millis(config.source.commit_interval_ms);
    let log_every = Duration::from_millis(config.telemetry.log_interval_ms);
    let (mut last_commit, mut last_log) = (Instant::now(), Instant::now());
    // The durable frontier: the least over the window records, alert events and quality
    // outputs (an empty frontier is done).
    let probes: Vec<ProbeHandle<u64>> = std::iter::once(probe.clone())
        .chain(alerts_probe.clone())
        .chain(quality_probe.iter().flatten().cloned())
        .collect();
    let durable = || {
        probes
            .iter()
            .filter_map(|p| p.with_frontier(|f| f.first().copied()))
            .min()
    };
    let all_done = || probes.iter().all(|p| p.done());
    loop {
        worker.step_or_park(Some(Duration::from_millis(10)));
        if handles.shutdown.load(Ordering::Relaxed) {
            stop.send(());
            stop.advance_to(1);
            src.borrow_mut().deposit(durable(), board);
            tracing::info!(
                worker = index,
                "shutdown: durable offsets handed to the final commit"
            );
            // Open windows are abandoned, not flushed: a restart rebuilds them from the
            // committed offsets. Dropping the dataflow stops timely from running it to completion.
            worker.drop_dataflow(dataflow_id);
            break;
        }
        if all_done() {
            // Only reached once every worker's input is finished and every sink acknowledged.
            src.borrow_mut().deposit(None, board);
            tracing::info!(worker = index, "input finished, all windows durable");
            break;
        }
        if last_commit.elapsed() >= commit_every {
            src.borrow_mut().deposit(durable(), board);
            last_commit = Instant::now();
        }
        if index % config.source.workers.max(1) == 0
            && !log_every.is_zero()
            && last_log.elapsed() >= log_every
        {
            tracing::info!(counters = ?counters.snapshot(), durable_ms = ?durable(), "pipeline");
            if let Some((shared, _)) = &quality {
                tracing::info!(
                    answers = ?shared.counters.snapshot(),
                    scored_fraction = shared.counters.scored_fraction(),
                    traces = ?shared.joins.snapshot(),
                    feedback = ?shared.feedback_counters.snapshot(),
                    "quality"
                );
            }
            last_log = Instant::now();
        }
    }
    outbox.borrow().flush(Duration::from_secs(5));
    if let Some((_, alerts_outbox)) = &alerting {
        alerts_outbox.borrow().flush(Duration::from_secs(5));
    }
    if let Some((_, sinks)) = &quality {
        for o in &sinks.outboxes {
            o.borrow().flush(Duration::from_secs(5));
        }
    }
    Ok(())
}
