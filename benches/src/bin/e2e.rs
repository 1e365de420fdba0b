//! End to end through a real broker (Apache Kafka, or tansu): a bare rdkafka consumer against glassbox on the
//! same topic, then window latency under a live producer.
//!
//! ```text
//! STACK_DIR=/tmp/bench-stack bash integration/scripts/stack.sh start kafka
//! . /tmp/bench-stack/env
//! ./target/release/e2e [--spans 1000000] [--live-rate 20000] [--live-secs 75]
//! ```
//!
//! Throughput: N spans (timestamps in the last hours, keyed by trace id) are published to a
//! fresh 4-partition topic; a bare `BaseConsumer` reads them all, then glassbox runs in-process
//! on the same topic (`stop_when_idle`) and is timed until its `consumed` counter reaches N.
//! Latency: a producer thread publishes spans stamped with the current time at a fixed rate;
//! an extra sink records, for every tumbling window record, emission time − window end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use glassbox::config::Config;
use glassbox::kafka::admin::{client_config, ensure_output_topics};
use glassbox::kafka::source::now_ms;
use glassbox::run::{Handles, run};
use glassbox::sinks::Sink;
use glassbox_benches::broker::{
    ArrivalSink, BrokerArgs, Deliveries, base_config, bulk_producer, parse_property, send, unique,
};
use glassbox_benches::{cpu_secs, peak_rss_mib, quantile};
use glassbox_support::loadgen::Generator;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[derive(Parser, Debug)]
#[command(
    about = "glassbox end to end through a real broker: bare consumer vs glassbox, and latency"
)]
struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Spans published for the throughput test.
    #[arg(long, default_value_t = 1_000_000)]
    spans: u64,
    /// Partitions of the topics created.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// glassbox timely workers.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Event-time rate of the throughput spans (spans per second of event time).
    #[arg(long, default_value_t = 1_000.0)]
    event_rate: f64,
    /// Producer compression codec.
    #[arg(long, default_value = "lz4")]
    compression: String,
    /// Bare-consumer/glassbox rounds over the same topic.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Live producer rate for the latency test (spans/s).
    #[arg(long, default_value_t = 20_000.0)]
    live_rate: f64,
    /// How long the live producer runs (s).
    #[arg(long, default_value_t = 75)]
    live_secs: u64,
    /// Extra librdkafka property for the consumers, bare and glassbox (`kafka.properties`),
    /// `key=value`; repeatable. Example: `--property fetch.wait.max.ms=50`.
    #[arg(long = "property", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// Skip the throughput test.
    #[arg(long)]
    skip_throughput: bool,
    /// Skip the latency test.
    #[arg(long)]
    skip_latency: bool,
}

fn producer(args: &Args, linger_ms: u32) -> ThreadedProducer<Deliveries> {
    bulk_producer(&args.broker.brokers, linger_ms, &args.compression)
}

/// CPU seconds of this process and of the broker (when known).
#[derive(Clone, Copy)]
struct Cpu {
    own: f64,
    broker: Option<f64>,
}

fn cpu(broker_pid: Option<&str>) -> Cpu {
    Cpu {
        own: cpu_secs("self").unwrap_or(0.0),
        broker: broker_pid.and_then(cpu_secs),
    }
}

fn cpu_since(before: Cpu, broker_pid: Option<&str>) -> Cpu {
    let now = cpu(broker_pid);
    Cpu {
        own: now.own - before.own,
        broker: now.broker.zip(before.broker).map(|(a, b)| a - b),
    }
}

fn cores(c: Cpu, wall: f64) -> String {
    let broker = c
        .broker
        .map_or("n/a".to_owned(), |b| format!("{:.2}", b / wall));
    format!(
        "CPU: this process {:.2} cores, broker {broker} cores",
        c.own / wall
    )
}

fn publish(args: &Args, topic: &str, broker_pid: Option<&str>) -> String {
    // Event time: `spans / event_rate` seconds ending an hour ago, well inside the 7-day horizon.
    let span_s = args.spans as f64 / args.event_rate;
    let start_ms = now_ms() - 3_600_000 - (span_s * 1_000.0) as u64;
    let mut g = Generator::new(1, start_ms, args.event_rate);
    let p = producer(args, 50);
    let (t, c) = (Instant::now(), cpu(broker_pid));
    let mut bytes = 0usize;
    for _ in 0..args.spans {
        let span = g.next_span();
        let payload = span.to_json();
        bytes += payload.len();
        send(&p, topic, &span.trace_id, &payload);
    }
    p.flush(Duration::from_secs(300)).expect("flush");
    let wall = t.elapsed().as_secs_f64();
    let d = p.context();
    let line = format!(
        "published {} spans ({:.0} MB of JSON, {}) in {wall:.1} s: {:.0}/s, {} delivered, {} failed; {}",
        args.spans,
        bytes as f64 / 1e6,
        args.compression,
        args.spans as f64 / wall,
        d.ok.load(Ordering::Relaxed),
        d.failed.load(Ordering::Relaxed),
        cores(cpu_since(c, broker_pid), wall),
    );
    println!("{line}");
    line
}

struct Bare {
    records: u64,
    rate: f64,
    rate_from_first: f64,
    mb_s: f64,
    line: String,
}

fn bare_consumer(args: &Args, topic: &str, broker_pid: Option<&str>) -> Bare {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &args.broker.brokers)
        .set("group.id", unique("bench-bare"))
        .set("enable.auto.commit", "false");
    for (k, v) in &args.properties {
        client.set(k, v);
    }
    let consumer: BaseConsumer = client.create().expect("consumer");
    let (t, c) = (Instant::now(), cpu(broker_pid));
    let mut tpl = TopicPartitionList::new();
    for p in 0..args.partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let (mut records, mut bytes) = (0u64, 0usize);
    let mut last = Instant::now();
    let mut first = None;
    while records < args.spans && last.elapsed() < Duration::from_secs(30) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(|| t.elapsed());
                records += 1;
                bytes += m.payload().map_or(0, <[u8]>::len);
                last = Instant::now();
            }
            Some(Err(e)) => eprintln!("bare consumer: {e}"),
            None => {}
        }
    }
    let wall = t.elapsed().as_secs_f64();
    let rate = records as f64 / wall;
    let mb_s = bytes as f64 / 1e6 / wall;
    let first = first.map_or(0.0, |f| f.as_secs_f64());
    let rate_from_first = records as f64 / (wall - first);
    let line = format!(
        "bare consumer: {records} records in {wall:.2} s (first record after {first:.2} s): \
         {rate:.0} records/s ({rate_from_first:.0}/s from the first record), {mb_s:.0} MB/s; {}",
        cores(cpu_since(c, broker_pid), wall)
    );
    println!("{line}");
    Bare {
        records,
        rate,
        rate_from_first,
        mb_s,
        line,
    }
}

fn config_for(args: &Args, topic: &str) -> Config {
    base_config(
        &args.broker,
        topic,
        &unique("bench"),
        args.workers,
        &args.properties,
    )
}

/// Times the broker round trips glassbox's start-up makes: a fresh client's metadata request,
/// and the creation of its three output topics.
fn startup(args: &Args, topic: &str) -> String {
    let config = config_for(args, topic);
    let base = client_config(&config).expect("client config");
    let t = Instant::now();
    let consumer: BaseConsumer = base.clone().create().expect("consumer");
    consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let metadata = t.elapsed().as_secs_f64();
    let t = Instant::now();
    ensure_output_topics(&config, &base, 1).expect("create output topics");
    let create = t.elapsed().as_secs_f64();
    let t = Instant::now();
    ensure_output_topics(&config, &base, 1).expect("output topics exist");
    let exist = t.elapsed().as_secs_f64();
    // The committed offsets of a fresh group, read as glassbox reads them before it starts
    // (on a fresh broker this waits for the group coordinator).
    let t = Instant::now();
    let partitions: Vec<i32> = (0..args.partitions as i32).collect();
    glassbox::kafka::commits::resume_state(&config, &base, &partitions).expect("committed offsets");
    let committed = t.elapsed().as_secs_f64();
    let line = format!(
        "start-up round trips: new client + metadata {:.0} ms; creating 3 output topics {:.0} ms; \
         checking they exist {:.0} ms; committed offsets of a fresh group {:.0} ms",
        metadata * 1e3,
        create * 1e3,
        exist * 1e3,
        committed * 1e3
    );
    println!("{line}");
    line
}

struct Glassbox {
    rate: f64,
    rate_from_first: f64,
    total_s: f64,
    line: String,
}

fn glassbox_throughput(args: &Args, topic: &str, broker_pid: Option<&str>) -> Glassbox {
    let mut config = config_for(args, topic);
    config.source.stop_when_idle = true;
    let handles = Handles::default();
    let counters = handles.counters.clone();
    let (t, c) = (Instant::now(), cpu(broker_pid));
    let pipeline = std::thread::spawn(move || run(&config, handles));
    let mut first = None;
    let mut at_n = None;
    while !pipeline.is_finished() {
        let consumed = counters.consumed.load(Ordering::Relaxed);
        if first.is_none() && consumed > 0 {
            first = Some(t.elapsed());
        }
        if consumed >= args.spans {
            at_n = Some((t.elapsed(), cpu_since(c, broker_pid)));
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let result = pipeline.join().expect("pipeline thread");
    let total = t.elapsed().as_secs_f64();
    if let Err(e) = &result {
        eprintln!("glassbox failed: {e}");
    }
    let snap = counters.snapshot();
    let (elapsed, busy) = at_n.unwrap_or((t.elapsed(), cpu_since(c, broker_pid)));
    let wall = elapsed.as_secs_f64();
    let consumed = snap["consumed"];
    let rate = consumed.min(args.spans) as f64 / wall;
    let from_first = first.map_or(0.0, |f| {
        consumed.min(args.spans) as f64 / (elapsed - f).as_secs_f64()
    });
    let line = format!(
        "glassbox: {consumed} spans in {wall:.2} s from run() (first record after {:.2} s): \
         {rate:.0} spans/s ({from_first:.0}/s from the first record); {} ; total incl. idle tail \
         and final commit {total:.2} s; windows {} late {} deadlettered {} commits {} \
         backpressure pauses {}; peak RSS {:.0} MiB{}",
        first.map_or(f64::NAN, |f| f.as_secs_f64()),
        cores(busy, wall),
        snap["windows_emitted"],
        snap["late"],
        snap["deadlettered"],
        snap["commits"],
        snap["backpressure_pauses"],
        peak_rss_mib(),
        if result.is_ok() { "" } else { " (FAILED)" },
    );
    println!("{line}");
    Glassbox {
        rate,
        rate_from_first: from_first,
        total_s: total,
        line,
    }
}

fn stats(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        quantile(values, 0.5),
        quantile(values, 0.99),
        values.last().copied().unwrap_or(0.0),
    )
}

fn latency(args: &Args, broker_pid: Option<&str>) -> Vec<String> {
    const WINDOW_MS: u64 = 10_000;
    const LATENESS_MS: u64 = 1_000;
    let topic = unique("bench-live");
    args.broker.create_topic(&topic, args.partitions);
    let mut config = config_for(args, &topic);
    config.metrics.window_ms = WINDOW_MS;
    config.metrics.sliding_ms = 30_000;
    config.source.allowed_lateness_ms = LATENESS_MS;
    let samples: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let sink_samples = samples.clone();
    let handles = Handles {
        extra_sinks: Some(Arc::new(move |_| {
            Box::new(ArrivalSink::new(sink_samples.clone())) as Box<dyn Sink>
        })),
        ..Handles::default()
    };
    let (shutdown, counters) = (handles.shutdown.clone(), handles.counters.clone());
    let (t, c) = (Instant::now(), cpu(broker_pid));
    let pipeline = std::thread::spawn(move || run(&config, handles));

    // Transport alone: a bare consumer (same client properties) timing each record from its
    // producer CreateTime to its arrival.
    let probe_stop = Arc::new(AtomicBool::new(false));
    let probe = {
        let consumer: BaseConsumer = {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", &args.broker.brokers)
                .set("group.id", unique("bench-probe"))
                .set("enable.auto.commit", "false");
            for (k, v) in &args.properties {
                c.set(k, v);
            }
            c.create().expect("probe consumer")
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..args.partitions as i32 {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&tpl).expect("assign");
        let stop = probe_stop.clone();
        std::thread::spawn(move || {
            let mut transit = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50))
                    && let Some(created) = m.timestamp().to_millis()
                {
                    transit.push(now_ms() as f64 - created as f64);
                }
            }
            transit
        })
    };

    let p = producer(args, 5);
    let rate = args.live_rate;
    let mut g = Generator::new(2, now_ms(), rate);
    let first_ms = now_ms();
    let started = Instant::now();
    let mut sent = 0u64;
    while !pipeline.is_finished() {
        let elapsed = started.elapsed();
        if elapsed >= Duration::from_secs(args.live_secs) {
            break;
        }
        let due = (elapsed.as_secs_f64() * rate) as u64;
        while sent < due {
            let mut span = g.next_span();
            span.start_ns = now_ms() * 1_000_000;
            send(&p, &topic, &span.trace_id, &span.to_json());
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let stop_ms = now_ms();
    p.flush(Duration::from_secs(30)).expect("flush");
    let send_s = started.elapsed().as_secs_f64();
    // Let the last windows that live data can close be emitted, then stop.
    std::thread::sleep(Duration::from_secs(3));
    let busy = cpu_since(c, broker_pid);
    let wall = t.elapsed().as_secs_f64();
    shutdown.store(true, Ordering::Relaxed);
    let result = pipeline.join().expect("pipeline thread");
    if let Err(e) = &result {
        eprintln!("glassbox failed: {e}");
    }
    let snap = counters.snapshot();
    probe_stop.store(true, Ordering::Relaxed);
    let mut transit = probe.join().expect("probe thread");
    let (t50, t99, tmax) = stats(&mut transit);

    // Windows entirely inside the producer's run, and closed by live data (not by the stop).
    let all = samples.lock().expect("samples lock").clone();
    let kept: Vec<(u64, u64)> = all
        .iter()
        .copied()
        .filter(|(end, _)| *end >= first_ms + WINDOW_MS && end + LATENESS_MS + 1_000 <= stop_ms)
        .collect();
    let mut per_record: Vec<f64> = kept
        .iter()
        .map(|(end, at)| *at as f64 - *end as f64)
        .collect();
    let mut by_window: std::collections::BTreeMap<u64, u64> = Default::default();
    for (end, at) in &kept {
        let last = by_window.entry(*end).or_default();
        *last = (*last).max(*at);
    }
    let mut per_window: Vec<f64> = by_window
        .iter()
        .map(|(end, at)| *at as f64 - *end as f64)
        .collect();
    let (r50, r99, rmax) = stats(&mut per_record);
    let (w50, w99, wmax) = stats(&mut per_window);
    let l = LATENESS_MS as f64;
    let mut lines = vec![
        format!(
            "live producer: {sent} spans in {send_s:.1} s ({:.0}/s, target {rate:.0}/s), {} delivered, {} failed",
            sent as f64 / send_s,
            p.context().ok.load(Ordering::Relaxed),
            p.context().failed.load(Ordering::Relaxed),
        ),
        format!(
            "glassbox (window 10 s, sliding 30 s, lateness 1 s, {} workers): consumed {} late {} \
             windows emitted {}; {} over the run{}",
            args.workers,
            snap["consumed"],
            snap["late"],
            snap["windows_emitted"],
            cores(busy, wall),
            if result.is_ok() { "" } else { " (FAILED)" },
        ),
        format!(
            "latency over {} tumbling records of {} windows (of {} records seen): \
             emission − window end p50 {r50:.0} ms, p99 {r99:.0} ms, max {rmax:.0} ms; \
             minus the 1 s allowed lateness: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            per_record.len(),
            per_window.len(),
            all.len(),
            r50 - l,
            r99 - l,
            rmax - l
        ),
        format!(
            "per window (last record of the window): p50 {w50:.0} ms, p99 {w99:.0} ms, max {wmax:.0} ms; \
             minus lateness p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            w50 - l,
            w99 - l,
            wmax - l
        ),
        format!(
            "transport alone (producer CreateTime → a bare consumer's poll, {} records, same \
             client properties): p50 {t50:.0} ms, p99 {t99:.0} ms, max {tmax:.0} ms",
            transit.len()
        ),
    ];
    for l in &lines {
        println!("{l}");
    }
    lines.insert(0, format!("topic {topic}"));
    lines
}

fn main() {
    let args = Args::parse();
    let broker_pid = args.broker.pid();
    let broker_pid = broker_pid.as_deref();
    let mut summary = vec![
        "## glassbox e2e".to_owned(),
        String::new(),
        format!(
            "{} at {} ({} partitions), {} workers, compression {}, consumer properties {:?}",
            args.broker.kind,
            args.broker.brokers,
            args.partitions,
            args.workers,
            args.compression,
            args.properties
        ),
    ];
    if !args.skip_throughput {
        let topic = unique("bench-spans");
        args.broker.create_topic(&topic, args.partitions);
        println!("topic {topic}");
        summary.push(String::new());
        summary.push("### Throughput".to_owned());
        summary.push(format!("- {}", publish(&args, &topic, broker_pid)));
        summary.push(format!("- {}", startup(&args, &topic)));
        let mut ratios = Vec::new();
        for round in 1..=args.rounds {
            let bare = bare_consumer(&args, &topic, broker_pid);
            let gb = glassbox_throughput(&args, &topic, broker_pid);
            let ratio = gb.rate / bare.rate;
            ratios.push(ratio);
            summary.push(format!("- round {round}: {}", bare.line));
            summary.push(format!("- round {round}: {}", gb.line));
            summary.push(format!(
                "- round {round}: | bare records/s | glassbox spans/s | ratio (target ≥ 50%) | from the first record: bare, glassbox, ratio | glassbox total incl. tail |\n  |---|---|---|---|---|\n  | {:.0} ({} records, {:.0} MB/s) | {:.0} | **{:.0}%** | {:.0}/s, {:.0}/s, {:.0}% | {:.1} s |",
                bare.rate,
                bare.records,
                bare.mb_s,
                gb.rate,
                ratio * 100.0,
                bare.rate_from_first,
                gb.rate_from_first,
                gb.rate_from_first / bare.rate_from_first * 100.0,
                gb.total_s
            ));
        }
        println!("glassbox / bare: {ratios:?}");
    }
    if !args.skip_latency {
        summary.push(String::new());
        summary.push("### Latency".to_owned());
        for l in latency(&args, broker_pid) {
            summary.push(format!("- {l}"));
        }
    }
    println!("\n{}", summary.join("\n"));
}
