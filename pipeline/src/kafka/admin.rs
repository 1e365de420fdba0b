//! Kafka administration: the client configuration every client shares, the input topic's
//! partitions, and the output topics created when missing.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::Config;
use crate::error::PipelineError;

/// The librdkafka configuration shared by every client.
pub fn client_config(config: &Config) -> Result<ClientConfig, PipelineError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.brokers);
    for (k, v) in config.kafka_properties()? {
        c.set(k, v);
    }
    Ok(c)
}

/// Input partitions, checking the input topic exists.
pub(crate) fn input_partitions(
    config: &Config,
    base: &ClientConfig,
) -> Result<Vec<i32>, PipelineError> {
    topic_partitions(base, &config.kafka.input_topic)?
        .ok_or_else(|| PipelineError::MissingInputTopic(config.kafka.input_topic.clone()))
}

/// The partitions of `topic`, `None` when it does not exist (or has none).
pub(crate) fn topic_partitions(
    base: &ClientConfig,
    topic: &str,
) -> Result<Option<Vec<i32>>, PipelineError> {
    let consumer: BaseConsumer = base.clone().create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect()))
}

/// Creates the output topics that do not exist yet; `processes`: the processes of the
/// cluster, one partition of the state topic each (with `kafka.frontier_store =
/// "state_topic"`; one existing with fewer partitions is refused, naming the field).
pub fn ensure_output_topics(
    config: &Config,
    base: &ClientConfig,
    processes: usize,
) -> Result<(), PipelineError> {
    let consumer: BaseConsumer = base.clone().create()?;
    let md = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    let existing: Vec<&str> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name())
        .collect();
    let wanted = [
        (&config.kafka.metrics_topic, config.kafka.output_partitions),
        (
            &config.kafka.deadletter_topic,
            config.kafka.output_partitions,
        ),
        (&config.kafka.alerts_topic, config.kafka.output_partitions),
    ];
    // One partition per process of a timely cluster; a single process uses partition 0.
    let processes = i32::try_from(processes).unwrap_or(i32::MAX);
    let in_state_topic = config.kafka.frontier_store == "state_topic";
    if in_state_topic && existing.contains(&config.kafka.state_topic.as_str()) {
        let has = topic_partitions(base, &config.kafka.state_topic)?.map_or(0, |p| p.len());
        if has < processes as usize {
            return Err(crate::config::ConfigError::Invalid {
                field: "kafka.state_topic",
                message: format!(
                    "`{}` has {has} partitions, and each of the cluster's {processes} processes \
                     stores its frontier in one of its own: add partitions (kafka-topics.sh \
                     --alter --partitions {processes})",
                    config.kafka.state_topic
                ),
            }
            .into());
        }
    }
    let state = [(&config.kafka.state_topic, processes)];
    let state = state.into_iter().filter(|_| in_state_topic);
    // The quality path's topics, only when it is on.
    let quality = [&config.quality.flagged_topic, &config.quality.quality_topic]
        .map(|t| (t, config.kafka.output_partitions));
    let wanted: Vec<_> = wanted
        .into_iter()
        .chain(state)
        .chain(quality.into_iter().filter(|_| config.quality.enabled))
        .collect();
    let missing: Vec<(&str, i32)> = wanted
        .iter()
        .filter(|(t, _)| !existing.contains(&t.as_str()))
        .map(|(t, partitions)| (t.as_str(), *partitions))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    tracing::info!(topics = ?missing, "creating output topics");
    create_topics(base, &missing, config.kafka.output_replication)
}

/// Creates each `(topic, partitions)` with `replication` replicas through the admin API; a
/// topic that exists already is left as it is. Used for glassbox's output topics, and by the
/// tests and benches for their input topics (any Kafka-API broker, no broker CLI needed).
pub fn create_topics(
    base: &ClientConfig,
    topics: &[(&str, i32)],
    replication: i32,
) -> Result<(), PipelineError> {
    let missing: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, partitions)| NewTopic::new(t, *partitions, TopicReplication::Fixed(replication)))
        .collect();
    let admin: AdminClient<DefaultClientContext> = base.clone().create()?;
    let results = futures_executor::block_on(
        admin.create_topics(
            missing.iter(),
            &AdminOptions::new()
                .operation_timeout(Some(Duration::from_secs(10)))
                .request_timeout(Some(Duration::from_secs(30))),
        ),
    )?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(%topic, "created topic"),
            Err((topic, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(%topic, "topic already exists")
            }
            Err((topic, code)) => {
                return Err(PipelineError::CreateTopic {
                    topic,
                    message: code.to_string(),
                });
            }
        }
    }
    Ok(())
}
