//! The live spend ledger against the test stack's Redis (`GLASSBOX_TEST_REDIS_URL`): exact
//! totals that replays do not change, re-pricing of the current month, and budget events fired
//! once per threshold per period. Every test writes under a key prefix of its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use glassbox::pricing::{Budget, Calendar, CostConfig};
use glassbox::records::metrics::{CostRecord, MetricsRecord, Tokens, UsageRecord};
use glassbox::sinks::Keyed;
use glassbox::sinks::redis::spend::{SpendLedger, SpendSettings};
use glassbox::sinks::redis::{RedisConfig, RedisWriter};
use glassbox::sinks::threaded::Writer;
use glassbox::telemetry::Counters;
use glassbox_operators::cost::pricing::{PriceBoard, cost_of, key_rates};
use glassbox_operators::cost::{Price, PriceTable};

const PICO: i128 = 1_000_000_000_000;
/// 2026-10-31T23:00:00Z, and the panes after it (60 s each).
const OCT31_23H: u64 = 1_793_487_600_000;
const NOV1: u64 = OCT31_23H + 3_600_000;
const ACME_SEARCH: &str = "provider=openai,model=gpt-4o,tenant=acme,feature=search";
const ACME_CHAT: &str = "provider=openai,model=mystery,tenant=acme,feature=chat";
const BETA_SEARCH: &str = "provider=anthropic,model=claude,tenant=beta,feature=search";

fn url() -> String {
    std::env::var("GLASSBOX_TEST_REDIS_URL").expect(
        "GLASSBOX_TEST_REDIS_URL is not set: run the tests with ./integration/scripts/test-all.sh",
    )
}

fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("gbspend-{name}-{}-{nanos}", std::process::id())
}

fn table(gpt_input: u64, mystery: bool) -> PriceTable {
    let mut t = PriceTable::new();
    t.insert("gpt-4o", Price::new(gpt_input, 10_000_000));
    t.insert("claude", {
        let mut p = Price::new(3_000_000, 15_000_000);
        p.cache_read = Some(300_000);
        p
    });
    if mystery {
        t.insert("mystery", Price::new(1_000_000, 1_000_000));
    }
    t
}

fn usage(series: &str, calls: i64, input: i64, cache_read: i64, output: i64) -> UsageRecord {
    let get = |name: &str| {
        series
            .split(',')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap()
            .to_owned()
    };
    UsageRecord {
        provider: Some(get("provider")),
        model: get("model"),
        tier: 0,
        counts: [calls, input, cache_read, 0, output, 0],
    }
}

/// A tumbling pane of `series` ending at `end`, with one usage entry. Only what the ledger
/// reads is filled in; its cost is left to the ledger (it prices usage itself).
fn pane(series: &str, end: u64, u: UsageRecord) -> Arc<Keyed> {
    let tags: BTreeMap<String, String> = series
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    Arc::new(Keyed {
        key: series.to_owned(),
        record: MetricsRecord {
            schema_version: 1,
            view: "tumbling_1m".into(),
            window_start_ms: end - 60_000,
            window_end_ms: end,
            series: tags,
            requests: u.counts[0],
            errors: 0,
            errors_by_type: BTreeMap::new(),
            truncations: 0,
            error_rate: 0.0,
            truncation_rate: 0.0,
            rpm: 0.0,
            tpm: 0.0,
            tokens: Tokens {
                input: 0,
                output: 0,
                cache_read: 0,
                cache_write: 0,
                reasoning: 0,
            },
            latency_ms: None,
            ttft_ms: None,
            tpot_ms: None,
            sketch_relative_error: 0.01,
            cost: Some(CostRecord {
                usd: 0.0,
                total_pico: 0,
                by_class_pico: BTreeMap::new(),
                unpriced_calls: 0,
                unpriced: BTreeMap::new(),
                usage: vec![u],
            }),
        },
    })
}

/// Panes on both sides of the October/November boundary, for three series.
fn panes() -> Vec<Arc<Keyed>> {
    let mut out = Vec::new();
    for i in 0..4u64 {
        for base in [OCT31_23H + 60_000, NOV1 + 60_000] {
            let end = base + i * 60_000;
            let n = i as i64 + 1;
            out.push(pane(
                ACME_SEARCH,
                end,
                usage(ACME_SEARCH, n, 1_000 * n, 0, 300 * n),
            ));
            out.push(pane(ACME_CHAT, end, usage(ACME_CHAT, 2 * n, 500, 0, 50)));
            out.push(pane(
                BETA_SEARCH,
                end,
                usage(BETA_SEARCH, n, 2_000, 700 * n, 100),
            ));
        }
    }
    out
}

/// The expected totals, per (Redis key suffix, field), computed record by record with
/// `oct`'s prices for October and `nov`'s for November.
fn expected(
    records: &[Arc<Keyed>],
    oct: &PriceTable,
    nov: &PriceTable,
) -> BTreeMap<(String, String), i128> {
    let cal = Calendar::default();
    let mut out: BTreeMap<(String, String), i128> = BTreeMap::new();
    for k in records {
        let r = &k.record;
        let (day, month, _) = cal.period(r.window_start_ms);
        let table = if month == "2026-10" { oct } else { nov };
        for u in &r.cost.as_ref().unwrap().usage {
            match key_rates(table, &u.key()) {
                Some(rates) => {
                    let c = cost_of(&u.counts, &rates);
                    let (tenant, feature) = (&r.series["tenant"], &r.series["feature"]);
                    for (key, field) in [
                        (format!("spend:tenant:day:{day}"), tenant),
                        (format!("spend:tenant:month:{month}"), tenant),
                        (format!("spend:model:day:{day}"), &u.model),
                        (format!("spend:feature:day:{day}"), feature),
                        (format!("spend:feature:month:{month}"), feature),
                    ] {
                        *out.entry((key, field.clone())).or_default() += c;
                    }
                }
                None => {
                    *out.entry((format!("spend:unpriced:day:{day}"), u.model.clone()))
                        .or_default() += i128::from(u.counts[0]);
                }
            }
        }
    }
    out.retain(|_, v| *v != 0);
    out
}

fn stored(con: &mut redis::Connection, prefix: &str) -> BTreeMap<(String, String), i128> {
    let mut out = BTreeMap::new();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:spend:*"))
        .query(con)
        .unwrap();
    for key in keys {
        let suffix = key.strip_prefix(&format!("{prefix}:")).unwrap().to_owned();
        let wanted = ["tenant:", "model:", "feature:", "unpriced:"];
        if !wanted
            .iter()
            .any(|w| suffix.starts_with(&format!("spend:{w}")))
        {
            continue;
        }
        let h: BTreeMap<String, String> = redis::cmd("HGETALL").arg(&key).query(con).unwrap();
        for (field, v) in h {
            let v: i128 = v.parse().unwrap();
            if v != 0 {
                out.insert((suffix.clone(), field), v);
            }
        }
    }
    out
}

fn writer(prefix: &str, board: &Arc<PriceBoard>, cost: &CostConfig) -> RedisWriter {
    let config = RedisConfig {
        enabled: true,
        url: url(),
        key_prefix: prefix.to_owned(),
        channel: String::new(),
        timeout_ms: 5_000,
        ..RedisConfig::default()
    };
    let ledger = SpendLedger::new(SpendSettings {
        prefix: prefix.to_owned(),
        tumbling_view: "tumbling_1m".into(),
        calendar: Calendar::default(),
        day_ttl_secs: 3_600,
        month_ttl_secs: 3_600,
        budgets: cost.budget_lines().unwrap(),
        board: board.clone(),
        relay: None,
        counters: Arc::new(Counters::default()),
    });
    RedisWriter::new(&config).unwrap().with_spend(ledger)
}

fn connect() -> redis::Connection {
    let con = redis::Client::open(url().as_str())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    con
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn spend_is_exact_and_replays_change_nothing() {
    let prefix = unique("exact");
    let board = PriceBoard::new(table(2_500_000, false), Duration::from_millis(100));
    let records = panes();
    let mut w = writer(&prefix, &board, &CostConfig::default());
    w.write(&records).unwrap();
    let mut con = connect();
    let truth = expected(&records, &table(2_500_000, false), &table(2_500_000, false));
    assert_eq!(stored(&mut con, &prefix), truth);
    // The tenant's day is one HGETALL away, in pico-USD.
    let day: BTreeMap<String, i128> = redis::cmd("HGETALL")
        .arg(format!("{prefix}:spend:tenant:day:2026-11-01"))
        .query(&mut con)
        .unwrap();
    assert_eq!(day.len(), 2, "{day:?}");
    assert!(day["acme"] > 0 && day["acme"] < PICO);

    // A retried batch, a replay in another order and a restarted ledger all change nothing.
    w.write(&records).unwrap();
    let mut reversed = records.clone();
    reversed.reverse();
    w.write(&reversed[..7]).unwrap();
    let mut restarted = writer(&prefix, &board, &CostConfig::default());
    restarted.write(&records).unwrap();
    assert_eq!(stored(&mut con, &prefix), truth);
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn a_new_table_reprices_the_current_month_only() {
    let prefix = unique("reprice");
    let (old, new) = (table(2_500_000, false), table(5_000_000, true));
    let board = PriceBoard::new(old.clone(), Duration::from_millis(100));
    let records = panes();
    let mut w = writer(&prefix, &board, &CostConfig::default());
    w.write(&records).unwrap();
    let mut con = connect();
    assert_eq!(stored(&mut con, &prefix), expected(&records, &old, &old));

    board.publish(new.clone());
    // No record needed: the writer's idle housekeeping re-prices.
    Writer::<Keyed>::idle(&mut w);
    // November (the current month: the latest pane counted is in it) is re-priced, the
    // unpriced model leaves `unpriced`; October keeps its prices.
    assert_eq!(stored(&mut con, &prefix), expected(&records, &old, &new));
    // Re-pricing is idempotent, and so is a later replay.
    Writer::<Keyed>::idle(&mut w);
    w.write(&records).unwrap();
    assert_eq!(stored(&mut con, &prefix), expected(&records, &old, &new));
    // Back to the old table: November returns to exactly what it was.
    board.publish(old.clone());
    Writer::<Keyed>::idle(&mut w);
    assert_eq!(stored(&mut con, &prefix), expected(&records, &old, &old));
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn budget_thresholds_fire_once_per_period() {
    let prefix = unique("budget");
    let board = PriceBoard::new(table(2_500_000, false), Duration::from_millis(100));
    let mut cost = CostConfig::default();
    // acme's November 1 spend on gpt-4o: panes of 1..4 calls; 0.04 USD is crossed at 80% by
    // the third pane and at 100% by the fourth.
    cost.budgets.tenants.insert(
        "acme".into(),
        Budget {
            daily_usd: Some(0.04),
            monthly_usd: None,
        },
    );
    let acme = |i: u64, base: u64| {
        let n = i as i64 + 1;
        pane(
            ACME_SEARCH,
            base + 60_000 * (i + 1),
            usage(ACME_SEARCH, n, 1_000 * n, 0, 300 * n),
        )
    };
    // Per pane: n·(1000·2.5e6 + 300·1e7) pico = n·0.0055 USD; cumulative 0.0055, 0.0165,
    // 0.033, 0.055.
    let mut con = connect();
    let events = |con: &mut redis::Connection| -> Vec<String> {
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(format!("{prefix}:budget:events"))
            .arg("-")
            .arg("+")
            .query(con)
            .unwrap();
        entries.into_iter().map(|(_, kv)| kv[1].clone()).collect()
    };
    let mut w = writer(&prefix, &board, &cost);
    w.write(&[acme(0, NOV1), acme(1, NOV1)]).unwrap();
    assert!(events(&mut con).is_empty());
    w.write(&[acme(2, NOV1)]).unwrap();
    assert_eq!(
        events(&mut con),
        vec!["budget:tenant:acme:day:2026-11-01:0.8"]
    );
    w.write(&[acme(3, NOV1)]).unwrap();
    // Replays, and a restarted ledger, fire nothing again.
    w.write(&[acme(0, NOV1), acme(1, NOV1), acme(2, NOV1), acme(3, NOV1)])
        .unwrap();
    let mut restarted = writer(&prefix, &board, &cost);
    restarted.write(&[acme(3, NOV1)]).unwrap();
    assert_eq!(
        events(&mut con),
        vec![
            "budget:tenant:acme:day:2026-11-01:0.8",
            "budget:tenant:acme:day:2026-11-01:1"
        ]
    );
    // A new day is a new period.
    let nov2 = NOV1 + 86_400_000;
    restarted.write(&[acme(3, nov2)]).unwrap();
    assert_eq!(
        events(&mut con).len(),
        2,
        "0.022 USD is below 80% of the budget"
    );
    restarted.write(&[acme(2, nov2), acme(1, nov2)]).unwrap();
    assert_eq!(
        events(&mut con).len(),
        4,
        "0.0495 USD crosses both thresholds at once"
    );
    let event: serde_json::Value = {
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(format!("{prefix}:budget:events"))
            .arg("-")
            .arg("+")
            .query(&mut con)
            .unwrap();
        serde_json::from_str(&entries[1].1[3]).unwrap()
    };
    assert_eq!(event["scope"], "tenant");
    assert_eq!(event["name"], "acme");
    assert_eq!(event["period_label"], "2026-11-01");
    assert_eq!(event["budget_pico"], "40000000000");
    assert_eq!(event["spend_pico"], "55000000000");
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn a_model_named_like_a_tenant_pair_is_repriced_to_its_own_tenant() {
    use glassbox_operators::metrics::facts::{Dimensions, Series};
    let prefix = unique("forged");
    let forged_model = "gpt|4o,tenant=victim";
    let dims = Dimensions(
        ["provider", "model", "tenant", "feature"]
            .map(String::from)
            .to_vec(),
    );
    let values = ["openai", forged_model, "attacker", "search"].map(String::from);
    let key = dims.key(&Series::new(values.to_vec()));
    let records: Vec<Arc<Keyed>> = (1..=3u64)
        .map(|i| {
            let mut u = usage(ACME_SEARCH, 2, 4_000, 0, 700);
            u.model = forged_model.into();
            let mut k = (*pane(ACME_SEARCH, NOV1 + i * 60_000, u)).clone();
            k.key = key.clone();
            k.record.series = dims.names().iter().cloned().zip(values.clone()).collect();
            Arc::new(k)
        })
        .collect();
    let priced = |input: u64| {
        let mut t = PriceTable::new();
        t.insert(forged_model, Price::new(input, 10_000_000));
        t
    };
    let (old, new) = (priced(2_000_000), priced(7_000_000));
    let board = PriceBoard::new(old.clone(), Duration::from_millis(100));
    let mut w = writer(&prefix, &board, &CostConfig::default());
    w.write(&records).unwrap();
    let mut con = connect();
    assert_eq!(stored(&mut con, &prefix), expected(&records, &old, &old));
    board.publish(new.clone());
    Writer::<Keyed>::idle(&mut w);
    let after = stored(&mut con, &prefix);
    assert_eq!(after, expected(&records, &new, &new));
    assert!(
        !after.keys().any(|(_, field)| field == "victim"),
        "no cost is booked to the tenant named inside the model: {after:?}"
    );
}
