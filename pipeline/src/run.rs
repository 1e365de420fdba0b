//! Start-up and shutdown: checks the configuration and the sinks' settings, reads where to
//! resume, loads the price table and the rules, starts the scoring threads, runs one
//! [`crate::worker`] per timely worker, and makes the last commit once they have stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use glassbox_operators::cost::pricing::PriceBoard;
use glassbox_operators::graph::QualityPlan;

use crate::config::Config;
pub use crate::error::PipelineError;
use crate::kafka::admin::{client_config, ensure_output_topics, input_partitions};
use crate::kafka::commits::{Committer, resume_state};
use crate::kafka::offsets::CommitBoard;
use crate::quality::ScoringPool;
use crate::sinks::influx::InfluxWriter;
use crate::sinks::redis::RedisWriter;
use crate::worker::{Costing, run_worker};
pub use crate::worker::{Handles, SinkFactory};
use glassbox_operators::TraceJoinConfig;

/// Runs the pipeline until `handles.shutdown` is set or, with `source.stop_when_idle`, the
/// input is exhausted.
pub fn run(config: &Config, handles: Handles) -> Result<(), PipelineError> {
    config.validate()?;
    // Fail fast on sink settings (secrets resolved, URLs parsed) before touching Kafka.
    if config.influx.enabled {
        InfluxWriter::new(&config.influx).map_err(PipelineError::Sink)?;
    }
    if config.redis.enabled {
        RedisWriter::new(&config.redis).map_err(PipelineError::Sink)?;
    }
    let placement = config.cluster.placement(hostname().as_deref())?;
    let ready_file = Some(config.cluster.ready_file.trim()).filter(|f| !f.is_empty());
    if let Some(file) = ready_file {
        // A restarted container in the same pod must not look ready before it connects.
        let _ = std::fs::remove_file(file);
    }
    let base = client_config(config)?;
    let partitions = input_partitions(config, &base)?;
    ensure_output_topics(config, &base, placement.processes())?;
    let (offsets, resume_ms) = resume_state(config, &base, &partitions)?;
    tracing::info!(
        topic = %config.kafka.input_topic,
        partitions = partitions.len(),
        workers = config.source.workers,
        process = placement.process,
        processes = placement.processes(),
        resume_ms,
        "starting pipeline"
    );
    // The price table: loaded once here (validate() already proved it loads), then reloaded
    // by the watcher on file change or SIGHUP.
    let prices = if config.cost.enabled {
        let table = config.cost.load_table().map_err(PipelineError::Sink)?;
        let keying = config.cost.keying(&table);
        tracing::info!(
            models = table.len(),
            tiers = ?keying.thresholds,
            source = if config.cost.prices.is_empty() { "shipped" } else { config.cost.prices.as_str() },
            "price table loaded"
        );
        let board = PriceBoard::new(table, Duration::from_millis(100));
        Some((board, keying))
    } else {
        None
    };
    let watcher_stop = Arc::new(AtomicBool::new(false));
    let watcher = match &prices {
        Some((board, _)) => Some(
            crate::pricing::spawn_watcher(
                config.cost.clone(),
                board.clone(),
                handles.counters.clone(),
                watcher_stop.clone(),
            )
            .map_err(|e| PipelineError::Sink(format!("price watcher: {e}")))?,
        ),
        None => None,
    };
    let ledger = match &prices {
        Some((board, _)) if config.redis.enabled => {
            let relay = crate::sinks::redis::spend::Relay {
                producer: base
                    .clone()
                    .create_with_context(crate::sinks::redis::spend::RelayContext::default())?,
                topic: config.kafka.alerts_topic.clone(),
            };
            let views = config.metrics.views();
            Some(crate::sinks::redis::spend::SpendLedger::new(
                crate::sinks::redis::spend::SpendSettings {
                    prefix: config.redis.key_prefix.clone(),
                    tumbling_view: views.views[0].name.clone(),
                    calendar: config.cost.calendar(),
                    day_ttl_secs: config.cost.day_ttl_days * 86_400,
                    month_ttl_secs: config.cost.month_ttl_days * 86_400,
                    budgets: config.cost.budget_lines().map_err(PipelineError::Sink)?,
                    board: board.clone(),
                    relay: Some(relay),
                    counters: handles.counters.clone(),
                },
            ))
        }
        _ => None,
    };
    let prices = prices.map(|(b, k)| (b, Arc::new(k)));
    let quality = if config.quality.enabled {
        let scorer = config.quality.scorer()?;
        tracing::info!(
            threads = config.quality.threads,
            queue = config.quality.queue_capacity,
            "quality scoring enabled"
        );
        Some(QualityPlan {
            dims: config.metrics.dimensions(),
            trace_join: TraceJoinConfig {
                timeout_ms: config.quality.trace_timeout_ms,
                max_spans_per_trace: config.quality.trace_max_spans,
                max_chunks_per_item: config.quality.max_chunks_per_answer,
            },
            feedback: config.quality.feedback(),
            pool: ScoringPool::new(
                Arc::new(crate::quality::ModelScorer(scorer)),
                config.quality.threads,
                config.quality.queue_capacity,
            ),
            counters: handles.quality.clone(),
            joins: Arc::default(),
            feedback_counters: Arc::default(),
        })
    } else {
        None
    };
    let rules = config
        .alerts
        .load_rules(&config.metrics.dimensions(), &config.metrics.views())?
        .map(Arc::new);
    if let Some(r) = &rules {
        tracing::info!(
            rules = r.rules.len(),
            history_ms = r.history_ms(),
            "alert rules loaded"
        );
    }
    let registry = if config.registry.enabled() {
        tracing::info!(url = %config.registry.url, "schema registry for avro_registry records");
        Some(Arc::new(
            crate::registry::SchemaRegistry::new(&config.registry).map_err(PipelineError::Sink)?,
        ))
    } else {
        None
    };
    let config = Arc::new(config.clone());
    let base = Arc::new(base);
    let offsets = Arc::new(offsets);
    let workers = config.source.workers;
    let board = Arc::new(std::sync::Mutex::new(CommitBoard::resuming(resume_ms)));
    let counters = handles.counters.clone();
    let committer = Committer::start(
        base.as_ref(),
        &config,
        placement.process,
        board.clone(),
        counters.clone(),
    )?;
    let guards = {
        let (config, base, board) = (config.clone(), base.clone(), board.clone());
        timely::execute(timely_config(&placement, workers), move |worker| {
            run_worker(
                worker,
                &config,
                &base,
                &offsets,
                resume_ms,
                &handles,
                &board,
                Costing {
                    prices: prices.clone(),
                    ledger: ledger.clone(),
                    rules: rules.clone(),
                    quality: quality.clone(),
                    registry: registry.clone(),
                },
            )
        })
        .map_err(PipelineError::Worker)?
    };
    // timely returns once every process of the cluster is connected.
    if placement.processes() > 1 {
        tracing::info!(
            process = placement.process,
            processes = placement.processes(),
            "every process of the cluster is connected"
        );
    }
    if let Some(file) = ready_file
        && let Err(error) = std::fs::write(file, b"ready\n")
    {
        tracing::warn!(%error, file, "cannot create cluster.ready_file");
    }
    let mut failure = None;
    for result in guards.join() {
        if let Err(e) = result
            .map_err(PipelineError::Worker)
            .and_then(|r| r.map_err(PipelineError::Worker))
        {
            failure.get_or_insert(e);
        }
    }
    // Every worker has deposited its last commit points: commit them, synchronously.
    committer.finish();
    watcher_stop.store(true, Ordering::Relaxed);
    if let Some(w) = watcher {
        let _ = w.join();
    }
    tracing::info!(counters = ?counters.snapshot(), "pipeline stopped");
    failure.map_or(Ok(()), Err)
}

/// The host name (a StatefulSet pod's is its name, whose ordinal is its process index).
fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// Exit status of a process whose cluster lost a peer (`EX_SOFTWARE`-like: not a clean stop).
pub const LOST_PEER_EXIT: i32 = 75;

/// timely's configuration: `workers` threads in this process, and, with more than one host,
/// the cluster of `placement`. timely clusters are static: when a peer process dies, timely's
/// network threads panic with "timely communication error", and the workers would wait for
/// the dead peer for ever. So that the process stops promptly (and Kubernetes restarts the
/// cluster, which resumes from the committed offsets), a panic hook turns that panic into a
/// log line and an exit with [`LOST_PEER_EXIT`]; nothing is committed after it.
fn timely_config(placement: &crate::config::Placement, workers: usize) -> timely::Config {
    if placement.processes() <= 1 {
        return timely::Config::process(workers);
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("timely communication error") {
            tracing::error!(
                error = message,
                "lost a process of the cluster: stopping (restart every process; they resume \
                 from the committed offsets)"
            );
            std::process::exit(LOST_PEER_EXIT);
        }
        previous(info);
    }));
    timely::Config {
        communication: timely::CommunicationConfig::Cluster {
            threads: workers,
            process: placement.process,
            addresses: placement.hosts.clone(),
            report: false,
            zerocopy: false,
        },
        worker: timely::WorkerConfig::default(),
    }
}
