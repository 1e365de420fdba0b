//! Live spend in Redis: per tenant per day and month, per model per day, per feature per day
//! and month, exact, idempotent under replay, re-priced when the price table changes, with
//! budget events fired once per threshold per period.
//!
//! # Data model
//! `{p}` is `redis.key_prefix`; `{day}` is `YYYY-MM-DD` and `{month}` `YYYY-MM` of the spend
//! calendar (`cost.day_offset_minutes`). Money is an integer count of **pico-USD** (10⁻¹² USD;
//! divide by 10¹² for USD), exact: every total is a sum of exact per-pane costs kept with
//! Redis' 64-bit `HINCRBY` (limit ≈ 9.2 million USD per field).
//!
//! | key | type | fields → value |
//! |---|---|---|
//! | `{p}:spend:tenant:day:{day}` | hash | tenant → pico-USD |
//! | `{p}:spend:tenant:month:{month}` | hash | tenant → pico-USD |
//! | `{p}:spend:model:day:{day}` | hash | model → pico-USD |
//! | `{p}:spend:feature:day:{day}` | hash | feature → pico-USD |
//! | `{p}:spend:feature:month:{month}` | hash | feature → pico-USD |
//! | `{p}:spend:unpriced:day:{day}` | hash | model → calls without a price |
//! | `{p}:spend:usage:{day}` | hash | `{booking}\|{class}` → calls or tokens (what the cost is computed from) |
//! | `{p}:spend:cost:{day}` | hash | `{booking}` → pico-USD, or `u` when unpriced |
//! | `{p}:spend:applied:{day}` | hash | `{series}\|{pane_end_ms}` → 1 (panes already counted) |
//! | `{p}:spend:days` | sorted set | day → its start (ms) |
//! | `{p}:spend:clock` | string | the latest pane end counted (ms) |
//! | `{p}:budget:fired` | hash | event id → spend when it fired |
//! | `{p}:budget:events` | stream | one entry per budget event (`id`, `event` JSON) |
//! | `{p}:budget:relayed` | string | the last stream id relayed to the alerts topic |
//! | channel `{p}:budget` | pub/sub | each budget event's JSON |
//!
//! One `HGETALL {p}:spend:tenant:day:2026-11-28` reads every tenant's spend of that day.
//!
//! `{series}` is the series key ([`glassbox_operators::Dimensions::key`], its values escaped)
//! and `{booking}` the JSON object of what a cost is booked to, e.g.
//! `{"series":"provider=openai,…","tenant":"acme","feature":"search","price":{"provider":
//! "openai","model":"gpt-4o","tier":0}}`. Re-pricing reads the tenant, feature and price key
//! back from that JSON, never by splitting a rendered key, so no value (a model named
//! `m,tenant=t`, a `|` or `/` in a name) can book cost to another tenant.
//!
//! # Exactness
//! Spend is fed by the tumbling view only: each closed pane of each series is counted once, by
//! a Lua script that first marks `(series, pane)` in `applied` (`HSETNX`) and, only if it was
//! not there, adds the pane's tokens to `usage` and its cost to every total. A replay after a
//! crash (or a retried batch) finds its panes marked and changes nothing. The cost of a pane is
//! computed in Rust in `i128` from its tokens and the current rates and sent as a decimal
//! string; Lua never does arithmetic on money.
//!
//! # Re-pricing
//! When the price table changes, before its next write the ledger recomputes, for **every day
//! of the current month** of the spend calendar (the month of the latest pane counted, which
//! includes the current day), the cost of each `usage` entry under the new table, and applies
//! the difference to every total in one `MULTI`/`EXEC` per day. Earlier months keep the prices
//! they were counted at. A model that gained a price leaves `unpriced` and joins the totals; one
//! that lost it does the opposite. The ledger also re-prices once at start-up, so a table
//! changed while glassbox was stopped applies too.
//!
//! # Budgets
//! After each write, every budget line of a touched tenant or feature is checked: a threshold
//! `t` fires when the total reaches `⌈budget · t⌉` pico-USD. Firing is one Lua script: `HSETNX`
//! of the event id (`budget:{scope}:{name}:{period}:{period label}:{t}`) in `fired`, and only
//! if new, `XADD` to the events stream and `PUBLISH`. So an event fires once per threshold per
//! period, whatever replays or restarts happen. A re-pricing that lowers spend does not un-fire.
//! Events are relayed from the stream to the Kafka alerts topic (key = event id) by one relay,
//! which records the last relayed stream id after the broker acknowledged; a crash between the
//! acknowledgement and that record sends those events again, with the same key and id.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::{Connection, RedisResult, Script, Value};
use glassbox_operators::cost::PriceTable;
use glassbox_operators::cost::pricing::{PriceBoard, cost_of, key_rates};
use glassbox_operators::{PriceKey, TokenClass};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

use rdkafka::ClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use crate::config::cost::{BudgetLine, Calendar};
use crate::sinks::Keyed;
use crate::telemetry::Counters;

const APPLY_SCRIPT: &str = r"
if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 0 then return 0 end
local tenant, feature = ARGV[2], ARGV[3]
local classes = {'calls', 'input', 'cache_read', 'cache_write', 'output', 'reasoning'}
local i = 9
while i + 8 <= #ARGV do
  local ukey, model, cost = ARGV[i], ARGV[i + 1], ARGV[i + 8]
  for c = 1, 6 do
    local n = ARGV[i + 1 + c]
    if n ~= '0' then redis.call('HINCRBY', KEYS[2], ukey .. '|' .. classes[c], n) end
  end
  if cost == 'u' then
    redis.call('HSET', KEYS[3], ukey, 'u')
    redis.call('HINCRBY', KEYS[8], model, ARGV[i + 2])
  else
    redis.call('HINCRBY', KEYS[3], ukey, cost)
    redis.call('HINCRBY', KEYS[4], tenant, cost)
    redis.call('HINCRBY', KEYS[5], tenant, cost)
    redis.call('HINCRBY', KEYS[6], model, cost)
    redis.call('HINCRBY', KEYS[7], feature, cost)
    redis.call('HINCRBY', KEYS[11], feature, cost)
  end
  i = i + 9
end
for _, k in ipairs({1, 2, 3, 4, 6, 7, 8}) do redis.call('EXPIRE', KEYS[k], ARGV[4]) end
redis.call('EXPIRE', KEYS[5], ARGV[5])
redis.call('EXPIRE', KEYS[11], ARGV[5])
redis.call('ZADD', KEYS[9], ARGV[7], ARGV[6])
local clock = redis.call('GET', KEYS[10])
if not clock or tonumber(clock) < tonumber(ARGV[8]) then redis.call('SET', KEYS[10], ARGV[8]) end
return 1
";

const BUDGET_SCRIPT: &str = r"
local total = redis.call('HGET', KEYS[1], ARGV[1])
if not total then return {} end
local spend = tonumber(total)
local fired = {}
local i = 9
while i + 1 <= #ARGV do
  if spend >= tonumber(ARGV[i + 1]) then
    local id = ARGV[2] .. ':' .. ARGV[i]
    if redis.call('HSETNX', KEYS[2], id, total) == 1 then
      local event = cjson.encode({event_id = id, type = 'budget', scope = ARGV[3], name = ARGV[1],
        period = ARGV[4], period_label = ARGV[5], threshold = ARGV[i], budget_usd = ARGV[6],
        budget_pico = ARGV[7], spend_pico = total})
      redis.call('XADD', KEYS[3], '*', 'id', id, 'event', event)
      if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[8], event) end
      table.insert(fired, id)
    end
  end
  i = i + 2
end
redis.call('EXPIRE', KEYS[2], 34560000)
return fired
";

/// Counts failed deliveries of the relay's producer.
#[derive(Default)]
pub struct RelayContext {
    failed: AtomicU64,
}

impl ClientContext for RelayContext {}

impl ProducerContext for RelayContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::warn!(error = %e, "budget event delivery failed");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where budget events are relayed.
pub struct Relay {
    /// The producer.
    pub producer: BaseProducer<RelayContext>,
    /// `kafka.alerts_topic`.
    pub topic: String,
}

/// The ledger's settings.
pub struct SpendSettings {
    /// `redis.key_prefix`.
    pub prefix: String,
    /// The tumbling view's name: only its windows (the panes) are counted.
    pub tumbling_view: String,
    /// The spend calendar.
    pub calendar: Calendar,
    /// Lifetime of day keys (s).
    pub day_ttl_secs: u64,
    /// Lifetime of month keys (s).
    pub month_ttl_secs: u64,
    /// Budgets.
    pub budgets: Vec<BudgetLine>,
    /// The live price table.
    pub board: Arc<PriceBoard>,
    /// Relay of budget events to Kafka; `None`: they stay in the Redis stream.
    pub relay: Option<Relay>,
    /// Counters.
    pub counters: Arc<Counters>,
}

/// The spend ledger, shared by every worker's Redis writer (a mutex serialises its writes, so
/// re-pricing never interleaves with counting).
pub struct SpendLedger {
    s: SpendSettings,
    /// The table version counted with; `None` until the start-up re-pricing is done.
    version: Option<u64>,
    table: Arc<PriceTable>,
    apply: Script,
    budget: Script,
}

/// A ledger shared between writer threads.
pub type SharedLedger = Arc<Mutex<SpendLedger>>;

/// What a usage or cost entry is booked to; its JSON text is the entry's field (see the module
/// doc).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Booking {
    /// The series key.
    series: String,
    /// The series' tenant (`unknown` when it has none).
    tenant: String,
    /// The series' feature (`unknown` when it has none).
    feature: String,
    /// What prices the calls.
    price: PriceKey,
}

impl Booking {
    fn field(&self) -> String {
        serde_json::to_string(self).expect("bookings serialize")
    }
}

fn cost_text(cost: Option<i128>) -> String {
    match cost {
        Some(c) => c.to_string(),
        None => "u".into(),
    }
}

impl SpendLedger {
    /// A ledger; it re-prices the current month before its first write.
    pub fn new(settings: SpendSettings) -> SharedLedger {
        let table = settings.board.current().1;
        Arc::new(Mutex::new(Self {
            s: settings,
            version: None,
            table,
            apply: Script::new(APPLY_SCRIPT),
            budget: Script::new(BUDGET_SCRIPT),
        }))
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.s.prefix)
    }

    /// Counts the tumbling windows of `batch`, re-pricing first if the table changed, then
    /// checks budgets and relays events.
    pub fn write(&mut self, con: &mut Connection, batch: &[Arc<Keyed>]) -> RedisResult<()> {
        self.refresh(con)?;
        let mut touched = BTreeSet::new();
        for keyed in batch {
            let r = &keyed.record;
            if r.view != self.s.tumbling_view {
                continue;
            }
            let Some(cost) = &r.cost else { continue };
            if cost.usage.is_empty() {
                continue;
            }
            let (day, month, day_start) = self.s.calendar.period(r.window_start_ms);
            let tenant = r.series.get("tenant").map_or("unknown", String::as_str);
            let feature = r.series.get("feature").map_or("unknown", String::as_str);
            let keys = [
                self.key(&format!("spend:applied:{day}")),
                self.key(&format!("spend:usage:{day}")),
                self.key(&format!("spend:cost:{day}")),
                self.key(&format!("spend:tenant:day:{day}")),
                self.key(&format!("spend:tenant:month:{month}")),
                self.key(&format!("spend:model:day:{day}")),
                self.key(&format!("spend:feature:day:{day}")),
                self.key(&format!("spend:unpriced:day:{day}")),
                self.key("spend:days"),
                self.key("spend:clock"),
                self.key(&format!("spend:feature:month:{month}")),
            ];
            let mut args: Vec<String> = vec![
                format!("{}|{}", keyed.key, r.window_end_ms),
                tenant.to_owned(),
                feature.to_owned(),
                self.s.day_ttl_secs.to_string(),
                self.s.month_ttl_secs.to_string(),
                day.clone(),
                day_start.to_string(),
                r.window_end_ms.to_string(),
            ];
            for u in &cost.usage {
                let key = u.key();
                let cost = key_rates(&self.table, &key).map(|rates| cost_of(&u.counts, &rates));
                let booking = Booking {
                    series: keyed.key.clone(),
                    tenant: tenant.to_owned(),
                    feature: feature.to_owned(),
                    price: key,
                };
                args.push(booking.field());
                args.push(u.model.clone());
                args.extend(u.counts.iter().map(i64::to_string));
                args.push(cost_text(cost));
            }
            let mut call = self.apply.prepare_invoke();
            for k in &keys {
                call.key(k);
            }
            for a in &args {
                call.arg(a);
            }
            let _: i64 = call.invoke(con)?;
            touched.insert((tenant.to_owned(), feature.to_owned(), day, month));
        }
        self.check_budgets(con, &touched)?;
        self.relay(con)
    }

    /// Re-prices if the table changed (or at start-up), then relays pending events.
    pub fn idle(&mut self, con: &mut Connection) -> RedisResult<()> {
        self.refresh(con)?;
        self.relay(con)
    }

    fn refresh(&mut self, con: &mut Connection) -> RedisResult<()> {
        let (version, table) = self.s.board.current();
        if self.version == Some(version) {
            return Ok(());
        }
        self.table = table;
        let touched = self.reprice(con)?;
        self.version = Some(version);
        self.check_budgets(con, &touched)
    }

    /// Recomputes every cost of the current month under `self.table`; see the module doc.
    fn reprice(
        &mut self,
        con: &mut Connection,
    ) -> RedisResult<BTreeSet<(String, String, String, String)>> {
        let mut touched = BTreeSet::new();
        let clock: Option<u64> = ::redis::cmd("GET")
            .arg(self.key("spend:clock"))
            .query(con)?;
        let Some(clock) = clock else {
            return Ok(touched);
        };
        let (_, current_month, _) = self.s.calendar.period(clock.saturating_sub(1));
        let days: Vec<String> = ::redis::cmd("ZRANGE")
            .arg(self.key("spend:days"))
            .arg(0)
            .arg(-1)
            .query(con)?;
        let mut changed = 0usize;
        for day in days.into_iter().filter(|d| d.starts_with(&current_month)) {
            let month = current_month.clone();
            let usage: HashMap<String, i64> = ::redis::cmd("HGETALL")
                .arg(self.key(&format!("spend:usage:{day}")))
                .query(con)?;
            let costs: HashMap<String, String> = ::redis::cmd("HGETALL")
                .arg(self.key(&format!("spend:cost:{day}")))
                .query(con)?;
            let mut counts: BTreeMap<String, [i64; 6]> = BTreeMap::new();
            for (field, n) in usage {
                let Some((ukey, class)) = field.rsplit_once('|') else {
                    continue;
                };
                let Some(i) = TokenClass::ALL.iter().position(|c| c.name() == class) else {
                    continue;
                };
                counts.entry(ukey.to_owned()).or_default()[i] += n;
            }
            let mut pipe = ::redis::pipe();
            pipe.atomic();
            let mut deltas: BTreeMap<(&str, String, String), i128> = BTreeMap::new();
            for (ukey, c) in &counts {
                let Ok(booking) = serde_json::from_str::<Booking>(ukey) else {
                    tracing::warn!(
                        day,
                        "spend: a usage entry not written by this version is left as is"
                    );
                    continue;
                };
                let key = &booking.price;
                let new = key_rates(&self.table, key).map(|rates| cost_of(c, &rates));
                let old = costs.get(ukey).map(String::as_str);
                let old_cost: Option<i128> = match old {
                    None | Some("u") => None,
                    Some(v) => Some(v.parse().unwrap_or(0)),
                };
                if old_cost.is_none() && new.is_none() {
                    continue;
                }
                if old_cost == new {
                    continue;
                }
                changed += 1;
                pipe.hset(self.key(&format!("spend:cost:{day}")), ukey, cost_text(new))
                    .ignore();
                let delta = new.unwrap_or(0) - old_cost.unwrap_or(0);
                let (tenant, feature) = (booking.tenant.as_str(), booking.feature.as_str());
                for (k, field) in [
                    ("tenant:day", tenant),
                    ("tenant:month", tenant),
                    ("model:day", &*key.model),
                    ("feature:day", feature),
                    ("feature:month", feature),
                ] {
                    let period = if k.ends_with("month") {
                        month.clone()
                    } else {
                        day.clone()
                    };
                    *deltas.entry((k, period, field.to_owned())).or_default() += delta;
                }
                // A model that gains a price leaves `unpriced`; one that loses it joins it.
                let calls = i128::from(c[0]);
                let unpriced = match (old_cost, new) {
                    (None, Some(_)) => -calls,
                    (Some(_), None) => calls,
                    _ => 0,
                };
                if unpriced != 0 {
                    pipe.hincr(
                        self.key(&format!("spend:unpriced:day:{day}")),
                        &*key.model,
                        unpriced.to_string(),
                    )
                    .ignore();
                }
                touched.insert((
                    tenant.to_owned(),
                    feature.to_owned(),
                    day.clone(),
                    month.clone(),
                ));
            }
            for ((k, period, field), delta) in deltas {
                if delta != 0 {
                    pipe.hincr(
                        self.key(&format!("spend:{k}:{period}")),
                        field,
                        delta.to_string(),
                    )
                    .ignore();
                }
            }
            let _: Value = pipe.query(con)?;
        }
        tracing::info!(
            month = %current_month,
            entries = changed,
            "spend re-priced under the current price table"
        );
        Ok(touched)
    }

    fn check_budgets(
        &self,
        con: &mut Connection,
        touched: &BTreeSet<(String, String, String, String)>,
    ) -> RedisResult<()> {
        if self.s.budgets.is_empty() {
            return Ok(());
        }
        let channel = self.key("budget");
        for (tenant, feature, day, month) in touched {
            for line in &self.s.budgets {
                let name = if line.scope == "tenant" {
                    tenant
                } else {
                    feature
                };
                if &line.name != name {
                    continue;
                }
                let label = if line.period == "day" { day } else { month };
                let total = self.key(&format!("spend:{}:{}:{label}", line.scope, line.period));
                let mut call = self.budget.prepare_invoke();
                call.key(&total)
                    .key(self.key("budget:fired"))
                    .key(self.key("budget:events"))
                    .arg(name)
                    .arg(format!(
                        "budget:{}:{name}:{}:{label}",
                        line.scope, line.period
                    ))
                    .arg(line.scope)
                    .arg(line.period)
                    .arg(label)
                    .arg(&line.amount_usd)
                    .arg(line.amount_pico)
                    .arg(&channel);
                for (t, fire) in &line.thresholds {
                    call.arg(t).arg(fire);
                }
                let fired: Vec<String> = call.invoke(con)?;
                for id in fired {
                    Counters::inc(&self.s.counters.budget_events);
                    tracing::info!(event = %id, "budget threshold reached");
                }
            }
        }
        Ok(())
    }

    /// Sends the events after the relay cursor to the alerts topic, then moves the cursor.
    fn relay(&mut self, con: &mut Connection) -> RedisResult<()> {
        let Some(relay) = &self.s.relay else {
            return Ok(());
        };
        let cursor: Option<String> = ::redis::cmd("GET")
            .arg(self.key("budget:relayed"))
            .query(con)?;
        let start = cursor.map_or_else(|| "-".to_owned(), |c| format!("({c}"));
        let entries: Vec<(String, Vec<String>)> = ::redis::cmd("XRANGE")
            .arg(self.key("budget:events"))
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(500)
            .query(con)?;
        if entries.is_empty() {
            return Ok(());
        }
        let failed_before = relay.producer.context().failed.load(Ordering::Relaxed);
        for (_, fields) in &entries {
            let field = |name: &str| {
                fields
                    .chunks(2)
                    .find(|kv| kv[0] == name)
                    .and_then(|kv| kv.get(1))
            };
            let (Some(key), Some(event)) = (field("id"), field("event")) else {
                continue;
            };
            let record = BaseRecord::to(&relay.topic).key(key).payload(event);
            if let Err((e, _)) = relay.producer.send(record) {
                tracing::warn!(error = %e, "budget event relay failed; will retry");
                return Ok(());
            }
        }
        let flushed = relay.producer.flush(Duration::from_secs(10));
        if flushed.is_err()
            || relay.producer.context().failed.load(Ordering::Relaxed) != failed_before
        {
            // Nothing is recorded: the whole range is sent again next time (same keys and ids).
            tracing::warn!("budget events not acknowledged by the broker; will retry");
            return Ok(());
        }
        self.s
            .counters
            .budget_events_relayed
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        let last = entries.last().map(|(id, _)| id.clone());
        if let Some(id) = last {
            let _: () = ::redis::cmd("SET")
                .arg(self.key("budget:relayed"))
                .arg(id)
                .query(con)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_booking_round_trips_whatever_its_values_hold() {
        let booking = Booking {
            series: r"provider=openai,model=m\,tenant\=victim|x,tenant=attacker,feature=f".into(),
            tenant: "attacker".into(),
            feature: "f|\"}".into(),
            price: PriceKey {
                provider: Some("a/b@c".into()),
                model: "ft:gpt-4o/x@1|2".into(),
                tier: 200_000,
            },
        };
        let field = format!("{}|output", booking.field());
        let (ukey, class) = field.rsplit_once('|').unwrap();
        assert_eq!(class, "output");
        assert_eq!(serde_json::from_str::<Booking>(ukey).unwrap(), booking);
    }
}
