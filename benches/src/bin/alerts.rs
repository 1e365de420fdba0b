//! Alert delay through a real broker (Apache Kafka, or tansu): how long after a window could close its alert
//! events are on the alerts topic, with N composite rules under a live producer.
//!
//! ```text
//! STACK_DIR=/tmp/bench-stack bash integration/scripts/stack.sh start kafka
//! . /tmp/bench-stack/env
//! ./target/release/alerts [--rate 50000] [--rules 100] [--secs 120] [--window-ms 10000]
//! ```
//!
//! - glassbox runs in this process (`dataflow::run` on a thread) on a fresh 4-partition input
//!   topic, with a generated rules file of `--rules` composite rules (several groupings, views,
//!   baselines and figures) and `alerts.pending_events = true`, so every transition is an event.
//! - A producer thread publishes spans stamped with the current time at `--rate` spans/s, and
//!   injects incidents that rotate so that rules keep transitioning: in the first half of every
//!   incident cycle one model (rotating) is 4× slower and fails 25% of its calls; in the second
//!   half one tenant (rotating) gets 40% of all traffic and one feature (rotating) produces 5×
//!   longer outputs, 20% of them truncated.
//! - A consumer thread reads the alerts topic from the start and records, per alert event,
//!   `arrival − (window.end_ms + allowed lateness)`: the delay beyond the earliest moment the
//!   window could close (live spans carry the current time, so the watermark passes a window
//!   end `E` at the earliest at wall time `E + lateness`). It also records the record's
//!   CreateTime (set when glassbox's producer accepted it) on the same scale.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use glassbox::kafka::source::now_ms;
use glassbox::run::{Handles, run};
use glassbox::sinks::Sink;
use glassbox_benches::broker::{
    ArrivalSink, BrokerArgs, base_config, bulk_producer, parse_property, send, unique,
};
use glassbox_benches::{cpu_secs, peak_rss_mib, quantile};
use glassbox_operators::alerts::rules::{Rules, format_duration};
use glassbox_operators::{Dimensions, Views};
use glassbox_support::loadgen::{FEATURES, Generator, MODELS, TENANTS};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[derive(Parser, Debug)]
#[command(
    about = "glassbox alert delay through a real broker: window close → alert event on the topic"
)]
struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Spans per second published by the live producer.
    #[arg(long, default_value_t = 50_000.0)]
    rate: f64,
    /// How long the producer runs (s).
    #[arg(long, default_value_t = 120)]
    secs: u64,
    /// Number of generated rules.
    #[arg(long, default_value_t = 100)]
    rules: usize,
    /// Pane width = tumbling window (`metrics.window_ms`).
    #[arg(long, default_value_t = 10_000)]
    window_ms: u64,
    /// Sliding view length (`metrics.sliding_ms`).
    #[arg(long, default_value_t = 60_000)]
    sliding_ms: u64,
    /// `source.allowed_lateness_ms`.
    #[arg(long, default_value_t = 1_000)]
    lateness_ms: u64,
    /// Incident cycle (ms): a model incident in its first half, a tenant/feature incident in
    /// its second half; 0 = 6 panes.
    #[arg(long, default_value_t = 0)]
    cycle_ms: u64,
    /// Windows ending in the first this many ms of the run are not counted (start-up).
    #[arg(long, default_value_t = 20_000)]
    warmup_ms: u64,
    /// Partitions of the input topic.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// glassbox timely workers.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Extra librdkafka property for glassbox (`kafka.properties`) and the alerts consumer,
    /// `key=value`; repeatable. Example: `--property fetch.wait.max.ms=50`.
    #[arg(long = "property", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// Write the generated rules file here and exit.
    #[arg(long)]
    print_rules: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The rules

/// One generated rule, rendered as a TOML `[[rule]]` table.
struct RuleSpec {
    name: String,
    severity: &'static str,
    by: &'static [&'static str],
    filter: Vec<(&'static str, String)>,
    view: String,
    when: String,
    for_: &'static str,
    keep: &'static str,
    min_requests: u32,
    summary: String,
}

impl RuleSpec {
    fn toml(&self) -> String {
        let list = |v: &[&str]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = format!(
            "[[rule]]\nname = {:?}\nseverity = {:?}\nby = [{}]\n",
            self.name,
            self.severity,
            list(self.by)
        );
        if !self.filter.is_empty() {
            let f: Vec<String> = self
                .filter
                .iter()
                .map(|(k, v)| format!("{k} = {v:?}"))
                .collect();
            out += &format!("filter = {{ {} }}\n", f.join(", "));
        }
        out += &format!(
            "view = {:?}\nwhen = {:?}\nfor = {:?}\nkeep_firing_for = {:?}\nmin_requests = {}\n\
             [rule.annotations]\nsummary = {:?}\n\n",
            self.view, self.when, self.for_, self.keep, self.min_requests, self.summary
        );
        out
    }
}

/// `n` composite rules over the views `tumbling` (the pane) and `sliding`, cycling through ten
/// families (latency and errors, regressions against a 5-minute baseline, TTFT, TPOT,
/// traffic, token and cost burn, truncation, global availability) and varying grouping,
/// filter, view, thresholds, `for` and `keep_firing_for`.
fn rules_file(n: usize, views: &Views) -> String {
    let tumbling = views.views[0].name.clone();
    let sliding = views.views.last().expect("a view").name.clone();
    let pane = views.pane_ms;
    let baseline = "5m";
    let baseline_ms = 300_000u64;
    // How many pane-wide (or sliding-wide) windows the baseline spans, for burn-rate rules.
    let per = |view: &str| {
        let len = views
            .views
            .iter()
            .find(|v| v.name == view)
            .expect("view")
            .length_ms;
        baseline_ms as f64 / len as f64
    };
    let model_groupings: [&[&str]; 4] = [
        &["provider", "model"],
        &["model"],
        &["model", "tenant"],
        &["model", "feature"],
    ];
    let fors = ["0s", "10s", "20s"];
    let keeps = ["0s", "10s", "20s"];
    let mut out = String::from(
        "# Generated by benches/src/bin/alerts.rs: composite rules for the alert-delay benchmark.\n\n",
    );
    for i in 0..n {
        let family = i % 10;
        let k = i / 10; // variant within the family
        let view = if k % 2 == 0 { &tumbling } else { &sliding }.clone();
        let for_ = fors[k % 3];
        let keep = keeps[(k / 3) % 3];
        let spec = match family {
            0 => {
                let lat = [5_000, 6_000, 8_000][k % 3];
                let err = [0.08, 0.12, 0.2][(k / 2) % 3];
                RuleSpec {
                    name: format!("slow-and-failing-{i:03}"),
                    severity: "page",
                    by: model_groupings[k % 4],
                    filter: vec![],
                    view,
                    when: format!("p95(latency_ms) > {lat} and error_rate > {err}"),
                    for_,
                    keep,
                    min_requests: 50,
                    summary: "p95 {{p95(latency_ms)}} ms, errors {{error_rate}}".into(),
                }
            }
            1 => {
                let factor = [1.5, 2.0, 1.8][k % 3];
                RuleSpec {
                    name: format!("latency-regression-{i:03}"),
                    severity: "warning",
                    by: model_groupings[(k + 1) % 4],
                    filter: vec![],
                    view,
                    when: format!(
                        "p99(latency_ms) > {factor} * p99(latency_ms, over=\"{baseline}\") \
                         and requests >= 100"
                    ),
                    for_,
                    keep,
                    min_requests: 100,
                    summary: format!(
                        "p99 {{{{p99(latency_ms)}}}} ms vs {{{{p99(latency_ms, over=\"{baseline}\")}}}} ms"
                    ),
                }
            }
            2 => {
                let err = [0.1, 0.15, 0.08][k % 3];
                let filter = match k % 3 {
                    0 => vec![],
                    1 => vec![("tenant", "!=umbrella".to_owned())],
                    _ => vec![("feature", "=~support-chat|search".to_owned())],
                };
                RuleSpec {
                    name: format!("error-spike-{i:03}"),
                    severity: "page",
                    by: model_groupings[(k + 2) % 4],
                    filter,
                    view,
                    when: format!(
                        "error_rate > {err} and error_rate > 3 * error_rate(over=\"{baseline}\")"
                    ),
                    for_,
                    keep,
                    min_requests: 50,
                    summary: "errors {{error_rate}} over {{requests}} calls".into(),
                }
            }
            3 => {
                let ttft = [1_500, 2_000, 2_500][k % 3];
                RuleSpec {
                    name: format!("ttft-degraded-{i:03}"),
                    severity: "warning",
                    by: [&["model"][..], &["model", "feature"]][k % 2],
                    filter: vec![],
                    view,
                    when: format!("p90(ttft_ms) > {ttft} and rpm > 100"),
                    for_,
                    keep,
                    min_requests: 30,
                    summary: "p90 TTFT {{p90(ttft_ms)}} ms at {{rpm}} rpm".into(),
                }
            }
            4 => {
                let factor = [1.5, 1.8, 1.6][k % 3];
                RuleSpec {
                    name: format!("tpot-regression-{i:03}"),
                    severity: "warning",
                    by: [&["provider", "model"][..], &["model", "tenant"]][k % 2],
                    filter: vec![],
                    view,
                    when: format!(
                        "p90(tpot_ms) > {factor} * p90(tpot_ms, over=\"{baseline}\") \
                         and avg(latency_ms) > 1500"
                    ),
                    for_,
                    keep,
                    min_requests: 50,
                    summary: "p90 TPOT {{p90(tpot_ms)}} ms".into(),
                }
            }
            5 => {
                let factor = [1.5, 1.8, 1.6][k % 3];
                let filter = if k % 3 == 2 {
                    vec![("feature", "!=summarize".to_owned())]
                } else {
                    vec![]
                };
                RuleSpec {
                    name: format!("traffic-spike-{i:03}"),
                    severity: "info",
                    by: [&["tenant"][..], &["tenant", "feature"]][k % 2],
                    filter,
                    view,
                    when: format!(
                        "rpm > {factor} * rpm(over=\"{baseline}\") and rpm(over=\"{baseline}\") > 0"
                    ),
                    for_,
                    keep,
                    min_requests: 100,
                    summary: "{{rpm}} rpm, usual {{rpm(over=\"5m\")}}".into(),
                }
            }
            6 => {
                let factor = [2.0, 1.6, 2.5][k % 3];
                let share = per(&view);
                RuleSpec {
                    name: format!("cost-burn-{i:03}"),
                    severity: "warning",
                    by: [
                        &["feature"][..],
                        &["tenant", "feature"],
                        &["feature", "model"],
                    ][k % 3],
                    filter: vec![],
                    view,
                    when: format!(
                        "cost_usd > {factor} * cost_usd(over=\"{baseline}\") / {share} \
                         and tpm > 1.3 * tpm(over=\"{baseline}\")"
                    ),
                    for_,
                    keep,
                    min_requests: 50,
                    summary: "${{cost_usd}} in the window, {{tpm}} tokens/min".into(),
                }
            }
            7 => {
                let trunc = [0.08, 0.1, 0.06][k % 3];
                RuleSpec {
                    name: format!("truncation-{i:03}"),
                    severity: "info",
                    by: [
                        &["feature"][..],
                        &["model", "feature"],
                        &["tenant", "feature"],
                    ][k % 3],
                    filter: vec![],
                    view,
                    when: format!("truncation_rate > {trunc} and tpm > 1000"),
                    for_,
                    keep,
                    min_requests: 50,
                    summary: "truncations {{truncation_rate}}".into(),
                }
            }
            8 => {
                let (err, p99) = [(0.06, 9_000), (0.055, 12_000), (0.065, 10_000)][k % 3];
                let filter = match k % 3 {
                    0 => vec![],
                    1 => vec![("tenant", "=~acme|globex".to_owned())],
                    _ => vec![("model", "!~mistral.*".to_owned())],
                };
                RuleSpec {
                    name: format!("availability-{i:03}"),
                    severity: "page",
                    by: [&[][..], &["provider"], &["tenant"]][k % 3],
                    filter,
                    view,
                    when: format!(
                        "(error_rate > {err} or p99(latency_ms) > {p99}) and not (rpm < 10)"
                    ),
                    for_,
                    keep,
                    min_requests: 200,
                    summary: "errors {{error_rate}}, p99 {{p99(latency_ms)}} ms".into(),
                }
            }
            _ => {
                let (lat, ttft) = [(4_000, 1_200), (5_000, 1_500), (3_500, 1_000)][k % 3];
                RuleSpec {
                    name: format!("slow-streaming-{i:03}"),
                    severity: "warning",
                    by: model_groupings[(k + 3) % 4],
                    filter: vec![("feature", "support-chat".to_owned())],
                    view,
                    when: format!(
                        "p50(latency_ms) > {lat} and (p95(ttft_ms) > {ttft} or error_rate > 0.1)"
                    ),
                    for_,
                    keep,
                    min_requests: 20,
                    summary: "p50 {{p50(latency_ms)}} ms, p95 TTFT {{p95(ttft_ms)}} ms".into(),
                }
            }
        };
        out += &spec.toml();
    }
    // Every baseline must be a multiple of the pane width.
    assert!(
        baseline_ms.is_multiple_of(pane),
        "the 5 min baseline is not a multiple of the pane {}",
        format_duration(pane)
    );
    out
}

// ---------------------------------------------------------------------------------------------
// The run

/// One alert event as read from the topic.
struct Seen {
    kind: String,
    rule: String,
    end_ms: u64,
    created_ms: Option<u64>,
    arrived_ms: u64,
}

fn stats(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        quantile(values, 0.5),
        quantile(values, 0.9),
        quantile(values, 0.99),
        values.last().copied().unwrap_or(0.0)
    )
}

fn cores(own: f64, broker: Option<f64>, wall: f64) -> String {
    format!(
        "CPU: this process {:.2} cores, broker {} cores",
        own / wall,
        broker.map_or("n/a".to_owned(), |b| format!("{:.2}", b / wall))
    )
}

fn main() {
    let args = Args::parse();
    let views = Views::standard(args.window_ms, args.sliding_ms);
    let rules_text = rules_file(args.rules, &views);
    let parsed = Rules::parse(&rules_text, &Dimensions::default(), &views)
        .unwrap_or_else(|e| panic!("generated rules do not parse: {e}"));
    if let Some(path) = &args.print_rules {
        std::fs::write(path, &rules_text).expect("write rules");
        println!("{} rules written to {path}", parsed.rules.len());
        return;
    }
    let broker_pid = args.broker.pid();
    let run_id = unique("bench-alerts");
    let rules_path = std::env::temp_dir().join(format!("{run_id}.toml"));
    std::fs::write(&rules_path, &rules_text).expect("write rules");
    let topic = format!("{run_id}-in");
    args.broker.create_topic(&topic, args.partitions);

    let mut config = base_config(
        &args.broker,
        &topic,
        &run_id,
        args.workers,
        &args.properties,
    );
    config.kafka.alerts_topic = format!("{run_id}-alerts");
    config.source.allowed_lateness_ms = args.lateness_ms;
    config.metrics.window_ms = args.window_ms;
    config.metrics.sliding_ms = args.sliding_ms;
    config.alerts.rules = rules_path.display().to_string();
    config.alerts.pending_events = true;
    let alerts_topic = config.kafka.alerts_topic.clone();
    let output_partitions = config.kafka.output_partitions;

    let window_samples: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let sink_samples = window_samples.clone();
    let handles = Handles {
        extra_sinks: Some(Arc::new(move |_| {
            Box::new(ArrivalSink::new(sink_samples.clone())) as Box<dyn Sink>
        })),
        ..Handles::default()
    };
    let (shutdown, counters) = (handles.shutdown.clone(), handles.counters.clone());
    let cpu_own0 = cpu_secs("self").unwrap_or(0.0);
    let cpu_broker0 = broker_pid.as_deref().and_then(cpu_secs);
    let t0 = Instant::now();
    let pipeline = {
        let config = config.clone();
        std::thread::spawn(move || run(&config, handles))
    };

    // The alerts consumer: from the beginning of every partition, once the topic exists.
    let stop_consumer = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let consumer_thread = {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &args.broker.brokers)
            .set("group.id", unique("bench-alerts-reader"))
            .set("enable.auto.commit", "false");
        for (k, v) in &args.properties {
            c.set(k, v);
        }
        let consumer: BaseConsumer = c.create().expect("alerts consumer");
        let (stop, seen, alerts_topic) =
            (stop_consumer.clone(), seen.clone(), alerts_topic.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let ok = consumer
                    .fetch_metadata(Some(&alerts_topic), Duration::from_secs(5))
                    .ok()
                    .is_some_and(|md| {
                        md.topics().iter().any(|t| {
                            t.name() == alerts_topic
                                && t.error().is_none()
                                && t.partitions().len() == output_partitions as usize
                        })
                    });
                if ok {
                    break;
                }
                assert!(Instant::now() < deadline, "the alerts topic never appeared");
                std::thread::sleep(Duration::from_millis(100));
            }
            let mut tpl = TopicPartitionList::new();
            for p in 0..output_partitions {
                tpl.add_partition_offset(&alerts_topic, p, Offset::Beginning)
                    .expect("partition");
            }
            consumer.assign(&tpl).expect("assign");
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(50)) {
                    Some(Ok(m)) => {
                        let arrived_ms = now_ms();
                        let v: serde_json::Value =
                            serde_json::from_slice(m.payload().unwrap_or_default())
                                .expect("alert events are JSON");
                        seen.lock().expect("seen lock").push(Seen {
                            kind: v["kind"].as_str().unwrap_or("?").to_owned(),
                            rule: v["rule"].as_str().unwrap_or("?").to_owned(),
                            end_ms: v["window"]["end_ms"].as_u64().expect("window.end_ms"),
                            created_ms: m.timestamp().to_millis().map(|t| t as u64),
                            arrived_ms,
                        });
                    }
                    Some(Err(e)) => eprintln!("alerts consumer: {e}"),
                    None => {}
                }
            }
        })
    };

    // The producer, at a fixed rate of spans stamped with the current time, with incidents.
    let producer = bulk_producer(&args.broker.brokers, 5, "lz4");
    let cycle_ms = if args.cycle_ms == 0 {
        6 * args.window_ms
    } else {
        args.cycle_ms
    };
    let mut g = Generator::new(7, now_ms(), args.rate);
    let first_ms = now_ms();
    let started = Instant::now();
    let mut sent = 0u64;
    let mut behind_max = 0u64;
    let mut i = 0u64;
    while !pipeline.is_finished() {
        let elapsed = started.elapsed();
        if elapsed >= Duration::from_secs(args.secs) {
            break;
        }
        let due = (elapsed.as_secs_f64() * args.rate) as u64;
        behind_max = behind_max.max(due.saturating_sub(sent));
        while sent < due {
            let mut span = g.next_span();
            let now = now_ms();
            span.start_ns = now * 1_000_000;
            let (cycle, phase) = (now / cycle_ms, now % cycle_ms);
            i += 1;
            if phase < cycle_ms / 2 {
                // A model incident: slow and failing.
                if span.model == MODELS[(cycle % MODELS.len() as u64) as usize].1 {
                    span.duration_ns *= 4;
                    span.ttft_ns = span.ttft_ns.map(|t| t * 4);
                    if i.is_multiple_of(4) {
                        span.error_type = Some("server_error");
                        span.finish_reason = "stop";
                    }
                }
            } else {
                // A tenant's traffic spike and a feature's long, often truncated outputs.
                if i % 10 < 4 {
                    span.tenant = TENANTS[(cycle % TENANTS.len() as u64) as usize];
                }
                if span.feature == FEATURES[(cycle % FEATURES.len() as u64) as usize] {
                    span.output_tokens *= 5;
                    if span.error_type.is_none() && i.is_multiple_of(5) {
                        span.finish_reason = "length";
                    }
                }
            }
            let payload = span.to_json();
            send(&producer, &topic, &span.trace_id, &payload);
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let stop_ms = now_ms();
    let send_s = started.elapsed().as_secs_f64();
    let consumed_at_stop = counters.consumed.load(Ordering::Relaxed);
    producer.flush(Duration::from_secs(30)).expect("flush");
    // Let the last windows that live data can close be evaluated and delivered.
    std::thread::sleep(Duration::from_secs(4));
    let wall = t0.elapsed().as_secs_f64();
    let cpu_own = cpu_secs("self").unwrap_or(0.0) - cpu_own0;
    let cpu_broker = broker_pid
        .as_deref()
        .and_then(cpu_secs)
        .zip(cpu_broker0)
        .map(|(a, b)| a - b);
    shutdown.store(true, Ordering::Relaxed);
    let result = pipeline.join().expect("pipeline thread");
    if let Err(e) = &result {
        eprintln!("glassbox failed: {e}");
    }
    stop_consumer.store(true, Ordering::Relaxed);
    consumer_thread.join().expect("consumer thread");
    let snap = counters.snapshot();
    let _ = std::fs::remove_file(&rules_path);

    let all = std::mem::take(&mut *seen.lock().expect("seen lock"));
    let l = args.lateness_ms;
    let kept: Vec<&Seen> = all
        .iter()
        .filter(|s| s.end_ms >= first_ms + args.warmup_ms && s.end_ms + l + 1_000 <= stop_ms)
        .collect();
    let mut arrival: Vec<f64> = kept
        .iter()
        .map(|s| s.arrived_ms as f64 - (s.end_ms + l) as f64)
        .collect();
    let mut created: Vec<f64> = kept
        .iter()
        .filter_map(|s| s.created_ms.map(|c| c as f64 - (s.end_ms + l) as f64))
        .collect();
    let mut last_per_window: BTreeMap<u64, u64> = BTreeMap::new();
    for s in &kept {
        let e = last_per_window.entry(s.end_ms).or_default();
        *e = (*e).max(s.arrived_ms);
    }
    let mut per_window: Vec<f64> = last_per_window
        .iter()
        .map(|(end, at)| *at as f64 - (end + l) as f64)
        .collect();
    let mut window_delay: Vec<f64> = window_samples
        .lock()
        .expect("samples lock")
        .iter()
        .filter(|(end, _)| *end >= first_ms + args.warmup_ms && end + l + 1_000 <= stop_ms)
        .map(|(end, at)| *at as f64 - (end + l) as f64)
        .collect();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rules_seen: std::collections::BTreeSet<&str> = Default::default();
    for s in &kept {
        *kinds.entry(&s.kind).or_default() += 1;
        rules_seen.insert(&s.rule);
    }
    let families: BTreeMap<&str, usize> = rules_seen.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.rsplit_once('-').map_or(*r, |(f, _)| f))
            .or_default() += 1;
        m
    });

    let lines = [
        format!(
            "setup: {} rules ({} history), views {} ({} workers, lateness {} ms, incident cycle {} s), \
             {} input partitions, consumer properties {:?}",
            parsed.rules.len(),
            format_duration(parsed.history_ms()),
            views
                .views
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(" + "),
            args.workers,
            l,
            cycle_ms / 1_000,
            args.partitions,
            args.properties
        ),
        format!(
            "producer: {sent} spans in {send_s:.1} s = {:.0} spans/s (target {:.0}), {} delivered, \
             {} failed, at most {behind_max} spans behind schedule",
            sent as f64 / send_s,
            args.rate,
            producer.context().ok.load(Ordering::Relaxed),
            producer.context().failed.load(Ordering::Relaxed),
        ),
        format!(
            "glassbox: consumed {} spans ({consumed_at_stop} when the producer stopped = {:.0}/s over \
             the producer's run), late {}, deadlettered {}, window records {}, backpressure \
             pauses {}; {} over {wall:.0} s; peak RSS {:.0} MiB{}",
            snap["consumed"],
            consumed_at_stop as f64 / send_s,
            snap["late"],
            snap["deadlettered"],
            snap["windows_emitted"],
            snap["backpressure_pauses"],
            cores(cpu_own, cpu_broker, wall),
            peak_rss_mib(),
            if result.is_ok() { "" } else { " (FAILED)" },
        ),
        format!(
            "alert events: {} read, {} counted (windows ending {}–{} s into the run): {:?}; \
             {} of {} rules transitioned, by family {:?}",
            all.len(),
            kept.len(),
            args.warmup_ms / 1_000,
            (stop_ms - first_ms).saturating_sub(l + 1_000) / 1_000,
            kinds,
            rules_seen.len(),
            parsed.rules.len(),
            families
        ),
        format!(
            "delay per event, arrival at a consumer − (window end + {l} ms lateness): {}",
            stats(&mut arrival)
        ),
        format!(
            "delay per event, record CreateTime (glassbox's producer) − (window end + lateness): {}",
            stats(&mut created)
        ),
        format!(
            "for comparison, tumbling window records ({}) reaching glassbox's sinks − (end + lateness): {}",
            window_delay.len(),
            stats(&mut window_delay)
        ),
        format!(
            "delay per window end ({} evaluations), last event's arrival − (end + lateness): {}",
            per_window.len(),
            stats(&mut per_window)
        ),
    ];
    println!("## glassbox alert delay\n");
    for line in &lines {
        println!("- {line}");
    }
}
