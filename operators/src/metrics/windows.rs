//! The windows operator: span facts in, every window of every view out, as a differential
//! collection of parts with retractions.
//!
//! # Time contract
//! - Input: [`SpanFacts`] at any timely time `t ≤ pane_end(start_ms)`. The source holds a
//!   later span back as late; a span that breaks this is a broken invariant and panics.
//! - State: the *open* panes (whose end the input frontier has not passed), each with a
//!   capability at its end; and per series the closed panes still inside the longest view
//!   (`L / w` of them) plus, per view, what was last emitted for it. A series' state is released
//!   once its last pane has left every view.
//! - Output: when the input frontier passes a pane end `E`, at time `E` and for every view and
//!   every series with a pane in `(E − L, E]`: the window `[E − L, E)` keyed by
//!   ([`WindowKey`], [`Part`]) with its merged counts and sums inserted, and the window ending at
//!   `E − w` retracted. Each window is thus inserted when it closes and retracted one pane
//!   later, so the downstream `reduce` compacts it away; every update is at the current pane
//!   end (nothing is scheduled into the future), and the frontier downstream only moves at pane
//!   ends. Only the pane-width view carries [`crate::metrics::panes::Exemplar`] parts (what the alerts
//!   read); the longer views leave them out. Pane ends without any open pane are still stepped through while a series has state,
//!   so sliding windows over a gap in the data are emitted too.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use differential_dataflow::AsCollection;
use differential_dataflow::VecCollection;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use crate::metrics::cardinality::{CardinalityCounters, CardinalityLimits, fold_pane};
use crate::metrics::facts::{Series, SpanFacts};
use crate::metrics::panes::{PaneAcc, Part, pane_end};
use crate::metrics::views::{Views, WindowKey};

/// A window's merged contributions, by part.
type WindowParts = HashMap<Part, i64>;

struct SeriesState {
    /// Closed panes still inside the longest view, oldest first.
    panes: VecDeque<(u64, PaneAcc)>,
    /// Per view, the parts emitted for the window ending at the previous pane end.
    last: Vec<Option<WindowParts>>,
}

fn series_hash(series: &Series) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    series.hash(&mut h);
    h.finish()
}

/// Builds every window of every view; see the module's time contract.
pub fn windows<'scope>(
    facts: StreamVec<'scope, u64, SpanFacts>,
    views: &Views,
) -> VecCollection<'scope, u64, (WindowKey, Part), i64> {
    windows_limited(facts, views, &CardinalityLimits::default(), Arc::default())
}

/// [`windows`], with each pane's series folded over `limits` when it closes
/// ([`crate::metrics::cardinality`]).
pub fn windows_limited<'scope>(
    facts: StreamVec<'scope, u64, SpanFacts>,
    views: &Views,
    limits: &CardinalityLimits,
    counters: Arc<CardinalityCounters>,
) -> VecCollection<'scope, u64, (WindowKey, Part), i64> {
    // Series are spread over the workers by hash: each folds its share of a pane, with an even
    // share of every limit, so a pane holds at most the limit's values in all.
    let limits = limits.per_worker(facts.scope().peers());
    let w = views.pane_ms;
    assert!(w > 0, "pane width must be positive");
    let lengths: Vec<u64> = views.views.iter().map(|v| v.length_ms).collect();
    assert!(lengths.len() <= usize::from(u8::MAX), "at most 255 views");
    let longest = lengths.iter().copied().max().unwrap_or(w);
    facts
        // Each series is windowed by one worker: every window is then emitted (and retracted)
        // once, not once per worker that saw a span of it.
        .unary_frontier(Exchange::new(|f: &SpanFacts| series_hash(&f.series)), "Windows", move |_cap, _info| {
            let mut open: BTreeMap<u64, (Capability<u64>, HashMap<Series, PaneAcc>)> = BTreeMap::new();
            let mut closed: HashMap<Series, SeriesState> = HashMap::default();
            // The next pane end to step through while `closed` holds state, with its capability.
            let mut step: Option<Capability<u64>> = None;
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let time = *cap.least().expect("vec containers carry a time");
                    for mut f in data.drain(..) {
                        let end = pane_end(f.start_ms, w);
                        assert!(end >= time, "span in a closed pane reached the windows operator: the source must hold it back as late");
                        let (_, panes) = open.entry(end).or_insert_with(|| (cap.delayed(&end, 0), HashMap::default()));
                        panes.entry(std::mem::take(&mut f.series)).or_default().add(f);
                    }
                });
                loop {
                    let next = match (open.first_key_value(), &step) {
                        (Some((e, _)), Some(c)) => (*e).min(*c.time()),
                        (Some((e, _)), None) => *e,
                        (None, Some(c)) => *c.time(),
                        (None, None) => break,
                    };
                    // The pane ending at `next` is complete once no input can arrive at or before it.
                    if frontier.less_equal(&next) {
                        break;
                    }
                    let cap = match open.first_key_value() {
                        Some((e, _)) if *e == next => {
                            let (cap, panes) = open.pop_first().expect("first exists").1;
                            for (series, pane) in fold_pane(panes, &limits, &counters) {
                                closed
                                    .entry(series)
                                    .or_insert_with(|| SeriesState { panes: VecDeque::new(), last: vec![None; lengths.len()] })
                                    .panes
                                    .push_back((next, pane));
                            }
                            cap
                        }
                        _ => step.take().expect("a step capability when no pane is open at `next`"),
                    };
                    let mut updates = Vec::new();
                    closed.retain(|series, state| {
                        while state.panes.front().is_some_and(|(e, _)| *e + longest <= next) {
                            state.panes.pop_front();
                        }
                        for (view, &length) in lengths.iter().enumerate() {
                            let view = view as u8;
                            if let Some(previous) = state.last[usize::from(view)].take() {
                                let key = WindowKey { view, series: series.clone(), end_ms: next - w };
                                for (part, n) in previous {
                                    updates.push(((key.clone(), part), next, -n));
                                }
                            }
                            let mut parts = WindowParts::default();
                            for (_, pane) in state.panes.iter().filter(|(e, _)| *e + length > next) {
                                pane.merge_into(&mut parts, length == w);
                            }
                            if !parts.is_empty() {
                                let key = WindowKey { view, series: series.clone(), end_ms: next };
                                updates.extend(parts.iter().map(|(p, f)| ((key.clone(), p.clone()), next, *f)));
                                state.last[usize::from(view)] = Some(parts);
                            }
                        }
                        !state.panes.is_empty() || state.last.iter().any(Option::is_some)
                    });
                    if !updates.is_empty() {
                        output.session(&cap).give_container(&mut updates);
                    }
                    // Keep stepping pane by pane while any series still has windows to emit or retract.
                    step = (!closed.is_empty()).then(|| cap.delayed(&(next + w)));
                }
            }
        })
        .as_collection()
}
