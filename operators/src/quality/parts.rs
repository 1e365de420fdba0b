//! The quality facts as pane parts for the alert rules, so that a rule can read
//! `avg(faithfulness)` or `hallucination_rate` like any window figure.

use differential_dataflow::VecCollection;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use crate::metrics::panes::{Part, pane_end};
use crate::metrics::views::WindowKey;
use crate::quality::windows::QualityFact;

/// The quality facts as pane parts for the alert rules: each fact's
/// [`QualityFact::quality_fields`] as [`Part::Quality`] updates of the window of the pane-width
/// view (`pane_view`) that holds its event time, at that window's end, which is when the alerts
/// operator reads a pane.
///
/// # Time contract
/// Input facts at a time not after their event time; output at the end of their pane (later).
/// A fact that arrives after its pane's end (possible only for a trace whose first span was
/// late) is dropped: its pane has been evaluated already. Nothing is retracted, and the alerts
/// operator reads only these insertions.
pub fn quality_parts<'scope>(
    facts: StreamVec<'scope, u64, QualityFact>,
    pane_ms: u64,
    pane_view: u8,
) -> VecCollection<'scope, u64, (WindowKey, Part), i64> {
    use differential_dataflow::AsCollection;
    facts
        .unary(Pipeline, "QualityParts", move |_cap, _info| {
            move |input, output| {
                input.for_each(|cap, data| {
                    let time = *cap.least().expect("vec containers carry a time");
                    for fact in data.drain(..) {
                        let end = pane_end(fact.event_ms(), pane_ms);
                        if end < time {
                            continue;
                        }
                        let key = WindowKey {
                            view: pane_view,
                            series: fact.series().clone(),
                            end_ms: end,
                        };
                        let at = cap.delayed(&end, 0);
                        let mut session = output.session(&at);
                        for (i, n) in fact.quality_fields().into_iter().enumerate() {
                            if n != 0 {
                                session.give(((key.clone(), Part::Quality(i as u8)), end, n));
                            }
                        }
                    }
                });
            }
        })
        .as_collection()
}
