//! In-process throughput: decode + facts + windows + sketches, no broker.
//!
//! `cargo run --release -p glassbox-benches --bin inprocess -- [spans] [workers...]`

use std::sync::Arc;

use glassbox_benches::{facts, in_process, payloads, peak_rss_mib, replay_windows};
use glassbox_operators::Views;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let workers: Vec<usize> = if args.len() > 1 {
        args[1..]
            .iter()
            .map(|a| a.parse().expect("workers"))
            .collect()
    } else {
        vec![1, 2]
    };
    // 1M spans at 1,000/s of event time: ~17 minutes, 60 s windows and a 5 min sliding view.
    let input = Arc::new(payloads(n, 1_764_316_800_000, 1_000.0));
    let bytes: usize = input.iter().map(Vec::len).sum();
    println!("input: {n} spans, {:.1} MB of JSON", bytes as f64 / 1e6);
    let decoder = glassbox_benches::lenient();
    let dims = glassbox_operators::Dimensions::default();
    let t = std::time::Instant::now();
    let calls = input
        .iter()
        .filter_map(|p| {
            glassbox_operators::SpanFacts::from_span(&decoder.decode(p, 0).expect("decodes"), &dims)
        })
        .count();
    println!(
        "decode + facts alone, 1 thread: {:.0} spans/s ({calls} model calls)",
        n as f64 / t.elapsed().as_secs_f64()
    );
    for (w, priced) in workers.iter().flat_map(|w| [(*w, false), (*w, true)]) {
        let (elapsed, windows) =
            in_process(input.clone(), w, Views::standard(60_000, 300_000), priced);
        let what = if priced { "with cost" } else { "without cost" };
        println!(
            "workers={w} {what}: {:.0} spans/s ({:.2} s, {windows} window records = {:.0} records/s), \
             peak RSS {:.0} MiB (the input alone is {:.0} MB)",
            n as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64(),
            windows as f64 / elapsed.as_secs_f64(),
            peak_rss_mib(),
            bytes as f64 / 1e6
        );
    }
    drop(input);
    // Windows + sketches alone, one worker, on pre-decoded facts: at the same event-time rate,
    // and at a fifth of it (five times as many windows per span), to separate the cost per span
    // from the cost per window record.
    for rate in [1_000.0, 200.0] {
        let facts = facts(n, 1_764_316_800_000, rate);
        let calls = facts.len();
        let t = std::time::Instant::now();
        let (records, _) = replay_windows(facts, Views::standard(60_000, 300_000), false);
        let s = t.elapsed().as_secs_f64();
        println!(
            "windows + sketches alone, 1 worker, {rate} spans/s of event time: {:.0} spans/s \
             ({calls} model calls, {records} window records, {s:.2} s)",
            n as f64 / s
        );
    }
}
