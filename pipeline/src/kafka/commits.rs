//! Where to resume and how commits are made: the committed offsets and the durable frontier
//! read at start, and the commit of a [`CommitBoard`]'s offsets with the frontier (in the
//! input partitions' commit metadata, or as the state topic's committed offset).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::Config;
use crate::error::PipelineError;
use crate::kafka::offsets::CommitBoard;
use crate::telemetry::Counters;

/// The commit metadata that carries the durable frontier (ms) with an input partition's offset.
const FRONTIER_METADATA: &str = "glassbox.frontier_ms=";

/// The frontier in an input partition's commit metadata, if it holds one.
fn frontier_in_metadata(metadata: &str) -> Option<u64> {
    metadata.strip_prefix(FRONTIER_METADATA)?.parse().ok()
}

/// Committed offsets of every input partition, and the largest durable frontier recorded, in
/// the commit metadata of the input partitions or as the committed offset of the state topic
/// (both are read, so a change of `kafka.frontier_store` keeps what was stored).
///
/// In a cluster every process stores its own frontier (in its partitions' metadata, or in its
/// partition of the state topic), and the largest is taken, whatever the number of processes
/// then and now: each is safe for the partitions it was stored with (windows before it are
/// durable cluster-wide, since a probe's frontier is the cluster's; no committed record feeds
/// a window after it), so the largest is safe for all.
pub fn resume_state(
    config: &Config,
    base: &ClientConfig,
    partitions: &[i32],
) -> Result<(BTreeMap<i32, Offset>, u64), PipelineError> {
    let consumer: BaseConsumer = base
        .clone()
        .set("group.id", &config.kafka.group_id)
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(&config.kafka.input_topic, *p);
    }
    let state = crate::kafka::admin::topic_partitions(base, &config.kafka.state_topic)?;
    for p in state.unwrap_or_default() {
        tpl.add_partition(&config.kafka.state_topic, p);
    }
    let committed = committed_offsets(&consumer, &tpl, &config.kafka.input_topic)?;
    let mut offsets = BTreeMap::new();
    let mut resume = 0;
    for elem in committed.elements() {
        if elem.topic() == config.kafka.state_topic {
            if let Offset::Offset(f) = elem.offset() {
                resume = resume.max(u64::try_from(f).unwrap_or(0));
            }
            continue;
        }
        if let Some(f) = frontier_in_metadata(elem.metadata()) {
            resume = resume.max(f);
        }
        let start = match elem.offset() {
            Offset::Offset(o) => Offset::Offset(o),
            _ if config.kafka.auto_offset_reset == "latest" => Offset::End,
            _ => Offset::Beginning,
        };
        offsets.insert(elem.partition(), start);
    }
    Ok((offsets, resume))
}

/// How long start-up waits for the group coordinator to answer with every input partition's
/// committed offset.
const RESUME_DEADLINE: Duration = Duration::from_secs(60);

/// The group's committed offsets of `tpl`, asked again until the coordinator answers for every
/// partition of `input_topic`. A fresh broker answers `COORDINATOR_LOAD_IN_PROGRESS` or times
/// out while it creates `__consumer_offsets`; a partition's error leaves its offset unknown,
/// and taking an unknown offset as "none committed" would replay the partition from its
/// start. Only after [`RESUME_DEADLINE`] does start-up fail, with the last error. (The state
/// topic's partition may be missing altogether with `frontier_store = "metadata"`: its error
/// is not waited for.)
fn committed_offsets(
    consumer: &BaseConsumer,
    tpl: &TopicPartitionList,
    input_topic: &str,
) -> Result<TopicPartitionList, PipelineError> {
    let deadline = std::time::Instant::now() + RESUME_DEADLINE;
    let mut backoff = Duration::from_millis(200);
    loop {
        let error = match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(committed) => match committed
                .elements()
                .iter()
                .filter(|e| e.topic() == input_topic)
                .find_map(|e| e.error().err())
            {
                None => return Ok(committed),
                Some(e) => e,
            },
            Err(e) => e,
        };
        if std::time::Instant::now() + backoff > deadline {
            return Err(error.into());
        }
        tracing::warn!(%error, retry_in = ?backoff, "committed offsets not available yet");
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Commits the process's [`CommitBoard`] from a thread of its own, every commit interval,
/// and sends it again until the broker takes it.
///
/// Each commit waits for the broker's answer (librdkafka reports nothing of an asynchronous
/// commit made by hand: no callback, no event, at most a log line), so a refused one is known:
/// it is counted (`commit_failures`) and the board handed out again whole at the next round
/// (a later commit carries every partition, so it supersedes a lost one). Before, worker 0
/// queued commits it never heard of: one the restarting coordinator refused
/// (`COORDINATOR_LOAD_IN_PROGRESS`, or `NOT_COORDINATOR` twice) was lost, and after the last
/// record of a stream nothing new came to replace it. Waiting here blocks no worker.
pub(crate) struct Committer {
    stop: Arc<AtomicBool>,
    done: std::sync::mpsc::Receiver<bool>,
}

impl Committer {
    /// Starts committing `board` for the configured group (the committer joins nothing).
    /// `process`: this process's index in its cluster, its partition of the state topic.
    pub(crate) fn start(
        base: &ClientConfig,
        config: &Config,
        process: usize,
        board: Arc<std::sync::Mutex<CommitBoard>>,
        counters: Arc<Counters>,
    ) -> KafkaResult<Self> {
        let consumer: BaseConsumer = base
            .clone()
            .set("group.id", &config.kafka.group_id)
            .create()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, done) = std::sync::mpsc::sync_channel(1);
        let every = Duration::from_millis(config.source.commit_interval_ms.max(1));
        let (config, flag) = (config.clone(), stop.clone());
        std::thread::Builder::new()
            .name("glassbox-committer".into())
            .spawn(move || {
                let state_partition = i32::try_from(process).unwrap_or(i32::MAX);
                let round = || commit_round(&consumer, &config, state_partition, &board, &counters);
                while !flag.load(Ordering::Relaxed) {
                    round();
                    let slept = std::time::Instant::now();
                    while slept.elapsed() < every && !flag.load(Ordering::Relaxed) {
                        std::thread::sleep(every.min(Duration::from_millis(20)));
                    }
                }
                // The last round: every worker has deposited its last commit points.
                let deadline = std::time::Instant::now() + FINAL_COMMIT_DEADLINE;
                let mut backoff = Duration::from_millis(200);
                let taken = loop {
                    if round() {
                        break true;
                    }
                    if std::time::Instant::now() + backoff > deadline {
                        tracing::warn!(
                            "the last offset commit was not taken in time: a restart replays \
                             from the last commit the broker took (nothing is lost or counted \
                             twice)"
                        );
                        break false;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                };
                let _ = tx.send(taken);
            })
            .map_err(|e| rdkafka::error::KafkaError::ClientCreation(e.to_string()))?;
        Ok(Self { stop, done })
    }

    /// Makes the last commit (of what the workers deposited last) and waits for it, at most
    /// [`FINAL_COMMIT_DEADLINE`] and a little; whether the broker took it.
    pub(crate) fn finish(self) -> bool {
        self.stop.store(true, Ordering::Relaxed);
        self.done
            .recv_timeout(FINAL_COMMIT_DEADLINE + Duration::from_secs(5))
            .unwrap_or(false)
    }
}

impl Drop for Committer {
    /// A committer dropped without [`Committer::finish`] (start-up failed after it) stops too.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How long the last commit at shutdown keeps trying (the broker may be restarting); well
/// inside Kubernetes' default 30 s grace period, with the sinks' flush before it.
pub(crate) const FINAL_COMMIT_DEADLINE: Duration = Duration::from_secs(15);

/// Commits what changed on the board, waiting for the answer; `true` when nothing is left to
/// commit (taken, or nothing changed).
fn commit_round(
    consumer: &BaseConsumer,
    config: &Config,
    state_partition: i32,
    board: &std::sync::Mutex<CommitBoard>,
    counters: &Counters,
) -> bool {
    match commit_board(consumer, config, state_partition, board) {
        Ok(false) => true,
        Ok(true) => {
            Counters::inc(&counters.commits);
            true
        }
        Err(error) => {
            Counters::inc(&counters.commit_failures);
            board.lock().expect("commit board lock").again();
            tracing::warn!(%error, "offset commit failed; the offsets are sent again");
            false
        }
    }
}

/// Commits the board's offsets and frontier in one request; `false`: nothing changed, nothing
/// sent.
fn commit_board(
    consumer: &BaseConsumer,
    config: &Config,
    state_partition: i32,
    board: &std::sync::Mutex<CommitBoard>,
) -> KafkaResult<bool> {
    let Some((offsets, frontier)) = board.lock().expect("commit board lock").take() else {
        return Ok(false);
    };
    let mut tpl = TopicPartitionList::new();
    let in_metadata = config.kafka.frontier_store == "metadata";
    let metadata = format!("{FRONTIER_METADATA}{frontier}");
    for (partition, offset) in offsets {
        let mut elem = tpl.add_partition(&config.kafka.input_topic, partition);
        let _ = elem.set_offset(Offset::Offset(offset));
        if in_metadata {
            elem.set_metadata(&metadata);
        }
    }
    if !in_metadata {
        let frontier = i64::try_from(frontier).unwrap_or(i64::MAX);
        let _ = tpl.add_partition_offset(
            &config.kafka.state_topic,
            state_partition,
            Offset::Offset(frontier),
        );
    }
    // Waits for the broker's answer (see `Committer`).
    consumer.commit(&tpl, CommitMode::Sync).map(|()| true)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    use super::*;

    /// The group's committed offset of `partition` of the input topic, asked of the broker.
    fn committed(base: &ClientConfig, config: &Config, partition: i32) -> Option<i64> {
        let consumer: BaseConsumer = base
            .clone()
            .set("group.id", &config.kafka.group_id)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&config.kafka.input_topic, partition);
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap();
        match committed.elements()[0].offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        }
    }

    /// Waits for `done`, at most 20 s.
    fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_commit_the_coordinator_refuses_is_sent_again_until_it_is_taken() {
        let cluster = MockCluster::new(1).unwrap();
        let mut config = Config::default();
        config.kafka.brokers = cluster.bootstrap_servers();
        config.kafka.input_topic = "spans".into();
        config.kafka.frontier_store = "metadata".into();
        config.source.commit_interval_ms = 50;
        cluster.create_topic("spans", 2, 1).unwrap();
        let base = crate::kafka::admin::client_config(&config).unwrap();
        let counters = Arc::new(Counters::default());
        let board = Arc::new(std::sync::Mutex::new(CommitBoard::default()));
        let committer =
            Committer::start(&base, &config, 0, board.clone(), counters.clone()).unwrap();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);

        board.lock().unwrap().deposit([(0, 10), (1, 4)], 60_000);
        until("the first commit", || get(&counters.commits) == 1);
        assert_eq!(committed(&base, &config, 0), Some(10));

        // The broker refuses the next ones, and nothing new is deposited after them: it is
        // sent until taken. (librdkafka retries a coordinator that is loading or moving by
        // itself, within its timeouts; what it gives up on, or refusals like these, the
        // committer sends again.)
        cluster.request_errors(
            RDKafkaApiKey::OffsetCommit,
            &[
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
            ],
        );
        board.lock().unwrap().deposit([(0, 25)], 120_000);
        until("the refused commit taken", || get(&counters.commits) == 2);
        assert_eq!(
            get(&counters.commit_failures),
            2,
            "{:?}",
            counters.snapshot()
        );
        assert_eq!(committed(&base, &config, 0), Some(25));
        assert_eq!(committed(&base, &config, 1), Some(4));
        // Once taken, nothing more is sent.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(get(&counters.commits), 2);

        // The last commit at shutdown: refused first, then taken before `finish` returns.
        cluster.request_errors(
            RDKafkaApiKey::OffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED; 3],
        );
        board.lock().unwrap().deposit([(1, 9)], 180_000);
        // (The round of the interval may take it first; either way it is taken.)
        assert!(committer.finish());
        assert_eq!(committed(&base, &config, 1), Some(9));
        assert_eq!(get(&counters.commits), 3);
    }

    #[test]
    fn the_frontier_travels_in_commit_metadata_and_nothing_else_is_taken_for_it() {
        let stored = format!("{FRONTIER_METADATA}{}", 1_764_000_060_000u64);
        assert_eq!(frontier_in_metadata(&stored), Some(1_764_000_060_000));
        // Metadata another tool committed, or none: no frontier.
        assert_eq!(frontier_in_metadata(""), None);
        assert_eq!(frontier_in_metadata("lag-exporter"), None);
        assert_eq!(frontier_in_metadata("glassbox.frontier_ms=soon"), None);
    }
}
