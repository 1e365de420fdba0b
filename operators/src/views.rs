//! Window views: which panes make which window, and for how long a window's state lives.
//!
//! A view of length `L` over panes of width `w` (`L` a multiple of `w`) has one window ending
//! at every pane end `E`, covering `[E − L, E)`: `L = w` is the tumbling view, `L > w` a sliding
//! view that advances every pane. A pane ending at `e` belongs to the windows ending at
//! `e, e + w, …, e + L − w`.
//!
//! # Time contract
//! - Input: pane contributions at time `e` (their pane's end), from [`crate::panes`].
//! - Output: for each view and each window `E` the pane belongs to, the contribution keyed by
//!   [`WindowKey`] inserted at time `E` and retracted at time `E + w`. The window's aggregate is
//!   therefore complete when the frontier passes `E` (it is emitted then), and accumulates back
//!   to zero one pane later, when differential compacts it away: state is bounded by
//!   `L / w + 1` windows per series and view, whatever the length of the run.
//! - Times are only moved forward (`E ≥ e`), as differential's `delay` does.

use differential_dataflow::AsCollection;
use differential_dataflow::VecCollection;
use differential_dataflow::difference::Abelian;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::Map;

use crate::facts::Series;
use crate::figures::Figures;
use crate::panes::{Contribution, Part};

/// One window view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The view's name in output records, e.g. `tumbling_1m`, `sliding_5m`.
    pub name: String,
    /// Window length in ms; a multiple of the pane width.
    pub length_ms: u64,
}

/// The pane width and the views computed over it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Views {
    /// Pane width = the tumbling window = the sliding views' slide, in ms.
    pub pane_ms: u64,
    /// The views, indexed by position in [`WindowKey::view`].
    pub views: Vec<View>,
}

impl Views {
    /// The default: 60 s tumbling windows and a 5 min view sliding every minute.
    pub fn standard(pane_ms: u64, sliding_ms: u64) -> Self {
        let name = |prefix: &str, ms: u64| {
            if ms.is_multiple_of(60_000) {
                format!("{prefix}_{}m", ms / 60_000)
            } else if ms.is_multiple_of(1_000) {
                format!("{prefix}_{}s", ms / 1_000)
            } else {
                format!("{prefix}_{ms}ms")
            }
        };
        let mut views = vec![View {
            name: name("tumbling", pane_ms),
            length_ms: pane_ms,
        }];
        if sliding_ms > pane_ms {
            views.push(View {
                name: name("sliding", sliding_ms),
                length_ms: sliding_ms,
            });
        }
        Self { pane_ms, views }
    }

    /// Checks the invariants; returns the first violation.
    pub fn validate(&self) -> Result<(), String> {
        if self.pane_ms == 0 {
            return Err("window width must be positive".into());
        }
        for v in &self.views {
            if v.length_ms == 0 || v.length_ms % self.pane_ms != 0 {
                return Err(format!(
                    "view {} length {} ms is not a positive multiple of the window width {} ms",
                    v.name, v.length_ms, self.pane_ms
                ));
            }
        }
        Ok(())
    }

    /// The latest window end (ms) a span starting at `start_ms` contributes to, over all views:
    /// once every output up to it is durable, the span's offset may be committed.
    pub fn last_window_end(&self, start_ms: u64) -> u64 {
        let longest = self
            .views
            .iter()
            .map(|v| v.length_ms)
            .max()
            .unwrap_or(self.pane_ms);
        crate::panes::pane_end(start_ms, self.pane_ms) + longest - self.pane_ms
    }

    /// The window length of view `index`.
    pub fn length_ms(&self, index: u8) -> u64 {
        self.views[usize::from(index)].length_ms
    }
}

/// A window of a series in a view; the window is `[end_ms − length, end_ms)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowKey {
    /// Index into [`Views::views`].
    pub view: u8,
    /// The series.
    pub series: Series,
    /// Window end, ms since the epoch (exclusive).
    pub end_ms: u64,
}

/// Expands pane contributions into windows of every view; see the module's time contract.
pub fn expand<'scope>(
    panes: VecCollection<'scope, u64, Contribution, Figures>,
    views: &Views,
) -> VecCollection<'scope, u64, (WindowKey, Part), Figures> {
    let w = views.pane_ms;
    let lengths: Vec<(u8, u64)> = views
        .views
        .iter()
        .enumerate()
        .map(|(i, v)| (u8::try_from(i).expect("at most 255 views"), v.length_ms))
        .collect();
    panes
        .inner
        .flat_map(move |(((series, pane_end), part), time, figures)| {
            debug_assert_eq!(
                time, pane_end,
                "pane contributions arrive at their pane's end"
            );
            let mut out = Vec::new();
            for &(view, length) in &lengths {
                for end_ms in (pane_end..pane_end + length).step_by(w as usize) {
                    let key = WindowKey {
                        view,
                        series: series.clone(),
                        end_ms,
                    };
                    let mut retract = figures;
                    retract.negate();
                    out.push(((key.clone(), part.clone()), end_ms, figures));
                    out.push(((key, part.clone()), end_ms + w, retract));
                }
            }
            out
        })
        .as_collection()
}
