//! The metrics path's throughput with the quality path's scoring saturated (issue #6): glassbox
//! in process against a real broker on topics of the same span count, with and without RAG traffic,
//! with quality scoring off and on.
//!
//! ```text
//! STACK_DIR=/tmp/bench-sat bash integration/scripts/stack.sh start kafka
//! . /tmp/bench-sat/env
//! ./target/release/saturation [--spans 1000000] [--rag-share 0.1] [--rounds 2]
//! ```
//!
//! Two fresh 4-partition topics of N spans each, timestamps in the recent past (as e2e's
//! throughput phase): `plain`, load-generator spans only; `rag`, the same generator with a share
//! of the spans replaced by RAG traces (a retrieval span with a query and 3 chunks, and an `llm`
//! span with the question and an answer, texts picked at random from
//! `quality/testdata/faithfulness_cases.jsonl`, the two spans keyed to different partitions).
//! Each round then runs glassbox (`stop_when_idle`, a fresh group) once per configuration:
//!
//! - (a) baseline: quality off, `plain` topic (no RAG traffic);
//! - (b) saturated: quality on (`threads`, `queue_capacity`, `trace_timeout_ms` below), `rag`
//!   topic, so far more answers arrive than the scoring thread can score;
//! - (c) quality on, `plain` topic (the quality path's fixed cost, nothing to score);
//! - (d) quality off, `rag` topic (the bigger RAG records alone, no scoring).
//!
//! Throughput is spans consumed (`counters.consumed`) over the time from `run()` to N, and over
//! the time from the first record to N (the quality configurations load the models first).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use glassbox::config::Config;
use glassbox::kafka::source::now_ms;
use glassbox::run::{Handles, run};
use glassbox_benches::broker::{BrokerArgs, base_config, parse_property, unique};
use glassbox_benches::cpu_secs;
use glassbox_support::loadgen::Generator;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use serde_json::Value;

#[derive(Parser, Debug)]
#[command(
    about = "glassbox metrics throughput with quality scoring saturated, through a real broker"
)]
struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Spans per topic.
    #[arg(long, default_value_t = 1_000_000)]
    spans: u64,
    /// Share of the spans of the `rag` topic that belong to RAG traces (retrieval + llm).
    #[arg(long, default_value_t = 0.1)]
    rag_share: f64,
    /// Partitions of the topics created.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// glassbox timely workers.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Event-time rate of the spans (spans per second of event time).
    #[arg(long, default_value_t = 1_000.0)]
    event_rate: f64,
    /// Producer compression codec.
    #[arg(long, default_value = "lz4")]
    compression: String,
    /// `quality.threads` of the quality configurations.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// `quality.queue_capacity` of the quality configurations.
    #[arg(long, default_value_t = 64)]
    queue_capacity: usize,
    /// `quality.trace_timeout_ms` of the quality configurations.
    #[arg(long, default_value_t = 5_000)]
    trace_timeout_ms: u64,
    /// `quality.feedback_horizon_ms` of the quality configurations (default: glassbox's, 15 min
    /// of event time, i.e. every generation of a 1,000 spans/s run is remembered).
    #[arg(long)]
    feedback_horizon_ms: Option<u64>,
    /// Rounds; each runs every configuration once, in the order a, b, c, d.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Configurations to run, among a, b, c, d.
    #[arg(long, default_value = "abcd")]
    configs: String,
    /// The labelled RAG cases whose questions, chunks and answers are published.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../quality/testdata/faithfulness_cases.jsonl"))]
    cases: String,
    /// Extra librdkafka property for glassbox's clients (`kafka.properties`), `key=value`;
    /// repeatable.
    #[arg(long = "property", value_parser = parse_property)]
    properties: Vec<(String, String)>,
}

/// The 1-, 5- and 15-minute load averages.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// splitmix64: the RAG picks, reproducible without another dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A RAG trace for one answer at `t_ms` ([`glassbox_support::loadgen::rag_trace`]).
fn rag_trace(i: u64, t_ms: u64, case: &Value, tenant: &str) -> [(String, Vec<u8>); 2] {
    let trace = format!("{:016x}{:016x}", 0xfeed_u64, i);
    let retrieval_id = format!("{:016x}", 0xa000_0000_0000_0000 | (2 * i + 1));
    let llm_id = format!("{:016x}", 0xa000_0000_0000_0000 | (2 * i + 2));
    glassbox_support::loadgen::rag_trace(&trace, &retrieval_id, &llm_id, t_ms, case, tenant)
}

fn producer(args: &Args) -> ThreadedProducer<rdkafka::producer::DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", &args.broker.brokers)
        .set("linger.ms", "50")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("compression.type", &args.compression)
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .expect("producer")
}

/// What was published to a topic.
struct Topic {
    name: String,
    spans: u64,
    bytes: usize,
    answers: u64,
}

/// Publishes `args.spans` spans; with `cases`, a share of them are RAG traces.
fn publish(args: &Args, cases: Option<&[Value]>) -> Topic {
    let name = unique(if cases.is_some() {
        "bench-sat-rag"
    } else {
        "bench-sat-plain"
    });
    args.broker.create_topic(&name, args.partitions);
    // Event time: `spans / event_rate` seconds ending an hour ago, well inside the 7-day horizon.
    let span_s = args.spans as f64 / args.event_rate;
    let start_ms = now_ms() - 3_600_000 - (span_s * 1_000.0) as u64;
    let mut g = Generator::new(1, start_ms, args.event_rate);
    let mut rng = Rng(7);
    let p = producer(args);
    let t = Instant::now();
    let (mut sent, mut bytes, mut answers) = (0u64, 0usize, 0u64);
    let mut send = |key: &str, payload: &[u8], sent: &mut u64| {
        let mut record = BaseRecord::to(&name).key(key).payload(payload);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    p.poll(Duration::from_millis(5));
                }
            }
        }
        bytes += payload.len();
        *sent += 1;
    };
    while sent < args.spans {
        let span = g.next_span();
        // A RAG trace replaces two generator spans with probability share / 2 per slot, so
        // that about `rag_share` of the spans are RAG spans.
        if let Some(cases) = cases
            && sent + 2 <= args.spans
            && rng.unit() < args.rag_share / 2.0
        {
            let case = &cases[(rng.next() % cases.len() as u64) as usize];
            let tenant = glassbox_support::loadgen::TENANTS[(rng.next() % 4) as usize];
            for (key, payload) in rag_trace(answers, span.start_ns / 1_000_000, case, tenant) {
                send(&key, &payload, &mut sent);
            }
            answers += 1;
            continue;
        }
        send(&span.trace_id, &span.to_json(), &mut sent);
    }
    p.flush(Duration::from_secs(300)).expect("flush");
    println!(
        "published {sent} spans to {name} ({answers} RAG answers = {:.1}% of the spans, {:.0} MB \
         of JSON, {}) in {:.1} s; load {}",
        200.0 * answers as f64 / sent as f64,
        bytes as f64 / 1e6,
        args.compression,
        t.elapsed().as_secs_f64(),
        load(),
    );
    Topic {
        name,
        spans: sent,
        bytes,
        answers,
    }
}

fn config(args: &Args, topic: &str, quality: bool) -> Config {
    let run_id = unique("bench-sat");
    let mut config = base_config(&args.broker, topic, &run_id, args.workers, &args.properties);
    config.source.stop_when_idle = true;
    config.quality.enabled = quality;
    config.quality.threads = args.threads;
    config.quality.queue_capacity = args.queue_capacity;
    config.quality.trace_timeout_ms = args.trace_timeout_ms;
    if let Some(h) = args.feedback_horizon_ms {
        config.quality.feedback_horizon_ms = h;
        config.quality.feedback_wait_ms = config.quality.feedback_wait_ms.min(h);
    }
    config.quality.flagged_topic = format!("{run_id}-flagged");
    config.quality.quality_topic = format!("{run_id}-quality");
    config
}

/// One glassbox run's figures.
struct Measured {
    rate: f64,
    rate_from_first: f64,
    line: String,
    scored_fraction: f64,
}

fn measure(
    args: &Args,
    label: &str,
    topic: &Topic,
    quality: bool,
    broker: Option<&str>,
) -> Measured {
    let config = config(args, &topic.name, quality);
    let load_before = load();
    let handles = Handles::default();
    let (counters, qc) = (handles.counters.clone(), handles.quality.clone());
    let (own0, broker0) = (cpu_secs("self").unwrap_or(0.0), broker.and_then(cpu_secs));
    let t = Instant::now();
    let pipeline = std::thread::spawn(move || run(&config, handles));
    let (mut first, mut at_n) = (None, None);
    while !pipeline.is_finished() {
        let consumed = counters.consumed.load(Ordering::Relaxed);
        if first.is_none() && consumed > 0 {
            first = Some(t.elapsed());
        }
        if consumed >= topic.spans {
            let cpu = (
                cpu_secs("self").unwrap_or(0.0) - own0,
                broker.and_then(cpu_secs).zip(broker0).map(|(a, b)| a - b),
            );
            at_n = Some((t.elapsed(), cpu, qc.snapshot()));
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let result = pipeline.join().expect("pipeline thread");
    let total = t.elapsed().as_secs_f64();
    if let Err(e) = &result {
        eprintln!("glassbox failed: {e}");
    }
    let load_after = load();
    let snap = counters.snapshot();
    let q = qc.snapshot();
    let (elapsed, (own, broker_cpu), q_at_n) =
        at_n.unwrap_or_else(|| (t.elapsed(), (f64::NAN, None), q.clone()));
    let wall = elapsed.as_secs_f64();
    let consumed = snap["consumed"].min(topic.spans) as f64;
    let rate = consumed / wall;
    let first_s = first.map_or(f64::NAN, |f| f.as_secs_f64());
    let rate_from_first = consumed / (wall - first_s);
    let offered = q["answers_scored"] + q["answers_sampled_out"] + q["answers_failed"];
    let quality_line = if quality {
        format!(
            "; quality at N: scored {} sampled out {} submitted {} ({:.1} scored/s over the \
             consumption); at the end: scored {} sampled out {} failed {} flagged {} = {} of {} \
             answers published reached the scorer, scored fraction {:.4}",
            q_at_n["answers_scored"],
            q_at_n["answers_sampled_out"],
            q_at_n["answers_submitted"],
            q_at_n["answers_scored"] as f64 / (wall - first_s),
            q["answers_scored"],
            q["answers_sampled_out"],
            q["answers_failed"],
            q["answers_flagged"],
            offered,
            topic.answers,
            qc.scored_fraction(),
        )
    } else {
        String::new()
    };
    let line = format!(
        "({label}) {} spans of {} in {wall:.2} s from run() (first record after {first_s:.2} s): \
         {rate:.0} spans/s, {rate_from_first:.0}/s from the first record; CPU {:.2} cores \
         (broker {}); total incl. idle tail {total:.2} s; windows {} late {} deadlettered {}{}; \
         load {load_before} → {load_after}{quality_line}",
        snap["consumed"],
        topic.name,
        own / wall,
        broker_cpu.map_or("n/a".into(), |b| format!("{:.2}", b / wall)),
        snap["windows_emitted"],
        snap["late"],
        snap["deadlettered"],
        if result.is_ok() { "" } else { " (FAILED)" },
    );
    println!("{line}");
    Measured {
        rate,
        rate_from_first,
        line,
        scored_fraction: qc.scored_fraction(),
    }
}

fn main() {
    let args = Args::parse();
    let broker_pid = args.broker.pid();
    let broker = broker_pid.as_deref();
    let cases: Vec<Value> = std::fs::read_to_string(&args.cases)
        .unwrap_or_else(|e| panic!("{}: {e}", args.cases))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON case per line"))
        .collect();
    // Fail before publishing when the models are missing.
    if args.configs.contains(['b', 'c']) {
        Config::default()
            .quality
            .scorer()
            .unwrap_or_else(|e| panic!("{e}"));
    }
    println!(
        "brokers {} ({} partitions), {} workers, quality threads {} queue {} trace timeout {} ms, \
         feedback horizon {:?} ms, {} RAG cases; load {}",
        args.broker.brokers,
        args.partitions,
        args.workers,
        args.threads,
        args.queue_capacity,
        args.trace_timeout_ms,
        args.feedback_horizon_ms,
        cases.len(),
        load()
    );
    let plain = publish(&args, None);
    let rag = publish(&args, Some(&cases));
    println!(
        "record size: plain {:.0} B/span, rag topic {:.0} B/span",
        plain.bytes as f64 / plain.spans as f64,
        rag.bytes as f64 / rag.spans as f64
    );
    let mut results: Vec<(char, usize, Measured)> = Vec::new();
    for round in 1..=args.rounds {
        for c in args.configs.chars() {
            let (topic, quality) = match c {
                'a' => (&plain, false),
                'b' => (&rag, true),
                'c' => (&plain, true),
                'd' => (&rag, false),
                _ => panic!("unknown configuration {c}"),
            };
            let label = format!("{c}, round {round}");
            results.push((c, round, measure(&args, &label, topic, quality, broker)));
        }
    }
    println!("\n## summary\n");
    println!(
        "| config | round | spans/s from run() | vs (a) same round | spans/s from first record | vs (a) | scored fraction |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (c, round, m) in &results {
        let base = results
            .iter()
            .find(|(b, r, _)| *b == 'a' && r == round)
            .map(|(_, _, m)| m);
        let vs =
            |x: f64, y: Option<f64>| y.map_or("–".into(), |y| format!("{:.1}%", 100.0 * x / y));
        println!(
            "| {c} | {round} | {:.0} | {} | {:.0} | {} | {:.4} |",
            m.rate,
            vs(m.rate, base.map(|b| b.rate)),
            m.rate_from_first,
            vs(m.rate_from_first, base.map(|b| b.rate_from_first)),
            m.scored_fraction,
        );
    }
    for (_, _, m) in &results {
        println!("- {}", m.line);
    }
}
