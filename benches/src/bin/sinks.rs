//! Sink throughput: real window records (from the in-process pipeline over generated spans)
//! written with the sinks' writers, in batches, against real servers.
//!
//! ```text
//! STACK_DIR=/tmp/bench-stack bash integration/scripts/stack.sh start
//! . /tmp/bench-stack/env
//! ./target/release/sinks [--spans 420000] [--event-rate 50] [--batch 5000]
//! ```
//!
//! Targets: InfluxDB 1.x (`GLASSBOX_TEST_INFLUX_V1_URL`, v1 API), VictoriaMetrics
//! (`GLASSBOX_TEST_VM_URL`, v2 API) and Redis (`GLASSBOX_TEST_REDIS_URL`); a target whose
//! variable is unset is skipped. Each is written twice: new points, then the same points again
//! (what a replay after a restart does).

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use glassbox::kafka::source::now_ms;
use glassbox::records::metrics::MetricsRecord;
use glassbox::sinks::Keyed;
use glassbox::sinks::influx::{InfluxApi, InfluxConfig, InfluxWriter, lines};
use glassbox::sinks::redis::{RedisConfig, RedisWriter};
use glassbox::sinks::threaded::Writer;
use glassbox_benches::{facts, replay_windows};
use glassbox_operators::{Dimensions, Views};

#[derive(Parser, Debug)]
#[command(about = "glassbox sink throughput against real servers")]
struct Args {
    /// Generated spans (default dimensions: 72 series).
    #[arg(long, default_value_t = 420_000)]
    spans: usize,
    /// Spans per second of event time.
    #[arg(long, default_value_t = 50.0)]
    event_rate: f64,
    /// Records per write.
    #[arg(long, default_value_t = 5_000)]
    batch: usize,
    /// InfluxDB 1.x base URL.
    #[arg(long, env = "GLASSBOX_TEST_INFLUX_V1_URL")]
    influx_v1: Option<String>,
    /// VictoriaMetrics base URL (InfluxDB v2 write API).
    #[arg(long, env = "GLASSBOX_TEST_VM_URL")]
    vm: Option<String>,
    /// Redis URL.
    #[arg(long, env = "GLASSBOX_TEST_REDIS_URL")]
    redis: Option<String>,
}

/// `POST {base}/query?q=CREATE DATABASE {db}` over a bare HTTP/1.1 connection.
fn create_database(base: &str, db: &str) {
    let host = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut s = std::net::TcpStream::connect(&host).expect("connect to influxdb");
    write!(
        s,
        "POST /query?q=CREATE%20DATABASE%20%22{db}%22 HTTP/1.1\r\nHost: {host}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "CREATE DATABASE failed: {answer}"
    );
}

struct Run {
    name: String,
    secs: f64,
}

fn time(name: &str, writer: &mut impl Writer, records: &[Arc<Keyed>], batch: usize) -> Run {
    let t = Instant::now();
    for chunk in records.chunks(batch) {
        writer
            .write(chunk)
            .unwrap_or_else(|e| panic!("{name}: write failed: {}", e.message));
    }
    Run {
        name: name.to_owned(),
        secs: t.elapsed().as_secs_f64(),
    }
}

fn main() {
    let args = Args::parse();
    let views = Views::standard(60_000, 300_000);
    let dims = Dimensions::default();
    let span_s = args.spans as f64 / args.event_rate;
    let start_ms = now_ms() - 3_600_000 - (span_s * 1_000.0) as u64;
    let t = Instant::now();
    let input = facts(args.spans, start_ms, args.event_rate);
    let (n, windows) = replay_windows(input, views.clone(), true);
    let records: Vec<Arc<Keyed>> = windows
        .iter()
        .map(|(key, m)| {
            Arc::new(Keyed {
                key: MetricsRecord::key(key, &dims),
                record: MetricsRecord::new(key, m, &views, &dims),
            })
        })
        .collect();
    let mut body = String::new();
    for r in &records {
        lines(&r.record, "glassbox", &mut body);
    }
    let points = body.lines().count();
    println!(
        "{} spans ({:.0} s of event time at {}/s) → {n} window records ({points} line-protocol \
         points, {:.1} per record, {:.1} MB uncompressed) in {:.1} s",
        args.spans,
        span_s,
        args.event_rate,
        points as f64 / n as f64,
        body.len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let mut runs = Vec::new();
    if let Some(url) = &args.influx_v1 {
        let db = format!("glassbox_bench_{}", now_ms());
        create_database(url, &db);
        let config = InfluxConfig {
            enabled: true,
            api: InfluxApi::V1,
            url: url.clone(),
            database: db,
            batch_records: args.batch,
            ..InfluxConfig::default()
        };
        let mut w = InfluxWriter::new(&config).expect("influx v1 writer");
        runs.push(time(
            "InfluxDB 1.x (v1 API), new points",
            &mut w,
            &records,
            args.batch,
        ));
        runs.push(time(
            "InfluxDB 1.x (v1 API), rewrite",
            &mut w,
            &records,
            args.batch,
        ));
    }
    if let Some(url) = &args.vm {
        let config = InfluxConfig {
            enabled: true,
            api: InfluxApi::V2,
            url: url.clone(),
            org: "bench".into(),
            bucket: format!("glassbox_bench_{}", now_ms()),
            batch_records: args.batch,
            ..InfluxConfig::default()
        };
        let mut w = InfluxWriter::new(&config).expect("influx v2 writer");
        runs.push(time(
            "VictoriaMetrics (v2 API), new points",
            &mut w,
            &records,
            args.batch,
        ));
        runs.push(time(
            "VictoriaMetrics (v2 API), rewrite",
            &mut w,
            &records,
            args.batch,
        ));
    }
    if let Some(url) = &args.redis {
        let config = RedisConfig {
            enabled: true,
            url: url.clone(),
            key_prefix: format!("glassbox-bench-{}", now_ms()),
            ..RedisConfig::default()
        };
        let mut w = RedisWriter::new(&config).expect("redis writer");
        runs.push(time("Redis, new keys", &mut w, &records, args.batch));
        runs.push(time("Redis, rewrite", &mut w, &records, args.batch));
    }
    println!("\n| sink | records | s | records/s | points/s |\n|---|---|---|---|---|");
    for r in &runs {
        let points_s = if r.name.starts_with("Redis") {
            "–".to_owned()
        } else {
            format!("{:.0}", points as f64 / r.secs)
        };
        println!(
            "| {} | {} | {:.3} | {:.0} | {points_s} |",
            r.name,
            records.len(),
            r.secs,
            records.len() as f64 / r.secs
        );
    }
}
