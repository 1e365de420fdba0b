//! The alerts operator: composite rules ([`crate::alerts::rules`]) evaluated over event time, one
//! Prometheus-style lifecycle per (rule, group), one [`AlertEvent`] per transition.
//!
//! # Design
//! The operator reads the *panes* of the windows stage, i.e. the view whose length is the pane
//! width, and builds every window a rule needs (its view's window, a longer trailing span
//! `over="1h"`, or an earlier one `offset="1d"`) by adding up pane parts. Parts are exact
//! integers (counts, sums, DDSketch bucket counts), so a window made of panes equals the window
//! the windows stage builds for the view, a group made of series is the exact merge of their
//! buckets (percentiles of merged groups are read off merged buckets, never averaged), and the
//! views need no extra lengths for baselines. The price is state: per (rule, group) the pane
//! parts of the last [`Rule::history_ms`] (e.g. 1 day + 5 min for `offset="1d"` over a 5 min
//! view: 1,445 panes of one minute).
//!
//! # Lifecycle (as Prometheus `for` / `keep_firing_for`)
//! At every pane end `E` a group is evaluated (see [`Rule::evaluate`]); with `holds`:
//! - inactive → pending at `E` (`active_at = E`), or straight to firing when `for = 0`;
//! - pending → firing at the first `E` with `E − active_at ≥ for` (`starts_at = E`); pending
//!   and not holding → inactive, reported as [`AlertKind::Cancelled`];
//! - firing and not holding since `F` (the first false evaluation) → resolved at the first `E`
//!   with `E − F ≥ keep_firing_for` (`ends_at = E`); holding again before that resets `F`.
//!
//! A group without data in a window evaluates false (fewer than `min_requests ≥ 1` requests).
//!
//! # Determinism and replay
//! Evaluations happen at event time (pane ends), groups are evaluated in a fixed order, and
//! every value is computed from exact integer parts, so the same spans give the same events
//! with the same ids (`{key}@{active_at}/{kind}`) however they are batched or spread over
//! workers. After a crash, a replay whose first pane ends at `P` computes the same
//! evaluations as the original run at every `E ≥ P + history` ([`Rules::history_ms`]);
//! before that its windows and baselines lack data. Its events are then the same as the
//! original's from the first such `E` at which the group is inactive in both runs; an episode
//! already pending or firing at that point cannot be reconstructed from the replayed spans
//! alone, since the lifecycle state ([`Phase`]) is not persisted here. The pipeline must
//! therefore replay from far enough back (or persist the phases); re-emitted events keep
//! their ids, so a sink keyed by id absorbs the duplicates.
//!
//! # Time contract
//! - Input: the collection of [`crate::metrics::windows::windows`]. Only insertions of the pane-width
//!   view are read (an update at time `E` of the window ending at `E`); retractions (at
//!   `E + w`) and other views are dropped before the exchange, and each input batch is merged
//!   per (rule, group, pane end, part) first (a stateless `AlertGroups` step at the same times).
//! - Exchange: by (rule, group), so each lifecycle lives on one worker.
//! - Capabilities: one at each pane end `E` for which panes were received, and while any group
//!   has state, one at the next pane end to step through, so that a pending or firing group
//!   without data is still evaluated (as false) at every pane end.
//! - Output: when the input frontier passes `E`, every group with state is evaluated at `E` in
//!   time order and its transitions are emitted at time `E`. Nothing is retracted: the output
//!   is an append-only stream of events, the same for the same input however it was batched.
//! - State: per (rule, group) the merged pane parts of the last `history_ms` and the lifecycle
//!   phase; released once the group is inactive and has no pane left in its history.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use crate::alerts::rules::{Evaluation, Frame, Rule, Rules};
use crate::metrics::WindowMetrics;
use crate::metrics::facts::Series;
use crate::metrics::panes::{Exemplar, ExemplarKind, Part};
use crate::metrics::views::WindowKey;

/// At most this many exemplars of each kind in an event.
pub const EXEMPLARS_PER_ALERT: usize = crate::metrics::panes::EXEMPLARS_PER_PANE;

/// Which transition an event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The condition started to hold; the alert fires if it keeps holding for `for`.
    Pending,
    /// A pending alert whose condition stopped holding before `for` elapsed.
    Cancelled,
    /// The alert fires.
    Firing,
    /// A firing alert whose condition has been false for `keep_firing_for`.
    Resolved,
}

impl AlertKind {
    /// The name used in event ids.
    pub fn name(&self) -> &'static str {
        match self {
            AlertKind::Pending => "pending",
            AlertKind::Cancelled => "cancelled",
            AlertKind::Firing => "firing",
            AlertKind::Resolved => "resolved",
        }
    }
}

/// The window an event's values were read over.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertWindow {
    /// The rule's view.
    pub view: String,
    /// Start, ms since the epoch (inclusive).
    pub start_ms: u64,
    /// End, ms since the epoch (exclusive) = the evaluation time.
    pub end_ms: u64,
}

/// The value of one term of the rule's condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TermValue {
    /// The term, canonical, e.g. `p95(latency_ms, over="1h")`.
    pub term: String,
    /// Its value; `None` when the window has no data for it.
    pub value: Option<f64>,
}

/// One lifecycle transition of one (rule, group).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Deterministic and unique: `{key}@{active_at_ms}/{kind}`. A replay derives the same ids,
    /// so a sink can write idempotently.
    pub id: String,
    /// The alert's identity, Prometheus style: `rule{label="value",…}` (labels in `by` order).
    pub key: String,
    /// The transition.
    pub kind: AlertKind,
    /// The rule's name.
    pub rule: String,
    /// The rule's severity.
    pub severity: String,
    /// The group: the rule's `by` labels and their values.
    pub labels: BTreeMap<String, String>,
    /// When the condition started to hold (the start of pending), ms.
    pub active_at_ms: u64,
    /// When the alert started firing; `None` for pending and cancelled.
    pub starts_at_ms: Option<u64>,
    /// When it resolved (or was cancelled); `None` otherwise.
    pub ends_at_ms: Option<u64>,
    /// The window of the evaluation that made the transition.
    pub window: AlertWindow,
    /// Requests in that window.
    pub requests: i64,
    /// The value of every term of the condition at that evaluation.
    pub terms: Vec<TermValue>,
    /// Rendered annotations.
    pub annotations: BTreeMap<String, String>,
    /// The slowest and the slowest errored spans of the window, at most
    /// [`EXEMPLARS_PER_ALERT`] of each, slowest first.
    pub exemplars: Vec<Exemplar>,
}

/// The key of an alert: `rule{label="value",…}`.
pub fn alert_key(rule: &Rule, group: &Series) -> String {
    let labels: Vec<String> = rule
        .by
        .iter()
        .zip(group.values())
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{}{{{}}}", rule.name, labels.join(","))
}

/// Where a (rule, group) is in its lifecycle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// Not holding (or never evaluated).
    #[default]
    Inactive,
    /// Holding since `active_at`, not yet for `for`.
    Pending {
        /// First evaluation that held.
        active_at: u64,
    },
    /// Firing since `starts_at`.
    Firing {
        /// First evaluation that held.
        active_at: u64,
        /// The evaluation that fired.
        starts_at: u64,
        /// The first of the current run of false evaluations, if the last one was false.
        false_since: Option<u64>,
    },
}

/// A transition made by [`Phase::step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Which.
    pub kind: AlertKind,
    /// The episode's `active_at`.
    pub active_at: u64,
    /// When it fired, if it did.
    pub starts_at: Option<u64>,
    /// When it ended, for cancelled and resolved.
    pub ends_at: Option<u64>,
}

impl Phase {
    /// Advances the lifecycle by the evaluation at `at_ms`; evaluations must come in time
    /// order. Returns the transition, if any.
    pub fn step(
        &mut self,
        at_ms: u64,
        holds: bool,
        for_ms: u64,
        keep_firing_for_ms: u64,
    ) -> Option<Transition> {
        let t = |kind, active_at, starts_at, ends_at| {
            Some(Transition {
                kind,
                active_at,
                starts_at,
                ends_at,
            })
        };
        match (*self, holds) {
            (Phase::Inactive, false) => None,
            (Phase::Inactive, true) if for_ms == 0 => {
                *self = Phase::Firing {
                    active_at: at_ms,
                    starts_at: at_ms,
                    false_since: None,
                };
                t(AlertKind::Firing, at_ms, Some(at_ms), None)
            }
            (Phase::Inactive, true) => {
                *self = Phase::Pending { active_at: at_ms };
                t(AlertKind::Pending, at_ms, None, None)
            }
            (Phase::Pending { active_at }, true) if at_ms - active_at >= for_ms => {
                *self = Phase::Firing {
                    active_at,
                    starts_at: at_ms,
                    false_since: None,
                };
                t(AlertKind::Firing, active_at, Some(at_ms), None)
            }
            (Phase::Pending { .. }, true) => None,
            (Phase::Pending { active_at }, false) => {
                *self = Phase::Inactive;
                t(AlertKind::Cancelled, active_at, None, Some(at_ms))
            }
            (
                Phase::Firing {
                    active_at,
                    starts_at,
                    ..
                },
                true,
            ) => {
                *self = Phase::Firing {
                    active_at,
                    starts_at,
                    false_since: None,
                };
                None
            }
            (
                Phase::Firing {
                    active_at,
                    starts_at,
                    false_since,
                },
                false,
            ) => {
                let since = false_since.unwrap_or(at_ms);
                if at_ms - since >= keep_firing_for_ms {
                    *self = Phase::Inactive;
                    t(AlertKind::Resolved, active_at, Some(starts_at), Some(at_ms))
                } else {
                    *self = Phase::Firing {
                        active_at,
                        starts_at,
                        false_since: Some(since),
                    };
                    None
                }
            }
        }
    }
}

/// Builds the event for `transition` of `rule` and `group`, evaluated at `at_ms`.
pub fn alert_event(
    rule: &Rule,
    group: &Series,
    at_ms: u64,
    transition: Transition,
    evaluation: &Evaluation,
    exemplars: Vec<Exemplar>,
) -> AlertEvent {
    let key = alert_key(rule, group);
    AlertEvent {
        id: format!("{key}@{}/{}", transition.active_at, transition.kind.name()),
        key,
        kind: transition.kind,
        rule: rule.name.clone(),
        severity: rule.severity.clone(),
        labels: rule.labels(group),
        active_at_ms: transition.active_at,
        starts_at_ms: transition.starts_at,
        ends_at_ms: transition.ends_at,
        window: AlertWindow {
            view: rule.view.clone(),
            start_ms: at_ms.saturating_sub(rule.view_ms),
            end_ms: at_ms,
        },
        requests: evaluation.requests,
        terms: evaluation
            .terms
            .iter()
            .map(|(term, value)| TermValue {
                term: term.clone(),
                value: *value,
            })
            .collect(),
        annotations: rule.render_annotations(group, evaluation),
        exemplars,
    }
}

/// The examples to show: of each kind, the first [`EXEMPLARS_PER_ALERT`] in [`Exemplar`]
/// order (slowest first), without duplicates.
pub fn pick_exemplars<'a>(candidates: impl IntoIterator<Item = &'a Exemplar>) -> Vec<Exemplar> {
    let mut all: Vec<&Exemplar> = candidates.into_iter().collect();
    all.sort();
    all.dedup();
    let mut out = Vec::new();
    for kind in [ExemplarKind::Slowest, ExemplarKind::Errored] {
        out.extend(
            all.iter()
                .filter(|e| e.kind == kind)
                .take(EXEMPLARS_PER_ALERT)
                .map(|e| (*e).clone()),
        );
    }
    out
}

/// A (rule index, group) pair: one lifecycle.
type GroupKey = (u32, Series);

/// One batch's parts of one group, by (pane end, part).
type BatchParts = HashMap<(u64, Part), i64>;

/// The merged parts of one pane of one group.
type PaneParts = BTreeMap<Part, i64>;

#[derive(Default)]
struct GroupState {
    /// Pane end → merged parts, within the rule's history (plus one pane, so that a frame's
    /// running sum can subtract the pane that leaves it).
    panes: BTreeMap<u64, PaneParts>,
    phase: Phase,
    /// Per frame, the merged parts of its window at the last evaluation (by window end): the
    /// next evaluation, one pane later, adds the pane that enters and subtracts the one that
    /// leaves instead of merging every pane again.
    running: HashMap<Frame, (u64, PaneParts)>,
}

impl GroupState {
    /// The panes of the window `[start, end)`: those ending in `(start, end]`.
    fn panes_of(&self, start: u64, end: u64) -> impl Iterator<Item = &PaneParts> {
        // An empty window (`start == end`, before the epoch) has no panes.
        let panes = if start < end {
            self.panes.range(start + 1..=end)
        } else {
            self.panes.range(0..0)
        };
        panes.map(|(_, p)| p)
    }

    /// The merged parts of the panes in `(start, end]` by pane end, i.e. the window `[start, end)`
    /// of `frame`, `w` after its previous evaluation when its running sum can be advanced.
    ///
    /// Panes are complete when evaluated (the frontier has passed their end), so a window one
    /// pane later differs from the previous one by exactly the pane ending at `end` (in) and the
    /// pane ending at `start` (out); parts are exact integers, so the running sum equals the
    /// merge of the window's panes, and parts that reach zero are removed as a merge would
    /// never have made them.
    fn window(&mut self, frame: Frame, start: u64, end: u64, w: u64) -> WindowMetrics {
        let advance =
            matches!(self.running.get(&frame), Some((last, _)) if *last + w == end && start >= w);
        if advance {
            let (last, merged) = self.running.get_mut(&frame).expect("checked");
            let mut apply = |parts: &PaneParts, sign: i64| {
                for (part, n) in parts {
                    let slot = merged.entry(part.clone()).or_default();
                    *slot += sign * n;
                    if *slot == 0 {
                        merged.remove(part);
                    }
                }
            };
            if let Some(p) = self.panes.get(&end) {
                apply(p, 1);
            }
            if let Some(p) = self.panes.get(&start) {
                apply(p, -1);
            }
            *last = end;
        } else {
            let mut merged: PaneParts = BTreeMap::new();
            for parts in self.panes_of(start, end) {
                for (part, n) in parts {
                    *merged.entry(part.clone()).or_default() += n;
                }
            }
            merged.retain(|_, n| *n != 0);
            self.running.insert(frame, (end, merged));
        }
        let merged = &self.running[&frame].1;
        WindowMetrics::from_parts(merged.iter().map(|(p, n)| (p, *n)))
    }

    fn exemplars(&self, start: u64, end: u64) -> Vec<Exemplar> {
        pick_exemplars(self.panes_of(start, end).flat_map(|parts| {
            parts.keys().filter_map(|p| match p {
                Part::Exemplar(e) => Some(e),
                _ => None,
            })
        }))
    }
}

/// Evaluates `rule` for one group at `at_ms` and advances its lifecycle.
fn evaluate(
    rule: &Rule,
    group: &Series,
    state: &mut GroupState,
    at_ms: u64,
    w: u64,
) -> Option<AlertEvent> {
    let main = rule.main_frame();
    let (start, end) = main
        .at(at_ms)
        .expect("the main frame ends at the evaluation time");
    if state.phase == Phase::Inactive && state.panes_of(start, end).next().is_none() {
        // No data in the window: false, and false does not move an inactive lifecycle.
        return None;
    }
    let empty = WindowMetrics::default();
    let windows: HashMap<Frame, WindowMetrics> = rule
        .frames()
        .iter()
        .filter_map(|f| f.at(at_ms).map(|(s, e)| (*f, state.window(*f, s, e, w))))
        .collect();
    let evaluation = rule.evaluate(|f| windows.get(&f).unwrap_or(&empty));
    let transition = state.phase.step(
        at_ms,
        evaluation.holds,
        rule.for_ms,
        rule.keep_firing_for_ms,
    )?;
    Some(alert_event(
        rule,
        group,
        at_ms,
        transition,
        &evaluation,
        state.exemplars(start, end),
    ))
}

fn group_hash(rule: u32, group: &Series) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    rule.hash(&mut h);
    group.hash(&mut h);
    h.finish()
}

/// Runs `rules` over the windows (from [`crate::metrics::windows::windows`] with the views the rules
/// were checked against); see the module's time contract.
///
/// # Examples
/// ```
/// use glassbox_operators::alerts::alerts;
/// use glassbox_operators::alerts::rules::Rules;
/// use glassbox_operators::metrics::windows::windows;
/// use glassbox_operators::{Dimensions, SpanFacts, Views, metrics_of_windows};
/// use timely::dataflow::operators::vec::Input;
///
/// let views = Views::standard(60_000, 300_000);
/// let text = "[[rule]]\nname = \"slow\"\nview = \"sliding_5m\"\nwhen = \"p95(latency_ms) > 3000\"";
/// let rules = Rules::parse(text, &Dimensions::default(), &views).expect("valid rules");
/// timely::execute_directly(move |worker| {
///     worker.dataflow::<u64, _, _>(|scope| {
///         let (_input, facts) = scope.new_input::<SpanFacts>();
///         // Build the windows once; the metrics and the alerts both read them.
///         let windows = windows(facts, &views);
///         let _metrics = metrics_of_windows(windows.clone());
///         let _events = alerts(windows, &rules); // a stream of AlertEvent, at window ends
///     });
/// });
/// ```
pub fn alerts<'scope>(
    windows: VecCollection<'scope, u64, (WindowKey, Part), i64>,
    rules: &Rules,
) -> StreamVec<'scope, u64, AlertEvent> {
    let rules = Arc::new(rules.clone());
    let w = rules.pane_ms;
    let pane_view = rules.pane_view;
    let routing = rules.clone();
    // Which (rule, group) each series feeds; a series is matched once, not once per part.
    let mut routes: HashMap<Series, Vec<GroupKey>> = HashMap::default();
    windows
        .inner
        .unary(Pipeline, "AlertGroups", move |_cap, _info| {
            move |input, output| {
                input.for_each_stamp(|cap, data| {
                    // Merged per (rule, group, pane end, part) before the exchange: a group of
                    // many series crosses it once per part, not once per series and part.
                    // `slots` holds one map per (rule, group) of the batch; the windows emit a
                    // series' parts together, so its slots are looked up once per run of parts.
                    let mut slots: Vec<(GroupKey, BatchParts)> = Vec::new();
                    let mut slot_of: HashMap<GroupKey, usize> = HashMap::default();
                    let mut current: Option<(Series, Vec<usize>)> = None;
                    for batch in data {
                        for ((key, part), time, n) in batch.drain(..) {
                            if key.view != pane_view || key.end_ms != time {
                                continue;
                            }
                            // Token sums by price key feed the pricing join, not any figure
                            // (`cost_usd` reads the `Cost` parts): not carried into the state.
                            if matches!(part, Part::Tokens(..) | Part::Unpriced(_)) {
                                continue;
                            }
                            if current.as_ref().is_none_or(|(s, _)| *s != key.series) {
                                if routes.len() > 100_000 {
                                    routes.clear();
                                }
                                let targets =
                                    routes.entry(key.series.clone()).or_insert_with(|| {
                                        routing
                                            .rules
                                            .iter()
                                            .enumerate()
                                            .filter_map(|(i, r)| {
                                                r.group_of(&key.series).map(|g| (i as u32, g))
                                            })
                                            .collect()
                                    });
                                let indices = targets
                                    .iter()
                                    .map(|target| {
                                        *slot_of.entry(target.clone()).or_insert_with(|| {
                                            slots.push((target.clone(), HashMap::default()));
                                            slots.len() - 1
                                        })
                                    })
                                    .collect();
                                current = Some((key.series.clone(), indices));
                            }
                            let (_, indices) = current.as_ref().expect("set above");
                            for &i in indices {
                                *slots[i].1.entry((key.end_ms, part.clone())).or_default() += n;
                            }
                        }
                    }
                    let mut out: Vec<_> = slots
                        .into_iter()
                        .flat_map(|(group, parts)| {
                            parts
                                .into_iter()
                                .filter(|(_, n)| *n != 0)
                                .map(move |((end, part), n)| (group.clone(), end, part, n))
                        })
                        .collect();
                    if !out.is_empty() {
                        output.session(&cap).give_container(&mut out);
                    }
                });
            }
        })
        .unary_frontier(
            Exchange::new(|((rule, group), _, _, _): &(GroupKey, u64, Part, i64)| {
                group_hash(*rule, group)
            }),
            "Alerts",
            move |_cap, _info| {
                // Pane ends with received panes, each with its capability.
                let mut open: BTreeMap<u64, Capability<u64>> = BTreeMap::new();
                let mut groups: HashMap<GroupKey, GroupState> = HashMap::default();
                // The next pane end to step through while `groups` holds state.
                let mut step: Option<Capability<u64>> = None;
                move |(input, frontier), output| {
                    input.for_each(|cap, data| {
                        for ((rule, group), end, part, n) in data.drain(..) {
                            // `end` is the update's time, at or after the message's capability.
                            open.entry(end).or_insert_with(|| cap.delayed(&end, 0));
                            *groups
                                .entry((rule, group))
                                .or_default()
                                .panes
                                .entry(end)
                                .or_default()
                                .entry(part)
                                .or_default() += n;
                        }
                    });
                    loop {
                        let next = match (open.first_key_value(), &step) {
                            (Some((e, _)), Some(c)) => (*e).min(*c.time()),
                            (Some((e, _)), None) => *e,
                            (None, Some(c)) => *c.time(),
                            (None, None) => break,
                        };
                        // Every pane ending at or before `next` is in once the frontier passed it.
                        if frontier.less_equal(&next) {
                            break;
                        }
                        let cap = match open.first_key_value() {
                            Some((e, _)) if *e == next => open.pop_first().expect("first exists").1,
                            _ => step
                                .take()
                                .expect("a step capability when no pane is open at `next`"),
                        };
                        let mut events = Vec::new();
                        let mut keys: Vec<&GroupKey> = groups.keys().collect();
                        // A fixed order, so a worker's output is the same however input was batched.
                        keys.sort();
                        let keys: Vec<GroupKey> = keys.into_iter().cloned().collect();
                        for key in keys {
                            let rule = &rules.rules[key.0 as usize];
                            let state = groups.get_mut(&key).expect("listed");
                            events.extend(evaluate(rule, &key.1, state, next, w));
                            // Panes ending at or before `next + w − history` are not read at
                            // `next + w` or later; the one ending at `next + w − history` is kept
                            // one pane longer, for the running sums to subtract it.
                            let horizon = next.saturating_sub(rule.history_ms());
                            while state
                                .panes
                                .first_key_value()
                                .is_some_and(|(e, _)| *e <= horizon)
                            {
                                state.panes.pop_first();
                            }
                            if state.phase == Phase::Inactive && state.panes.is_empty() {
                                groups.remove(&key);
                            }
                        }
                        if !events.is_empty() {
                            output.session(&cap).give_container(&mut events);
                        }
                        // Keep stepping pane by pane while any group may still change.
                        step = (!groups.is_empty()).then(|| cap.delayed(&(next + w)));
                    }
                }
            },
        )
}
