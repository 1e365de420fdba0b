//! Signals to the real `glassbox run` process (issue #14, defect 11): SIGTERM — what Kubernetes
//! sends — stops it cleanly within the grace period (exit 0, final commit); SIGHUP only
//! reloads the price table and must not stop it (it did: the Ctrl-C handler also took SIGHUP).

use std::process::Command;
use std::time::{Duration, Instant};

use glassbox::kafka::source::now_ms;
use glassbox_integration::*;
use glassbox_support::loadgen::Generator;

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn sigterm_stops_cleanly_and_sighup_does_not_stop() {
    let r = Run::new("signals");
    let start_ms = (now_ms() - 2 * 3_600_000) / 60_000 * 60_000;
    // 400 s of event time: the first records' windows (5 min sliding) close while reading,
    // so offsets are committed while the process runs.
    let mut generator = Generator::new(5, start_ms, 5.0);
    let records: Vec<(String, Vec<u8>)> = (0..2_000)
        .map(|_| {
            let s = generator.next_span();
            (s.trace_id.clone(), s.to_json())
        })
        .collect();
    produce(&r.input, &records);
    let mut child = r
        .command(env!("CARGO_BIN_EXE_glassbox-it"))
        .env("GLASSBOX_SOURCE__IDLE_TIMEOUT_MS", "1000")
        .spawn()
        .expect("start glassbox");
    let committed = || -> i64 {
        committed_offsets(&r.group, &r.input)
            .values()
            .flatten()
            .sum()
    };
    wait_for("offsets committed", Duration::from_secs(120), || {
        committed() > 0
    });

    signal(child.id(), "HUP");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP stopped glassbox"
    );

    signal(child.id(), "TERM");
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "glassbox did not stop within 30 s of SIGTERM (Kubernetes' default grace period)"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "a clean stop exits 0: {status:?}");
    // The windows still open are not committed (a restart rebuilds them); what was, stays.
    let after = committed();
    assert!(after > 0 && after <= records.len() as i64, "{after}");
}
