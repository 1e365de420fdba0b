//! `glassbox demo` (the README's first command) runs end to end on the in-process mock cluster:
//! it starts, consumes what its load generator publishes, closes windows, and stops cleanly.

use std::sync::atomic::Ordering;
use std::time::Duration;

use glassbox::demo::{DemoOptions, demo};
use glassbox::run::Handles;

#[test]
fn the_demo_consumes_spans_and_emits_windows() {
    let handles = Handles::default();
    let counters = handles.counters.clone();
    demo(
        DemoOptions {
            rate: 500.0,
            duration: Some(Duration::from_secs(9)),
            window_ms: 2_000,
            sliding_ms: 4_000,
            refresh: Duration::from_millis(500),
        },
        handles,
    )
    .expect("the demo runs and stops cleanly");
    let consumed = counters.consumed.load(Ordering::Relaxed);
    let windows = counters.windows_emitted.load(Ordering::Relaxed);
    assert!(consumed > 1_000, "consumed {consumed}");
    assert!(windows > 0, "no window emitted");
    assert_eq!(counters.deadlettered.load(Ordering::Relaxed), 0);
}
