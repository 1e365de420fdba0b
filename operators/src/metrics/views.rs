//! Window views: which panes make which window.
//!
//! A view of length `L` over panes of width `w` (`L` a multiple of `w`) has one window ending
//! at every pane end `E`, covering `[E − L, E)`: `L = w` is the tumbling view, `L > w` a sliding
//! view that advances every pane. A pane ending at `e` belongs to the windows ending at
//! `e, e + w, …, e + L − w`. The operator that builds them is [`crate::metrics::windows`].

use serde::{Deserialize, Serialize};

use crate::metrics::facts::Series;

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

    /// The latest window end (ms) a span starting at `start_ms` contributes to, over all views:
    /// once every output up to it is durable, the span's offset may be committed.
    pub fn last_window_end(&self, start_ms: u64) -> u64 {
        let longest = self
            .views
            .iter()
            .map(|v| v.length_ms)
            .max()
            .unwrap_or(self.pane_ms);
        crate::metrics::panes::pane_end(start_ms, self.pane_ms) + longest - self.pane_ms
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
