//! `glassbox demo`: the whole pipeline with no servers at all.
//!
//! librdkafka's in-process mock cluster stands in for Kafka, the load generator publishes spans
//! at the requested rate with real-time timestamps, the real pipeline consumes them, and a live
//! table of every series' latest closed window is printed to the terminal.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::config::Config;
use crate::kafka::source::now_ms;
use crate::records::metrics::MetricsRecord;
use crate::run::{Handles, PipelineError, run};
use crate::sinks::{Keyed, Sink};
use glassbox_support::loadgen::Generator;

/// Latest tumbling window per series, shared by every worker's table sink.
pub type Table = Arc<Mutex<BTreeMap<String, MetricsRecord>>>;

/// A sink that keeps the latest tumbling window of each series in memory.
pub struct TableSink {
    table: Table,
    acked: Vec<u64>,
}

impl TableSink {
    /// A sink writing into `table`.
    pub fn new(table: Table) -> Self {
        Self {
            table,
            acked: Vec::new(),
        }
    }
}

impl Sink for TableSink {
    fn name(&self) -> &'static str {
        "table"
    }

    fn submit(&mut self, ticket: u64, records: &[Arc<Keyed>]) {
        let mut table = self.table.lock().expect("table lock");
        for r in records
            .iter()
            .filter(|r| r.record.view.starts_with("tumbling"))
        {
            let newer = table
                .get(&r.key)
                .is_none_or(|old| old.window_end_ms <= r.record.window_end_ms);
            if newer {
                table.insert(r.key.clone(), r.record.clone());
            }
        }
        self.acked.push(ticket);
    }

    fn poll(&mut self, acked: &mut Vec<u64>) {
        acked.append(&mut self.acked);
    }

    fn backlog(&self) -> usize {
        0
    }
}

/// Renders the table.
pub fn render(table: &BTreeMap<String, MetricsRecord>) -> String {
    let mut out = format!(
        "{:<58} {:>8} {:>10} {:>10} {:>10} {:>7} {:>10}\n",
        "series (provider,model,tenant,feature)",
        "RPM",
        "TPM",
        "p95 lat ms",
        "p95 ttft",
        "err %",
        "$/window"
    );
    for r in table.values() {
        let series: Vec<&str> = ["provider", "model", "tenant", "feature"]
            .iter()
            .map(|d| r.series.get(*d).map_or("-", String::as_str))
            .collect();
        let p95 = |d: &Option<crate::records::metrics::Distribution>| {
            d.as_ref().map_or("-".into(), |d| format!("{:.0}", d.p95))
        };
        let cost = r
            .cost
            .as_ref()
            .map_or("-".into(), |c| format!("{:.4}", c.usd));
        out.push_str(&format!(
            "{:<58} {:>8.0} {:>10.0} {:>10} {:>10} {:>6.1}% {:>10}\n",
            series.join(","),
            r.rpm,
            r.tpm,
            p95(&r.latency_ms),
            p95(&r.ttft_ms),
            r.error_rate * 100.0,
            cost
        ));
    }
    out
}

/// Options of the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Spans per second.
    pub rate: f64,
    /// Stop after this long; `None` runs until Ctrl-C.
    pub duration: Option<Duration>,
    /// Tumbling window, ms.
    pub window_ms: u64,
    /// Sliding view, ms.
    pub sliding_ms: u64,
    /// Print the table every this often.
    pub refresh: Duration,
}

/// Runs the demo.
pub fn demo(opts: DemoOptions, handles: Handles) -> Result<(), PipelineError> {
    let cluster = MockCluster::new(1)?;
    let brokers = cluster.bootstrap_servers();
    let topic = "llm.spans";
    cluster.create_topic(topic, 4, 1)?;
    let mut config = Config::default();
    // The mock cluster does not implement CreateTopics: create the output topics directly.
    cluster.create_topic(&config.kafka.metrics_topic, 4, 1)?;
    cluster.create_topic(&config.kafka.deadletter_topic, 1, 1)?;
    cluster.create_topic(&config.kafka.state_topic, 1, 1)?;
    cluster.create_topic(&config.kafka.alerts_topic, 1, 1)?;
    config.kafka.brokers = brokers.clone();
    config.kafka.input_topic = topic.into();
    config.metrics.window_ms = opts.window_ms;
    config.metrics.sliding_ms = opts.sliding_ms;
    config.source.allowed_lateness_ms = 2_000;
    config.source.idle_timeout_ms = 3_000;
    config.telemetry.log_interval_ms = 0;
    config.validate()?;

    let table: Table = Arc::default();
    let sink_table = table.clone();
    let handles = Handles {
        extra_sinks: Some(Arc::new(move |_| {
            Box::new(TableSink::new(sink_table.clone())) as Box<dyn Sink>
        })),
        ..handles
    };
    let stop = handles.shutdown.clone();

    // The load generator: real-time timestamps, paced to the rate.
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()?;
    let gen_stop = stop.clone();
    let rate = opts.rate;
    let generator = std::thread::spawn(move || {
        let started = Instant::now();
        let mut sent = 0u64;
        let mut generator = Generator::new(now_ms(), now_ms(), rate);
        while !gen_stop.load(Ordering::Relaxed) {
            let due = (started.elapsed().as_secs_f64() * rate) as u64;
            while sent < due {
                let mut span = generator.next_span();
                // Real time, not the generator's own clock.
                span.start_ns = now_ms() * 1_000_000;
                let payload = span.to_json();
                let record = BaseRecord::to(topic).key(&span.trace_id).payload(&payload);
                if producer.send(record).is_err() {
                    producer.poll(Duration::from_millis(10));
                    continue;
                }
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = producer.flush(Duration::from_secs(5));
    });

    let printer_stop = stop.clone();
    let counters = handles.counters.clone();
    let refresh = opts.refresh;
    let printer = std::thread::spawn(move || {
        let started = Instant::now();
        while !printer_stop.load(Ordering::Relaxed) {
            std::thread::sleep(refresh);
            let t = table.lock().expect("table lock").clone();
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\x1b[2J\x1b[H");
            let _ = writeln!(
                out,
                "glassbox demo — {:.0} spans/s into an in-process mock Kafka; windows of {} s; {:.0} s elapsed",
                rate,
                opts.window_ms / 1000,
                started.elapsed().as_secs_f64()
            );
            let _ = writeln!(out, "counters: {:?}\n", counters.snapshot());
            if t.is_empty() {
                let _ = writeln!(out, "(waiting for the first window to close…)");
            } else {
                let _ = write!(out, "{}", render(&t));
            }
            let _ = out.flush();
        }
    });
    if let Some(d) = opts.duration {
        let s = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(d);
            s.store(true, Ordering::Relaxed);
        });
    }
    let result = run(&config, handles);
    stop.store(true, Ordering::Relaxed);
    let _ = generator.join();
    let _ = printer.join();
    drop(cluster);
    result
}
