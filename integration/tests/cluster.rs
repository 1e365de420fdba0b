//! Several glassbox processes as one timely cluster (issue #15), through Apache Kafka: three
//! processes of one worker each read a 12-partition topic of 200,000 spans, and the metrics
//! topic, InfluxDB and Redis hold exactly the ground truth, as one process would write it; one
//! process SIGKILLed makes the others stop promptly (exit status 75), SIGTERM to one stops all
//! cleanly, and runs of 2, then 3, then 3, then 1 processes on the same group resume from the
//! committed offsets exactly.
//!
//! The processes are the real binary on loopback ports; each one's log goes to
//! `{input}-p{process}-{run}.log` in the temp dir.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use glassbox::kafka::source::now_ms;
use glassbox_integration::stores::free_port;
use glassbox_integration::*;
use glassbox_support::loadgen::{GenSpan, Generator};

/// One at a time: each test runs several processes on the 2 cores.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The exit status of a process whose cluster lost a peer (`glassbox::run::LOST_PEER_EXIT`).
const LOST_PEER: i32 = glassbox::run::LOST_PEER_EXIT;

/// A run of `n` processes: their cluster addresses and children.
struct Cluster {
    children: Vec<Child>,
    logs: Vec<std::path::PathBuf>,
}

impl Cluster {
    /// Starts `n` processes of one worker each on fresh loopback ports; `round` names the logs.
    /// `extra`: more settings, for every process.
    fn start(t: &Run, n: usize, stop_when_idle: bool, round: &str, extra: &[(&str, &str)]) -> Self {
        let hosts: Vec<String> = (0..n)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let hosts_toml = format!(
            "[{}]",
            hosts
                .iter()
                .map(|h| format!("\"{h}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut children = Vec::new();
        let mut logs = Vec::new();
        for process in 0..n {
            let path = std::env::temp_dir().join(format!("{}-p{process}-{round}.log", t.input));
            let log = std::fs::File::create(&path).unwrap();
            let mut c = t.command(env!("CARGO_BIN_EXE_glassbox-it"));
            c.env("GLASSBOX_SOURCE__WORKERS", "1")
                .env("GLASSBOX_SOURCE__MAX_RECORDS_PER_ACTIVATION", "500")
                .env(
                    "GLASSBOX_SOURCE__STOP_WHEN_IDLE",
                    stop_when_idle.to_string(),
                )
                .env("GLASSBOX_TELEMETRY__LOG_INTERVAL_MS", "2000")
                .env("GLASSBOX_KAFKA__OUTPUT_PARTITIONS", "12")
                .env("GLASSBOX_CLUSTER__PROCESS", process.to_string());
            if n > 1 {
                c.env("GLASSBOX_CLUSTER__HOSTS", &hosts_toml);
            }
            c.envs(extra.iter().copied());
            c.stderr(log);
            children.push(c.spawn().expect("start a process"));
            logs.push(path);
        }
        Self { children, logs }
    }

    /// Waits until every process has exited, at most `limit`; their statuses.
    fn wait(&mut self, limit: Duration) -> Vec<ExitStatus> {
        let deadline = Instant::now() + limit;
        let mut statuses = vec![None; self.children.len()];
        while statuses.iter().any(Option::is_none) {
            for (child, status) in self.children.iter_mut().zip(&mut statuses) {
                if status.is_none() {
                    *status = child.try_wait().unwrap();
                }
            }
            assert!(
                Instant::now() < deadline,
                "still running after {limit:?}: {statuses:?}\n{}",
                self.tails()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        statuses.into_iter().map(Option::unwrap).collect()
    }

    /// The last lines of every process's log.
    fn tails(&self) -> String {
        self.logs
            .iter()
            .map(|p| {
                let log = std::fs::read_to_string(p).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(8)..].join("\n");
                format!("--- {}\n{tail}", p.display())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A counter of each process's last counters line.
    fn counter(&self, name: &str) -> Vec<u64> {
        let key = format!("\"{name}\": ");
        self.logs
            .iter()
            .map(|p| {
                let log = std::fs::read_to_string(p).unwrap_or_default();
                log.lines()
                    .rev()
                    .find_map(|l| {
                        let at = l.find(&key)? + key.len();
                        let digits: String =
                            l[at..].chars().take_while(char::is_ascii_digit).collect();
                        digits.parse().ok()
                    })
                    .unwrap_or(0)
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal_term(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {pid}");
}

fn committed_total(t: &Run) -> i64 {
    committed_offsets(&t.group, &t.input)
        .values()
        .map(|o| o.unwrap_or(0))
        .sum()
}

/// 200,000 spans of three hours ago on a 12-partition topic, and the spans.
fn input(name: &str, seed: u64) -> (Run, Vec<GenSpan>) {
    let t = Run::new(name);
    let input = format!("{}-12", t.input);
    create_topic(&input, 12);
    let t = Run { input, ..t };
    let start_ms = (now_ms() - 3 * 3_600_000) / 60_000 * 60_000;
    let mut generator = Generator::new(seed, start_ms, 20.0);
    let spans: Vec<GenSpan> = (0..200_000).map(|_| generator.next_span()).collect();
    let records: Vec<(String, Vec<u8>)> = spans
        .iter()
        .map(|s| (s.trace_id.clone(), s.to_json()))
        .collect();
    produce_in_batches(&t.input, &records, 100);
    (t, spans)
}

/// Every offset is committed, and the outputs are exact (`assert_outputs_exact`).
fn assert_exact(t: &Run, spans: &[GenSpan]) {
    assert_eq!(
        committed_total(t),
        spans.len() as i64,
        "every record committed"
    );
    let (records, windows) = assert_outputs_exact(t, spans);
    eprintln!("{records} metrics records for {windows} windows checked");
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn three_processes_compute_exactly_what_one_would() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let (t, spans) = input("cluster3", 31);
    let started = Instant::now();
    // The frontier in the state topic (one partition per process) here; the other test keeps
    // it in the partitions' commit metadata (the default).
    let state_topic = format!("{}-state", t.input);
    let mut cluster = Cluster::start(
        &t,
        3,
        true,
        "all",
        &[
            ("GLASSBOX_KAFKA__FRONTIER_STORE", "state_topic"),
            ("GLASSBOX_KAFKA__STATE_TOPIC", &state_topic),
        ],
    );
    let statuses = cluster.wait(Duration::from_secs(600));
    assert!(
        statuses.iter().all(ExitStatus::success),
        "{statuses:?}\n{}",
        cluster.tails()
    );
    let consumed = cluster.counter("consumed");
    eprintln!(
        "3 processes: {:.1} s; consumed per process {consumed:?}",
        started.elapsed().as_secs_f64()
    );
    // Each process read its share (4 of the 12 partitions), and no record was read twice.
    assert!(consumed.iter().all(|&c| c > 0), "{consumed:?}");
    assert_eq!(consumed.iter().sum::<u64>(), spans.len() as u64);
    // Series were exchanged: each process wrote windows of spans other processes read.
    let emitted = cluster.counter("windows_emitted");
    assert!(emitted.iter().all(|&w| w > 0), "{emitted:?}");
    assert_exact(&t, &spans);
    // Each process stored its frontier in its own partition of the state topic.
    let stored = committed_offsets(&t.group, &state_topic);
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert!(
        stored.values().all(|f| f.is_some_and(|f| f > 0)),
        "{stored:?}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "servers"),
    ignore = "needs the stack: integration/scripts/test-all.sh"
)]
fn a_lost_process_stops_the_cluster_and_rescaled_runs_resume_exactly() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let (t, spans) = input("rescale", 32);
    let progressed = |since: i64, limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            let now = committed_total(&t);
            if now > since + 10_000 {
                return now;
            }
            assert!(Instant::now() < deadline, "no progress past {since}");
            std::thread::sleep(Duration::from_millis(300));
        }
    };

    // Two processes; once commits have advanced, process 0 is SIGKILLed: process 1 stops by
    // itself, promptly, saying why.
    let mut two = Cluster::start(&t, 2, false, "two", &[]);
    let after_two = progressed(0, Duration::from_secs(180));
    two.children[0].kill().unwrap();
    let lost = Instant::now();
    let statuses = two.wait(Duration::from_secs(30));
    eprintln!(
        "2 processes: committed {after_two}; process 0 killed, process 1 stopped after {:.1} s",
        lost.elapsed().as_secs_f64()
    );
    assert_eq!(statuses[1].code(), Some(LOST_PEER), "{}", two.tails());
    let log = std::fs::read_to_string(&two.logs[1]).unwrap();
    assert!(log.contains("lost a process of the cluster"), "{log}");
    drop(two);

    // Three processes on the same group resume from the commits; process 2 is killed now.
    let mut three = Cluster::start(&t, 3, false, "three", &[]);
    let after_three = progressed(committed_total(&t), Duration::from_secs(180));
    three.children[2].kill().unwrap();
    let lost = Instant::now();
    let statuses = three.wait(Duration::from_secs(30));
    eprintln!(
        "3 processes: committed {after_three}; process 2 killed, the others stopped after {:.1} s",
        lost.elapsed().as_secs_f64()
    );
    for status in &statuses[..2] {
        assert_eq!(status.code(), Some(LOST_PEER), "{}", three.tails());
    }
    drop(three);

    // Three again; SIGTERM to process 1 alone (Kubernetes deleting one pod) stops all three
    // cleanly, each with its last commit.
    let mut again = Cluster::start(&t, 3, false, "again", &[]);
    let after_again = progressed(committed_total(&t), Duration::from_secs(180));
    signal_term(again.children[1].id());
    let stopping = Instant::now();
    let statuses = again.wait(Duration::from_secs(60));
    eprintln!(
        "3 processes again: committed {after_again}; SIGTERM to process 1, all stopped after \
         {:.1} s",
        stopping.elapsed().as_secs_f64()
    );
    assert!(
        statuses.iter().all(ExitStatus::success),
        "{statuses:?}\n{}",
        again.tails()
    );
    drop(again);

    // One process finishes the stream.
    let mut one = Cluster::start(&t, 1, true, "one", &[]);
    let statuses = one.wait(Duration::from_secs(600));
    assert!(statuses[0].success(), "{}", one.tails());
    assert_exact(&t, &spans);
}
