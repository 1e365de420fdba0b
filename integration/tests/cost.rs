//! Cost end to end through the test broker (Apache Kafka), the real `glassbox` process, Redis and InfluxDB: window cost
//! and live spend equal the ground truth priced span by span; still after SIGKILL + restart;
//! after the price file changes, live spend equals the ground truth under the new prices; and
//! each budget threshold is announced exactly once on the alerts topic and in Redis.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use glassbox::kafka::source::now_ms;
use glassbox::pricing::{Calendar, CostConfig};
use glassbox_integration::stores::influx_points;
use glassbox_integration::*;
use glassbox_operators::SpanFacts;
use glassbox_operators::cost::{DEFAULT_OVERLAY_TOML, DEFAULT_PRICES_JSON, PriceTable, span_cost};
use glassbox_schemas::{DecodeLimits, JsonDecoder, Span};
use glassbox_support::loadgen::{GenSpan, Generator};

/// The price files and the acme budget of a run.
struct Costs {
    prices: String,
    overlay: String,
    budget_usd: String,
}

fn glassbox(r: &Run, c: &Costs) -> Child {
    let mut cmd = r.command(env!("CARGO_BIN_EXE_glassbox-it"));
    cmd.env("GLASSBOX_COST__PRICES", &c.prices)
        .env("GLASSBOX_COST__OVERLAY", &c.overlay)
        .env("GLASSBOX_COST__RELOAD_CHECK_MS", "200")
        .env(
            "GLASSBOX_COST__BUDGETS__TENANTS",
            format!("{{ acme = {{ daily_usd = {} }} }}", c.budget_usd),
        )
        .env("GLASSBOX_SOURCE__MAX_RECORDS_PER_ACTIVATION", "200");
    cmd.spawn().expect("start glassbox")
}

fn cost_config(prices: &str, overlay: &str) -> CostConfig {
    CostConfig {
        prices: prices.to_owned(),
        overlay: overlay.to_owned(),
        ..CostConfig::default()
    }
}

/// Priced spans: (span, cost in pico-USD or `None` when unpriced), each span priced alone with
/// `span_cost`, independently of the pipeline's token sums × rates.
fn priced(spans: &[Span], config: &CostConfig) -> Vec<Option<i128>> {
    let table = config.load_table().unwrap();
    let keying = config.keying(&table);
    spans
        .iter()
        .map(|s| {
            let price = table.price(s.provider.as_deref(), s.model()?)?;
            Some(i128::from(
                span_cost(&s.usage, keying.semantics(s.provider.as_deref()), price).total,
            ))
        })
        .collect()
}

/// The Redis totals glassbox must hold: `(key suffix, field) → pico-USD` (and unpriced calls).
fn spend_truth(spans: &[Span], costs: &[Option<i128>]) -> BTreeMap<(String, String), i128> {
    let cal = Calendar::default();
    let mut out: BTreeMap<(String, String), i128> = BTreeMap::new();
    for (s, c) in spans.iter().zip(costs) {
        let (day, month, _) = cal.period(s.start_ms());
        let get = |d: &str| s.dimension(d).unwrap_or("unknown").to_owned();
        let model = s.model().unwrap_or("unknown").to_owned();
        match c {
            Some(c) => {
                for (key, field) in [
                    (format!("spend:tenant:day:{day}"), get("tenant")),
                    (format!("spend:tenant:month:{month}"), get("tenant")),
                    (format!("spend:model:day:{day}"), model),
                    (format!("spend:feature:day:{day}"), get("feature")),
                    (format!("spend:feature:month:{month}"), get("feature")),
                ] {
                    *out.entry((key, field)).or_default() += c;
                }
            }
            None => {
                *out.entry((format!("spend:unpriced:day:{day}"), model))
                    .or_default() += 1
            }
        }
    }
    out.retain(|_, v| *v != 0);
    out
}

fn stored_spend(url: &str, prefix: &str) -> BTreeMap<(String, String), i128> {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:spend:*"))
        .query(&mut con)
        .unwrap();
    let mut out = BTreeMap::new();
    for key in keys {
        let suffix = key.strip_prefix(&format!("{prefix}:")).unwrap().to_owned();
        let totals = ["tenant:", "model:", "feature:", "unpriced:"];
        if !totals
            .iter()
            .any(|t| suffix.starts_with(&format!("spend:{t}")))
        {
            continue;
        }
        let h: BTreeMap<String, String> = redis::cmd("HGETALL").arg(&key).query(&mut con).unwrap();
        for (field, v) in h {
            let v: i128 = v.parse().unwrap();
            if v != 0 {
                out.insert((suffix.clone(), field), v);
            }
        }
    }
    out
}

/// The price file with new prices for the models the load generator uses (the entries they
/// resolve to), written over `path`.
fn write_new_prices(path: &Path, table: &PriceTable) {
    let mut json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(DEFAULT_PRICES_JSON).unwrap();
    for (provider, model) in glassbox_support::loadgen::MODELS {
        let (entry, _) = table
            .resolve(Some(provider), model)
            .expect("loadgen models are priced");
        let e = json.get_mut(entry).unwrap().as_object_mut().unwrap();
        e.insert("input_cost_per_token".into(), serde_json::json!(7e-6));
        e.insert("output_cost_per_token".into(), serde_json::json!(2.1e-5));
        e.insert(
            "cache_read_input_token_cost".into(),
            serde_json::json!(1e-7),
        );
    }
    // Written whole, then renamed: the watcher never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&json).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn cost_spend_repricing_and_budgets_hold_the_ground_truth_through_a_restart() {
    let dir = std::env::temp_dir().join(unique("glassbox-cost"));
    std::fs::create_dir_all(&dir).unwrap();
    let prices = dir.join("prices.json");
    let overlay = dir.join("overlay.toml");
    std::fs::write(&prices, DEFAULT_PRICES_JSON).unwrap();
    std::fs::write(&overlay, DEFAULT_OVERLAY_TOML).unwrap();
    let (prices_s, overlay_s) = (prices.display().to_string(), overlay.display().to_string());
    let old_config = cost_config(&prices_s, &overlay_s);

    let start_ms = (now_ms() - 2 * 3_600_000) / 60_000 * 60_000;
    let mut generator = Generator::new(23, start_ms, 50.0);
    let gen_spans: Vec<GenSpan> = (0..30_000).map(|_| generator.next_span()).collect();
    let records: Vec<(String, Vec<u8>)> = gen_spans
        .iter()
        .map(|s| (s.trace_id.clone(), s.to_json()))
        .collect();
    let decoder = JsonDecoder::new(DecodeLimits::default());
    let spans: Vec<Span> = records
        .iter()
        .map(|(_, bytes)| decoder.decode(bytes, now_ms()).unwrap())
        .filter(SpanFacts::counts)
        .collect();

    let old_costs = priced(&spans, &old_config);
    let old_truth = spend_truth(&spans, &old_costs);
    // acme's budget: half its smallest day's spend, in whole cents, so both thresholds fire.
    let acme_days: Vec<i128> = old_truth
        .iter()
        .filter(|((k, f), _)| k.starts_with("spend:tenant:day:") && f == "acme")
        .map(|(_, v)| *v)
        .collect();
    let budget_cents = acme_days.iter().min().unwrap() / 2 / 10_000_000_000;
    assert!(
        budget_cents > 0,
        "acme spends enough for a budget: {acme_days:?}"
    );
    let budget_usd = format!("{}.{:02}", budget_cents / 100, budget_cents % 100);

    let s = Run::new("cost");
    let costs = Costs {
        prices: prices_s.clone(),
        overlay: overlay_s.clone(),
        budget_usd: budget_usd.clone(),
    };
    produce(&s.input, &records);

    // First run: SIGKILL once windows are flowing.
    let mut first = glassbox(&s, &costs);
    wait_for(
        "windows from the first run",
        Duration::from_secs(180),
        || {
            assert!(first.try_wait().unwrap().is_none(), "the first run exited");
            consume_all(&s.metrics, Duration::from_millis(300)).len() >= 150
        },
    );
    first.kill().expect("SIGKILL");
    first.wait().unwrap();

    // Second run: resumes, finishes the input, and keeps running (the watermark advances with
    // the clock once the input is idle, so every window closes).
    let mut second = glassbox(&s, &costs);
    wait_for_map(
        "live spend to equal the ground truth",
        Duration::from_secs(240),
        &old_truth,
        || {
            assert!(
                second.try_wait().unwrap().is_none(),
                "the second run exited"
            );
            stored_spend(&s.redis_url, &s.prefix)
        },
    );

    // Window cost: the metrics topic and InfluxDB hold, per tumbling window, exactly the cost
    // of its spans priced one by one.
    let views = glassbox::config::Config::default().metrics.views();
    let mut window_truth: BTreeMap<(String, u64), (i128, i64)> = BTreeMap::new();
    for (span, c) in spans.iter().zip(&old_costs) {
        let series = series_key(|d| span.dimension(d).unwrap_or("unknown"));
        let start = span.start_ms() / views.pane_ms * views.pane_ms;
        let e = window_truth.entry((series, start)).or_default();
        match c {
            Some(c) => e.0 += c,
            None => e.1 += 1,
        }
    }
    let metrics = consume_all(&s.metrics, Duration::from_secs(2));
    let by_window = records_by_window(&metrics);
    let mut checked = 0;
    for ((view, series, start), record) in &by_window {
        if view != &views.views[0].name {
            continue;
        }
        let (cost, unpriced) = window_truth[&(series.clone(), *start)];
        assert_eq!(
            i128::from(record["cost"]["total_pico"].as_i64().unwrap()),
            cost,
            "{series} @ {start}"
        );
        assert_eq!(record["cost"]["unpriced_calls"].as_i64(), Some(unpriced));
        checked += 1;
    }
    assert_eq!(
        checked,
        window_truth.len(),
        "every tumbling window has a record"
    );
    let points = influx_points(&s.influx_url, &s.influx_db, "glassbox_cost");
    let mut influx: BTreeMap<(String, u64), i128> = BTreeMap::new();
    for p in points
        .iter()
        .filter(|p| p["view"] == views.views[0].name.as_str())
    {
        let series = series_key(|d| p[d].as_str().unwrap());
        let t = p["time"].as_u64().unwrap();
        influx.insert((series, t), i128::from(p["total_pico"].as_i64().unwrap()));
    }
    let expected: BTreeMap<(String, u64), i128> = window_truth
        .iter()
        .map(|(k, (c, _))| (k.clone(), *c))
        .collect();
    assert_eq!(influx, expected, "InfluxDB cost points");

    // Re-pricing: change the price file; live spend of the open month becomes the ground truth
    // under the new prices.
    write_new_prices(&prices, &old_config.load_table().unwrap());
    let new_truth = spend_truth(&spans, &priced(&spans, &old_config));
    assert_ne!(new_truth, old_truth, "the new prices change spend");
    wait_for_map(
        "re-priced spend",
        Duration::from_secs(60),
        &new_truth,
        || stored_spend(&s.redis_url, &s.prefix),
    );

    // Budgets: every threshold reached under either table, once, on the alerts topic and in
    // the Redis stream, whatever the restart replayed.
    let config_with_budget = glassbox::config::Config::from_toml(
        &format!("[cost.budgets.tenants.acme]\ndaily_usd = {budget_usd}\n"),
        std::iter::empty(),
    )
    .unwrap();
    let mut expected_events = BTreeSet::new();
    for line in config_with_budget.cost.budget_lines().unwrap() {
        for truth in [&old_truth, &new_truth] {
            for ((key, field), v) in truth.iter() {
                let Some(day) = key.strip_prefix("spend:tenant:day:") else {
                    continue;
                };
                if field != "acme" {
                    continue;
                }
                for (t, fire) in &line.thresholds {
                    if *v >= i128::from(*fire) {
                        expected_events.insert(format!("budget:tenant:acme:day:{day}:{t}"));
                    }
                }
            }
        }
    }
    assert!(expected_events.len() >= 2, "{expected_events:?}");
    let mut alerts = Vec::new();
    wait_for(
        "budget events on the alerts topic",
        Duration::from_secs(30),
        || {
            alerts = consume_all(&s.alerts, Duration::from_millis(500));
            alerts.len() >= expected_events.len()
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let alerts = consume_all(&s.alerts, Duration::from_secs(1));
    let keys: Vec<String> = alerts
        .iter()
        .map(|a| String::from_utf8(a.key.clone()).unwrap())
        .collect();
    let distinct: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(
        keys.len(),
        distinct.len(),
        "no duplicate budget event: {keys:?}"
    );
    assert_eq!(distinct, expected_events);
    for (a, key) in alerts.iter().zip(&keys) {
        let event: serde_json::Value = serde_json::from_slice(&a.payload).unwrap();
        assert_eq!(event["event_id"].as_str(), Some(key.as_str()));
        assert_eq!(event["scope"], "tenant");
    }
    let mut con = redis::Client::open(s.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let stream_len: usize = redis::cmd("XLEN")
        .arg(format!("{}:budget:events", s.prefix))
        .query(&mut con)
        .unwrap();
    assert_eq!(stream_len, expected_events.len());

    second.kill().unwrap();
    second.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
