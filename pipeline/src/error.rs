//! [`PipelineError`]: why the pipeline could not start, or stopped.

/// Why the pipeline could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The input topic does not exist.
    #[error("input topic `{0}` does not exist (kafka.input_topic)")]
    MissingInputTopic(String),
    /// A Kafka client error.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Creating an output topic failed.
    #[error("cannot create output topic `{topic}`: {message}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        message: String,
    },
    /// A worker failed.
    #[error("worker failed: {0}")]
    Worker(String),
    /// A sink's settings are unusable.
    #[error("sink: {0}")]
    Sink(String),
}
