//! The `glassbox` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::config::Config;
use crate::demo::{DemoOptions, demo};
use crate::run::{Handles, run};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "glassbox",
    version,
    about = "Real-time metrics for LLM applications, from spans on Kafka"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline.
    Run {
        /// TOML configuration file; `GLASSBOX_SECTION__FIELD` env vars override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Everything in one process, no servers: mock Kafka, load generator, pipeline, live table.
    Demo {
        /// Spans per second.
        #[arg(long, default_value_t = 2_000.0)]
        rate: f64,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        duration_secs: Option<u64>,
        /// Tumbling window, ms.
        #[arg(long, default_value_t = 10_000)]
        window_ms: u64,
        /// Sliding view, ms.
        #[arg(long, default_value_t = 60_000)]
        sliding_ms: u64,
    },
    /// Publish synthetic spans to a real broker.
    Loadgen {
        /// Bootstrap servers.
        #[arg(long)]
        brokers: String,
        /// Topic.
        #[arg(long, default_value = "llm.spans")]
        topic: String,
        /// Spans per second (real time).
        #[arg(long, default_value_t = 1_000.0)]
        rate: f64,
        /// Stop after this many spans (default: never).
        #[arg(long)]
        count: Option<u64>,
        /// RNG seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Record encoding: `json` (native) or `avro` (Confluent-framed, needs `--registry`).
        #[arg(long, default_value = "json", value_parser = ["json", "avro"])]
        format: String,
        /// Schema registry URL for `--format avro` (the Confluent-compatible API); basic auth
        /// from GLASSBOX_REGISTRY__USERNAME / GLASSBOX_REGISTRY__PASSWORD if set.
        #[arg(long)]
        registry: Option<String>,
    },
    /// Answer quality tools.
    Faithfulness {
        #[command(subcommand)]
        command: FaithfulnessCommand,
    },
    /// Show or check configuration.
    Config {
        /// Print the default configuration as TOML.
        #[arg(long)]
        print_default: bool,
        /// Check this file (with env overrides) and print the effective configuration.
        #[arg(long)]
        check: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum FaithfulnessCommand {
    /// Score labelled cases with the configured model and scorer, and print AUC (overall, per
    /// language, subtle/blatant), the score distribution and suggested thresholds per language.
    /// One JSON object per line: `{"question", "chunks": [..], "answer",
    /// "label": "faithful"|"unfaithful", "lang"?, "kind"?}`.
    Eval {
        /// The labelled JSONL file.
        file: PathBuf,
        /// TOML configuration file (its `[quality]` section picks the models and thresholds).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GLASSBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,librdkafka=warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// The loadgen's encoding from its flags: the registry's auth comes from the same environment
/// overrides as `glassbox run`'s `[registry]` section.
fn loadgen_encoding(
    format: &str,
    registry: Option<String>,
) -> Result<crate::loadgen::Encoding, String> {
    match (format, registry) {
        ("json", _) => Ok(crate::loadgen::Encoding::Json),
        ("avro", Some(url)) => {
            let mut config = Config::load(None, std::env::vars())
                .map_err(|e| e.to_string())?
                .registry;
            config.url = url;
            Ok(crate::loadgen::Encoding::Avro(config))
        }
        ("avro", None) => Err("--format avro needs --registry URL".into()),
        (other, _) => Err(format!("unknown --format {other}")),
    }
}

/// SIGTERM (what Kubernetes sends) and SIGINT (Ctrl-C) ask for a clean stop: final commit, sinks
/// flushed. A second one while stopping exits at once (code 1). SIGHUP is not a stop: it
/// reloads the price table (see `pricing`).
fn stop_on_signals(stop: &Arc<AtomicBool>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so that it sees the flag as it was before this signal set it.
        signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())?;
        signal_hook::flag::register(signal, stop.clone())?;
    }
    Ok(())
}

/// Parses the command line and runs the command; the `glassbox` binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let handles = Handles::default();
    if let Err(e) = stop_on_signals(&handles.shutdown) {
        tracing::error!(error = %e, "cannot install the SIGTERM/SIGINT handlers");
        return ExitCode::FAILURE;
    }
    let result: Result<(), String> = match cli.command {
        Command::Run { config } => Config::load(config.as_deref(), std::env::vars())
            .map_err(|e| e.to_string())
            .and_then(|c| run(&c, handles).map_err(|e| e.to_string())),
        Command::Demo {
            rate,
            duration_secs,
            window_ms,
            sliding_ms,
        } => demo(
            DemoOptions {
                rate,
                duration: duration_secs.map(Duration::from_secs),
                window_ms,
                sliding_ms,
                refresh: Duration::from_secs(2),
            },
            handles,
        )
        .map_err(|e| e.to_string()),
        Command::Loadgen {
            brokers,
            topic,
            rate,
            count,
            seed,
            format,
            registry,
        } => loadgen_encoding(&format, registry).and_then(|encoding| {
            crate::loadgen::publish(
                &brokers,
                &topic,
                rate,
                count,
                seed,
                &encoding,
                &handles.shutdown,
            )
        }),
        Command::Faithfulness {
            command: FaithfulnessCommand::Eval { file, config },
        } => Config::load(config.as_deref(), std::env::vars())
            .map_err(|e| e.to_string())
            .and_then(|c| c.quality.scorer().map_err(|e| e.to_string()))
            .and_then(|scorer| {
                glassbox_quality::run_eval(&file, &scorer)
                    .map(|report| print!("{report}"))
                    .map_err(|e| e.to_string())
            }),
        Command::Config {
            print_default,
            check,
        } => {
            if let Some(path) = check {
                Config::load(Some(&path), std::env::vars())
                    .map(|c| {
                        let shown = c.redacted();
                        print!(
                            "{}",
                            toml::to_string_pretty(&shown).expect("config serializes")
                        )
                    })
                    .map_err(|e| e.to_string())
            } else if print_default {
                print!("{}", Config::default_toml());
                Ok(())
            } else {
                Err("say --print-default or --check FILE".into())
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("glassbox: {e}");
            ExitCode::FAILURE
        }
    }
}
