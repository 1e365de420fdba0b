//! Speed of the quality scorer, one thread:
//!
//! ```text
//! bash integration/scripts/fetch-models.sh
//! cargo run --release -p glassbox-quality --bin quality-bench [-- FILE.jsonl]
//! ```
//!
//! Prints, for all-MiniLM-L6-v2 int8 and multilingual-e5-small: milliseconds per embedding of
//! a short (~9 token) and a ~100-token text, batched throughput where the model allows it, and
//! answers scored per second over a labelled JSONL file (default
//! `quality/testdata/faithfulness_cases.jsonl`) with a cold chunk cache (emptied before each
//! answer) and a warm one (every chunk already embedded). `quality/benches/ort_reference.py` measures
//! onnxruntime on the same texts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use glassbox_quality::eval::Case;
use glassbox_quality::{Embedder, EmbedderConfig, Lang, ScoreConfig, Scorer, models_dir};

/// The texts `quality/benches/ort_reference.py` uses too.
const SHORT: &str = "The checkout service is slow today.";
const LONG: &str = "Our checkout service started returning errors shortly after the deploy on \
    Tuesday morning. The p99 latency rose from 180 ms to 1.4 seconds, and the error rate of the \
    payment endpoint went from 0.1% to 3%. The on-call engineer rolled back the release, cleared \
    the cache of the pricing service and opened an incident. Customers who paid during the \
    outage may see a duplicate charge that is refunded automatically within five business days.";

fn time_per_call(mut f: impl FnMut(), min_time: Duration) -> (Duration, usize) {
    f(); // warm-up
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < min_time || n < 5 {
        f();
        n += 1;
    }
    (start.elapsed() / n as u32, n)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn load(config: EmbedderConfig) -> Arc<Embedder> {
    let t = Instant::now();
    let e = Embedder::new(config.clone()).unwrap_or_else(|e| {
        eprintln!("quality-bench: {e}");
        std::process::exit(2)
    });
    println!(
        "loaded {} in {:.0} ms",
        config.model.display(),
        ms(t.elapsed())
    );
    Arc::new(e)
}

fn main() {
    let file = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/faithfulness_cases.jsonl"
        )
        .to_string()
    });
    let dir = models_dir();
    let minilm = load(EmbedderConfig::minilm(&dir));
    let e5 = load(EmbedderConfig::e5_small(&dir));

    println!("\n## embeddings, one thread");
    println!("| model | text | tokens | ms/embedding | embeddings/s |");
    println!("|---|---|---|---|---|");
    for (name, e) in [
        ("all-MiniLM-L6-v2 int8", &minilm),
        ("multilingual-e5-small", &e5),
    ] {
        for (label, text) in [("short", SHORT), ("long", LONG)] {
            let tokens = e.token_count(text).unwrap_or(0);
            let (per, _) = time_per_call(
                || {
                    e.embed(text).unwrap();
                },
                Duration::from_secs(3),
            );
            println!(
                "| {name} | {label} | {tokens} | {:.1} | {:.0} |",
                ms(per),
                1.0 / per.as_secs_f64()
            );
        }
    }
    // Batching (MiniLM only: e5's graph fixes batch = 1).
    let mut batched = EmbedderConfig::minilm(&dir);
    batched.batch_size = 8;
    let batched = load(batched);
    let texts = [SHORT; 8];
    let (per, _) = time_per_call(
        || {
            batched.embed_batch(&texts).unwrap();
        },
        Duration::from_secs(3),
    );
    println!(
        "| all-MiniLM-L6-v2 int8, batch 8 | short | {} | {:.1} per text | {:.0} |",
        minilm.token_count(SHORT).unwrap_or(0),
        ms(per) / 8.0,
        8.0 / per.as_secs_f64()
    );

    let lines = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        eprintln!("quality-bench: {file}: {e}");
        std::process::exit(2)
    });
    let cases: Vec<Case> = lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("case line"))
        .collect();
    let scorer = Scorer::new(minilm.clone(), ScoreConfig::default())
        .expect("default config")
        .with_chinese(e5.clone());
    println!("\n## answers scored, one thread ({file})");
    println!("| answers | model | n | chunk cache | ms/answer | answers/s |");
    println!("|---|---|---|---|---|---|");
    for lang in [Lang::En, Lang::Zh] {
        let subset: Vec<&Case> = cases
            .iter()
            .filter(|c| Lang::detect(&c.answer) == lang)
            .collect();
        if subset.is_empty() {
            continue;
        }
        let embedder = scorer.embedder(lang);
        let model = if Arc::ptr_eq(embedder, &e5) {
            "e5-small"
        } else {
            "MiniLM"
        };
        for cold in [true, false] {
            if !cold {
                // Fill the cache with every chunk first (untimed).
                for c in &subset {
                    scorer
                        .score(&c.question, &c.chunks, &c.answer)
                        .expect("score");
                }
            }
            let start = Instant::now();
            for c in &subset {
                if cold {
                    embedder.clear_cache();
                }
                scorer
                    .score(&c.question, &c.chunks, &c.answer)
                    .expect("score");
            }
            let per = start.elapsed() / subset.len() as u32;
            println!(
                "| {lang} | {model} | {} | {} | {:.1} | {:.1} |",
                subset.len(),
                if cold { "cold" } else { "warm" },
                ms(per),
                1.0 / per.as_secs_f64()
            );
        }
    }
}
