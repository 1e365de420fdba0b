//! In-process throughput: decode + facts + windows + sketches, no broker.
//!
//! `cargo run --release -p glassbox-benches --bin inprocess -- [spans] [workers...]`

use std::sync::Arc;

use glassbox_benches::{in_process, payloads, peak_rss_mib};
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
    let facts = input
        .iter()
        .filter_map(|p| {
            glassbox_operators::SpanFacts::from_span(&decoder.decode(p, 0).expect("decodes"), &dims)
        })
        .count();
    println!(
        "decode + facts alone, 1 thread: {:.0} spans/s ({facts} model calls)",
        n as f64 / t.elapsed().as_secs_f64()
    );
    for w in workers {
        let (elapsed, windows) = in_process(input.clone(), w, Views::standard(60_000, 300_000));
        println!(
            "workers={w}: {:.0} spans/s ({:.2} s, {windows} window records), peak RSS {:.0} MiB",
            n as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64(),
            peak_rss_mib()
        );
    }
}
