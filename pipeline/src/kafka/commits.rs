//! Where to resume and how commits are made: the committed offsets and the durable frontier
//! read at start, and the commit of a [`CommitBoard`]'s offsets with the frontier (in the
//! input partitions' commit metadata, or as the state topic's committed offset).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
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
    tpl.add_partition(&config.kafka.state_topic, STATE_PARTITION);
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

/// This process's partition of the state topic.
const STATE_PARTITION: i32 = 0;

/// Commits the board's offsets and frontier in one request.
pub(crate) fn commit_board(
    consumer: &BaseConsumer,
    config: &Config,
    board: &std::sync::Mutex<CommitBoard>,
    mode: CommitMode,
    counters: &Counters,
) {
    let Some((offsets, frontier)) = board.lock().expect("commit board lock").take() else {
        return;
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
            STATE_PARTITION,
            Offset::Offset(frontier),
        );
    }
    match consumer.commit(&tpl, mode) {
        Ok(()) => Counters::inc(&counters.commits),
        Err(e) => {
            tracing::warn!(error = %e, "offset commit failed, will retry at the next interval")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
