//! The cost of going distributed (issue #15): the same input read by a timely cluster of 1, 2
//! and 3 `glassbox` processes, through a real broker.
//!
//! ```text
//! STACK_DIR=/tmp/bench-stack bash integration/scripts/stack.sh start kafka
//! . /tmp/bench-stack/env
//! cargo build --release -p glassbox -p glassbox-benches
//! ./target/release/cluster [--spans 1000000] [--processes 1,2,3] [--workers 1]
//! ```
//!
//! N spans (timestamps of the last hours, keyed by trace id) are published once to a fresh
//! 12-partition topic. Then, for each cluster size, that many processes of the release
//! `glassbox` binary (one worker each by default, loopback ports, a consumer group of their
//! own, the Kafka metrics topic as the only sink, `stop_when_idle`) read the whole topic and
//! stop. Measured per size: wall time from the first spawn to the last exit, the processes'
//! CPU time (user + system, read from each one's `/proc/<pid>/stat` once it has exited),
//! and the bytes timely exchanged between them (TCP `bytes_acked` + `bytes_received` of the
//! listening end of every connection on the cluster's ports, from `ss -ti`, sampled every
//! 200 ms until the processes exit). The 1-process run is the reference of the ratios.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use glassbox::kafka::source::now_ms;
use glassbox_benches::broker::{BrokerArgs, bulk_producer, send, unique};
use glassbox_benches::cpu_secs;
use glassbox_support::loadgen::Generator;
use rdkafka::producer::Producer;

#[derive(Parser, Debug)]
#[command(about = "glassbox as a timely cluster of 1, 2, 3 processes: throughput and exchange")]
struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Spans published.
    #[arg(long, default_value_t = 1_000_000)]
    spans: u64,
    /// Partitions of the input topic.
    #[arg(long, default_value_t = 12)]
    partitions: u32,
    /// Cluster sizes, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    processes: Vec<usize>,
    /// Timely workers per process.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// The glassbox binary.
    #[arg(long, default_value = "target/release/glassbox")]
    glassbox: String,
    /// Event-time rate of the spans (spans per second of event time).
    #[arg(long, default_value_t = 1_000.0)]
    event_rate: f64,
    /// Distinct tenants: each span's tenant is replaced by one of `tenant-0` … (0: the
    /// generator's 4). With the generator's 6 models and 3 features, 1,000 tenants make up to
    /// 18,000 series of the finest view.
    #[arg(long, default_value_t = 1_000)]
    tenants: usize,
}

fn publish(args: &Args, topic: &str) {
    let span_s = args.spans as f64 / args.event_rate;
    let start_ms = now_ms() - 3_600_000 - (span_s * 1_000.0) as u64;
    let mut g = Generator::new(1, start_ms, args.event_rate);
    // Names that live as long as the generator's own (`&'static str`): leaked once.
    let tenants: Vec<&'static str> = (0..args.tenants)
        .map(|i| &*Box::leak(format!("tenant-{i}").into_boxed_str()))
        .collect();
    let p = bulk_producer(&args.broker.brokers, 50, "lz4");
    let t = Instant::now();
    let mut series = std::collections::HashSet::new();
    for i in 0..args.spans {
        let mut span = g.next_span();
        if !tenants.is_empty() {
            // Spread by a multiplicative hash of the index, not in turn.
            span.tenant =
                tenants[(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize % tenants.len()];
        }
        series.insert((span.model, span.tenant, span.feature));
        let payload = span.to_json();
        send(&p, topic, &span.trace_id, &payload);
    }
    p.flush(Duration::from_secs(300)).expect("flush");
    let failed = p.context().failed.load(Ordering::Relaxed);
    assert_eq!(failed, 0, "every span delivered");
    println!(
        "published {} spans to {topic} ({} partitions, {} (model, tenant, feature) series) in \
         {:.1} s",
        args.spans,
        args.partitions,
        series.len(),
        t.elapsed().as_secs_f64()
    );
}

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The state letter of a process in its `/proc` stat (`Z`: exited, not yet reaped; a zombie
/// keeps its CPU times).
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.get(stat.rfind(')')? + 2..)?.chars().next()
}

/// Bytes exchanged on the connections whose local end listens on one of `ports`, per
/// connection (both directions), as `ss` reports them now.
fn exchanged(ports: &[u16], seen: &mut BTreeMap<String, u64>) {
    let Ok(out) = Command::new("ss")
        .args(["-tinH", "state", "established"])
        .output()
    else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut current: Option<String> = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields
            .get(2)
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse::<u16>().ok());
        if let Some(port) = local_port
            && fields.len() >= 4
            && !line.contains("bytes_")
        {
            current = ports
                .contains(&port)
                .then(|| format!("{} {}", fields[2], fields[3]));
            continue;
        }
        let Some(key) = current.take() else { continue };
        let get = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let bytes = get("bytes_acked:") + get("bytes_received:");
        let entry = seen.entry(key).or_default();
        *entry = (*entry).max(bytes);
    }
}

struct Measured {
    processes: usize,
    wall: f64,
    cpu: f64,
    exchanged: u64,
    consumed: u64,
}

fn run_cluster(args: &Args, topic: &str, n: usize) -> Measured {
    let run_id = unique(&format!("bench-cluster{n}"));
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let hosts = format!(
        "[{}]",
        ports
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let quirks = glassbox_support::broker::BrokerQuirks::of(&args.broker.kind);
    let dir = std::env::temp_dir();
    let start = Instant::now();
    let mut children: Vec<(Child, std::path::PathBuf)> = (0..n)
        .map(|process| {
            let log = dir.join(format!("{run_id}-p{process}.log"));
            let mut c = Command::new(&args.glassbox);
            c.arg("run")
                .env("GLASSBOX_KAFKA__BROKERS", &args.broker.brokers)
                .env("GLASSBOX_KAFKA__INPUT_TOPIC", topic)
                .env("GLASSBOX_KAFKA__GROUP_ID", format!("{run_id}-group"))
                .env("GLASSBOX_KAFKA__METRICS_TOPIC", format!("{run_id}-metrics"))
                .env(
                    "GLASSBOX_KAFKA__DEADLETTER_TOPIC",
                    format!("{run_id}-deadletter"),
                )
                .env("GLASSBOX_KAFKA__ALERTS_TOPIC", format!("{run_id}-alerts"))
                .env("GLASSBOX_KAFKA__STATE_TOPIC", format!("{run_id}-state"))
                .env("GLASSBOX_KAFKA__FRONTIER_STORE", quirks.frontier_store)
                .env(
                    "GLASSBOX_SOURCE__RESUME_REWIND_RECORDS",
                    quirks.resume_rewind_records.to_string(),
                )
                .env("GLASSBOX_SOURCE__WORKERS", args.workers.to_string())
                .env("GLASSBOX_SOURCE__IDLE_TIMEOUT_MS", "2000")
                .env("GLASSBOX_SOURCE__STOP_WHEN_IDLE", "true")
                .env("GLASSBOX_TELEMETRY__LOG_INTERVAL_MS", "0")
                .env("GLASSBOX_CLUSTER__PROCESS", process.to_string())
                .env("GLASSBOX_LOG", "info,librdkafka=warn")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
            if n > 1 {
                c.env("GLASSBOX_CLUSTER__HOSTS", &hosts);
            }
            (c.spawn().expect("start glassbox"), log)
        })
        .collect();
    let mut cpu = vec![None; n];
    let mut seen = BTreeMap::new();
    let mut last_sample = Instant::now() - Duration::from_secs(1);
    let mut wall = 0.0;
    while cpu.iter().any(Option::is_none) {
        for (i, (child, _)) in children.iter_mut().enumerate() {
            if cpu[i].is_none() && state(child.id()) == Some('Z') {
                cpu[i] = cpu_secs(&child.id().to_string());
                let status = child.wait().unwrap();
                assert!(status.success(), "process {i} failed: {status}");
                wall = start.elapsed().as_secs_f64();
            }
        }
        if n > 1 && last_sample.elapsed() >= Duration::from_millis(200) {
            exchanged(&ports, &mut seen);
            last_sample = Instant::now();
        }
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "the cluster did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let consumed = children
        .iter()
        .map(|(_, log)| {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let line = text
                .lines()
                .rev()
                .find(|l| l.contains("pipeline stopped"))
                .unwrap_or("");
            let at = line.find("\"consumed\": ").map_or(line.len(), |i| i + 12);
            line[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u64>()
                .unwrap_or(0)
        })
        .sum();
    children.clear();
    Measured {
        processes: n,
        wall,
        cpu: cpu.into_iter().map(|c| c.unwrap_or(0.0)).sum(),
        exchanged: seen.values().sum(),
        consumed,
    }
}

fn main() {
    let args = Args::parse();
    let topic = unique("bench-cluster-in");
    args.broker.create_topic(&topic, args.partitions);
    publish(&args, &topic);
    let mut results = Vec::new();
    for &n in &args.processes {
        let m = run_cluster(&args, &topic, n);
        assert_eq!(m.consumed, args.spans, "every span read exactly once");
        println!(
            "{n} process(es) x {} worker(s): wall {:.1} s, CPU {:.1} s, exchanged {:.1} MB",
            args.workers,
            m.wall,
            m.cpu,
            m.exchanged as f64 / 1e6
        );
        results.push(m);
    }
    let spans = args.spans as f64;
    let reference = results.first().map(|m| (m.wall, m.cpu));
    println!();
    println!(
        "| processes × workers | wall s (incl. 2 s idle timeout) | spans/s | CPU-µs/span | exchange bytes/span | wall vs first | CPU vs first |"
    );
    println!("|---|---|---|---|---|---|---|");
    for m in &results {
        let (w0, c0) = reference.unwrap();
        println!(
            "| {} × {} | {:.1} | {:.0} | {:.2} | {:.0} | {:.2} | {:.2} |",
            m.processes,
            args.workers,
            m.wall,
            spans / m.wall,
            m.cpu / spans * 1e6,
            m.exchanged as f64 / spans,
            m.wall / w0,
            m.cpu / c0
        );
    }
}
