//! Errors of the message log.

use std::time::Duration;

/// Why a log operation failed; callers decide whether to retry from the variant.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The topic was never created (or has a name the log refuses).
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// A topic name that neither Kafka nor the embedded store accepts.
    #[error("invalid topic name {0:?}: use 1-249 characters of [a-zA-Z0-9._-]")]
    InvalidTopicName(String),
    /// A partition number outside the topic.
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition {
        /// The topic asked for.
        topic: String,
        /// The partition asked for.
        partition: i32,
    },
    /// The embedded store failed (disk full, corruption, permissions).
    #[error("embedded store: {0}")]
    Store(String),
    /// A stored record could not be decoded: the bytes on disk are damaged.
    #[error("corrupt record at {topic}/{partition}@{offset}: {reason}")]
    Corrupt {
        /// Topic of the damaged record.
        topic: String,
        /// Partition of the damaged record.
        partition: i32,
        /// Offset of the damaged record.
        offset: i64,
        /// What was wrong with it.
        reason: String,
    },
    /// The Kafka client reported an error.
    #[error("kafka: {0}")]
    Kafka(String),
    /// An operation did not finish in time (broker down, slow disk).
    #[error("timed out after {0:?}: {1}")]
    Timeout(Duration, String),
    /// The log was closed while the operation was in flight.
    #[error("the message log is shut down")]
    Closed,
    /// A transactional producer was fenced by a newer instance with the same id.
    #[error("transactional producer fenced: {0}")]
    Fenced(String),
    /// The configuration cannot work.
    #[error("invalid log configuration: {0}")]
    Config(String),
}

impl From<fjall::Error> for LogError {
    fn from(e: fjall::Error) -> Self {
        LogError::Store(e.to_string())
    }
}

impl From<rdkafka::error::KafkaError> for LogError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        use rdkafka::types::RDKafkaErrorCode;
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::Fenced) | Some(RDKafkaErrorCode::ProducerFenced) => {
                LogError::Fenced(e.to_string())
            }
            _ => LogError::Kafka(e.to_string()),
        }
    }
}

/// Result alias for log operations.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
