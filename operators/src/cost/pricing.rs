//! Pricing: the windows' token parts joined with the live price table, so that cost follows
//! the table — including when the table changes while windows are still open.
//!
//! Cost is linear in tokens: a window's cost is `Σ tokens(key, class) · rate(key, class)` over
//! the [`PriceKey`]s and [`TokenClass`]es of its calls (the formula of [`crate::cost`], with the
//! uncached input and the non-reasoning output already separated by
//! [`crate::metrics::facts::CostKeying`]). The windows carry token sums per (key, class) as
//! [`Part::Tokens`]; [`priced`] joins them with a collection of `(PriceKey, Option<Rates>)`
//! and adds [`Part::Cost`] parts (difference = tokens · rate, pico-USD) and [`Part::Unpriced`]
//! parts (difference = calls of a key that has no price).
//!
//! # Time contract of [`price_table`]
//! - Input: the keys in use (a collection whose difference is a count of calls).
//! - Output: for every key whose count is positive, `(key, rates under the current table)`
//!   with difference 1; inserted at the time the key's count becomes positive, retracted at
//!   the time it drops to zero.
//! - When the [`PriceBoard`] publishes a new table, every live key whose rates change is
//!   retracted and re-inserted with its new rates at the operator's *current* time: the
//!   earliest time its input may still produce (its input frontier). Joined downstream, this
//!   retracts the old cost and inserts the new one for every window whose token parts are
//!   still in the join's arrangement — the windows not yet retracted by [`crate::metrics::windows`] —
//!   and every window that closes afterwards is priced by the new table.
//! - Capabilities: one per pending input time, plus one held at the input frontier so a
//!   price change can be emitted; all are released when the input is exhausted.
//! - State: per key, its count and the rates last emitted; released when the count is zero.
//! - It re-activates itself every [`PriceBoard::poll`] to notice a new table without input.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use differential_dataflow::{AsCollection, VecCollection};
use rustc_hash::FxHashMap as HashMap;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use crate::cost::{PriceTable, Rates};
use crate::metrics::facts::{PriceKey, TokenClass};
use crate::metrics::panes::Part;
use crate::metrics::views::WindowKey;

/// The current price table, shared by every worker and replaced as a whole when the
/// configuration's price files change.
#[derive(Debug)]
pub struct PriceBoard {
    version: AtomicU64,
    table: RwLock<Arc<PriceTable>>,
    poll: Duration,
}

impl PriceBoard {
    /// A board holding `table` (version 0); operators look for a newer table every `poll`.
    pub fn new(table: PriceTable, poll: Duration) -> Arc<Self> {
        Arc::new(Self {
            version: AtomicU64::new(0),
            table: RwLock::new(Arc::new(table)),
            poll,
        })
    }

    /// Replaces the table; returns its version.
    pub fn publish(&self, table: PriceTable) -> u64 {
        let mut slot = self.table.write().expect("price board lock");
        *slot = Arc::new(table);
        self.version.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The current table and its version.
    pub fn current(&self) -> (u64, Arc<PriceTable>) {
        let table = self.table.read().expect("price board lock");
        (self.version.load(Ordering::Acquire), table.clone())
    }

    /// The version of the current table.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// How often operators look for a new table.
    pub fn poll(&self) -> Duration {
        self.poll
    }
}

/// The rates of `key` under `table`, `None` when its model has no price.
pub fn key_rates(table: &PriceTable, key: &PriceKey) -> Option<Rates> {
    table
        .price(key.provider.as_deref(), &key.model)
        .map(|p| p.rates(key.representative_prompt()))
}

/// The rate of `class` in pico-USD per token (`None` for [`TokenClass::Calls`]).
pub fn rate_of(rates: &Rates, class: TokenClass) -> Option<u64> {
    match class {
        TokenClass::Calls => None,
        TokenClass::Input => Some(rates.input),
        TokenClass::CacheRead => Some(rates.cache_read),
        TokenClass::CacheWrite => Some(rates.cache_write),
        TokenClass::Output => Some(rates.output),
        TokenClass::Reasoning => Some(rates.reasoning),
    }
}

/// The exact cost of `counts` (per [`TokenClass::ALL`]) at `rates`, pico-USD, in `i128` so no
/// sum of windows can overflow it.
pub fn cost_of(counts: &[i64; 6], rates: &Rates) -> i128 {
    TokenClass::ALL
        .into_iter()
        .zip(counts)
        .filter_map(|(class, n)| rate_of(rates, class).map(|r| i128::from(*n) * i128::from(r)))
        .sum()
}

/// Updates of one input time, with a capability for it.
type Pending = (Capability<u64>, Vec<(PriceKey, i64)>);

fn key_hash(key: &PriceKey) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    key.hash(&mut h);
    h.finish()
}

/// The live price of every key in use; see the module's time contract.
pub fn price_table<'scope>(
    keys: VecCollection<'scope, u64, PriceKey, i64>,
    board: Arc<PriceBoard>,
) -> VecCollection<'scope, u64, (PriceKey, Option<Rates>), i64> {
    let scope = keys.inner.scope();
    keys.inner
        .unary_frontier(
            Exchange::new(|(k, _, _): &(PriceKey, u64, i64)| key_hash(k)),
            "PriceTable",
            move |cap, info| {
                let activator = scope.activator_for(info.address);
                // Held at the input frontier: a new table is emitted at this capability's time.
                let mut held: Option<Capability<u64>> = Some(cap);
                let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
                let mut counts: HashMap<PriceKey, i64> = HashMap::default();
                let mut live: HashMap<PriceKey, Option<Rates>> = HashMap::default();
                let (mut version, mut table) = board.current();
                move |(input, frontier), output| {
                    input.for_each(|cap, data| {
                        for (key, time, diff) in data.drain(..) {
                            pending
                                .entry(time)
                                .or_insert_with(|| (cap.delayed(&time, 0), Vec::new()))
                                .1
                                .push((key, diff));
                        }
                    });
                    if board.version() != version
                        && let Some(now) = held.as_ref()
                    {
                        (version, table) = board.current();
                        let mut session = output.session(now);
                        for (key, old) in live.iter_mut() {
                            let new = key_rates(&table, key);
                            if new != *old {
                                session.give(((key.clone(), *old), *now.time(), -1));
                                session.give(((key.clone(), new), *now.time(), 1));
                                *old = new;
                            }
                        }
                    }
                    // Complete times, in order: their keys' counts are final.
                    while let Some(entry) = pending.first_entry() {
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        let (time, (cap, updates)) = entry.remove_entry();
                        let mut touched = Vec::with_capacity(updates.len());
                        for (key, diff) in updates {
                            *counts.entry(key.clone()).or_default() += diff;
                            touched.push(key);
                        }
                        touched.sort();
                        touched.dedup();
                        let mut session = output.session(&cap);
                        for key in touched {
                            let count = *counts.get(&key).unwrap_or(&0);
                            match (count > 0, live.contains_key(&key)) {
                                (true, false) => {
                                    let rates = key_rates(&table, &key);
                                    session.give(((key.clone(), rates), time, 1));
                                    live.insert(key, rates);
                                }
                                (false, true) => {
                                    let rates = live.remove(&key).expect("live key");
                                    session.give(((key.clone(), rates), time, -1));
                                    counts.remove(&key);
                                }
                                (false, false) => {
                                    counts.remove(&key);
                                }
                                (true, true) => {}
                            }
                        }
                    }
                    // The held capability follows the input frontier; without input, no
                    // window can change any more and it is released.
                    match frontier.frontier().first() {
                        Some(t) => {
                            if let Some(h) = held.as_mut()
                                && h.time() < t
                            {
                                h.downgrade(t);
                            }
                            activator.activate_after(board.poll());
                        }
                        None => held = None,
                    }
                }
            },
        )
        .as_collection()
}

/// The windows' parts plus their cost: [`Part::Cost`] per class and [`Part::Unpriced`] per
/// model, from the live [`price_table`].
pub fn priced<'scope>(
    parts: VecCollection<'scope, u64, (WindowKey, Part), i64>,
    board: Arc<PriceBoard>,
) -> VecCollection<'scope, u64, (WindowKey, Part), i64> {
    let tokens = parts.clone().flat_map(|(wk, part)| match part {
        Part::Tokens(key, class) => Some((key, (wk, class))),
        _ => None,
    });
    let keys = tokens
        .clone()
        .flat_map(|(key, (_, class))| (class == TokenClass::Calls).then_some(key));
    let prices = price_table(keys, board);
    let costs = tokens
        .join_map(prices, |key, (wk, class), rates| {
            (wk.clone(), key.model.clone(), *class, *rates)
        })
        .explode(|(wk, model, class, rates)| match rates {
            Some(rates) => rate_of(&rates, class).map(|rate| {
                (
                    (wk, Part::Cost(class)),
                    i64::try_from(rate).unwrap_or(i64::MAX),
                )
            }),
            None => (class == TokenClass::Calls).then_some(((wk, Part::Unpriced(model)), 1)),
        });
    parts.concat(costs)
}
