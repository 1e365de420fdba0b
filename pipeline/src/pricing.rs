//! Cost configuration (`[cost]`): where prices come from, how they are reloaded, the calendar
//! of spend periods and the budgets.
//!
//! The price table is read at start-up (a bad file fails the start with the file and field
//! named) and published on a [`PriceBoard`]. A watcher thread reloads it when a price file's
//! modification time or size changes (checked every `cost.reload_check_ms`) or when the process
//! receives `SIGHUP`; a reload that fails is logged and counted, and the previous table stays.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use glassbox_operators::cost::pricing::PriceBoard;

pub use crate::config::cost::{
    Budget, BudgetLine, BudgetsConfig, Calendar, CostConfig, civil_from_days,
};
use crate::telemetry::Counters;

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let md = std::fs::metadata(path).ok()?;
    Some((md.modified().ok()?, md.len()))
}

/// Starts the thread that reloads the price table on file change or `SIGHUP`, until `stop`.
pub fn spawn_watcher(
    config: CostConfig,
    board: Arc<PriceBoard>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let hup = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    std::thread::Builder::new()
        .name("glassbox-prices".into())
        .spawn(move || {
            let files = config.watched();
            let mut stamps: Vec<_> = files.iter().map(|f| stamp(f)).collect();
            let every = Duration::from_millis(config.reload_check_ms.max(1));
            let mut since = Duration::ZERO;
            let tick = Duration::from_millis(50);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                since += tick;
                let signalled = hup.swap(false, Ordering::AcqRel);
                let mut changed = false;
                if config.reload_check_ms > 0 && since >= every {
                    since = Duration::ZERO;
                    let now: Vec<_> = files.iter().map(|f| stamp(f)).collect();
                    changed = now != stamps;
                    stamps = now;
                }
                if !(signalled || changed) {
                    continue;
                }
                match config.load_table() {
                    Ok(table) => {
                        let known = config.keying(&board.current().1).thresholds;
                        let new: Vec<u64> = table
                            .tier_thresholds()
                            .into_iter()
                            .filter(|t| !known.contains(t))
                            .collect();
                        if !new.is_empty() {
                            tracing::warn!(thresholds = ?new, "new price tiers apply from the next restart; until then their calls are priced at the next lower tier (add them to cost.tier_thresholds)");
                        }
                        let models = table.len();
                        let version = board.publish(table);
                        Counters::inc(&counters.price_reloads);
                        tracing::info!(version, models, signalled, "price table reloaded");
                    }
                    Err(error) => {
                        Counters::inc(&counters.price_reload_errors);
                        tracing::error!(%error, "price table reload failed, keeping the previous table");
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sighup_and_file_changes_reload_the_table_and_bad_files_keep_the_old_one() {
        let dir = std::env::temp_dir().join(format!("glassbox-prices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let prices = dir.join("prices.json");
        let write = |input: &str| {
            let json = format!(
                r#"{{"m": {{"input_cost_per_token": {input}, "output_cost_per_token": 0.000002}}}}"#
            );
            std::fs::write(&prices, json).unwrap();
        };
        write("0.000001");
        let config = CostConfig {
            prices: prices.display().to_string(),
            reload_check_ms: 0,
            ..CostConfig::default()
        };
        let board = PriceBoard::new(config.load_table().unwrap(), Duration::from_millis(10));
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = spawn_watcher(config, board.clone(), counters.clone(), stop.clone()).unwrap();
        let input = |board: &PriceBoard| board.current().1.get("m").unwrap().input;
        let wait = |what: &str, done: &dyn Fn() -> bool| {
            let start = std::time::Instant::now();
            while !done() {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "timed out: {what}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        // With reload_check_ms = 0 a change alone is not picked up; SIGHUP reloads.
        write("0.000003");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(input(&board), 1_000_000);
        signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
        wait("reload on SIGHUP", &|| input(&board) == 3_000_000);
        // A broken file is refused and counted; the table stays.
        std::fs::write(&prices, "{ not json").unwrap();
        signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
        wait("the failed reload is counted", &|| {
            counters.price_reload_errors.load(Ordering::Relaxed) == 1
        });
        assert_eq!(input(&board), 3_000_000);
        assert_eq!(counters.price_reloads.load(Ordering::Relaxed), 1);
        stop.store(true, Ordering::Relaxed);
        watcher.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
