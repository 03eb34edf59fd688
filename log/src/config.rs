//! Configuration of the message log and of its topics.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which backend carries the log, and how to reach it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `embedded` (default: local disk, one process) or `kafka`.
    pub backend: Backend,
    /// Settings of the embedded backend.
    pub embedded: EmbeddedConfig,
    /// Settings of the Kafka backend.
    pub kafka: KafkaConfig,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            backend: Backend::Embedded,
            embedded: EmbeddedConfig::default(),
            kafka: KafkaConfig::default(),
        }
    }
}

/// The two backends behind the one log API.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Partitions on local disk in fjall; the single-machine default.
    Embedded,
    /// An Apache Kafka cluster, through rdkafka.
    Kafka,
}

/// Settings of the embedded (fjall) backend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Directory of the store; relative paths are under the data directory.
    pub dir: Option<PathBuf>,
    /// How often retention and compaction run, in seconds.
    pub maintenance_interval_secs: u64,
    /// Most records one group commit writes at once.
    pub max_batch_records: usize,
    /// `fsync` every commit (survives power loss, slower) instead of writing to the OS cache
    /// (survives a process kill, which is what the log promises by default).
    pub fsync: bool,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            dir: None,
            maintenance_interval_secs: 60,
            max_batch_records: 16_384,
            fsync: false,
        }
    }
}

/// Settings of the Kafka backend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port,host:port`.
    pub brokers: String,
    /// Replication factor of topics we create; -1 takes the broker's default.
    pub replication_factor: i32,
    /// How long a produced record may wait for the cluster (retrying) before its send fails, in ms.
    /// This is the bounded buffer that rides out a broker restart.
    pub delivery_timeout_ms: u64,
    /// Most records in flight per producer before `send` waits (back-pressure).
    pub max_in_flight: usize,
    /// Prefix of every consumer group name, so that two deployments (or a test) sharing a
    /// cluster keep separate groups: `prod.` makes the history sink's group `prod.history`.
    pub group_prefix: String,
    /// Extra librdkafka properties (`security.protocol`, `sasl.*`, `ssl.*`, …).
    pub properties: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            replication_factor: -1,
            delivery_timeout_ms: 300_000,
            max_in_flight: 100_000,
            group_prefix: String::new(),
            properties: Default::default(),
        }
    }
}

/// How a topic is laid out and cleaned: the same meaning on both backends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicConfig {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Keep only the latest record per key (Kafka `cleanup.policy=compact`).
    pub compacted: bool,
    /// Delete records older than this, in ms; `None` keeps them forever.
    pub retention_ms: Option<i64>,
}

impl TopicConfig {
    /// A topic with `partitions` partitions that keeps everything.
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        TopicConfig {
            name: name.into(),
            partitions,
            compacted: false,
            retention_ms: None,
        }
    }

    /// Makes the topic compacted, builder style.
    pub fn compacted(mut self) -> Self {
        self.compacted = true;
        self
    }

    /// Sets a retention time, builder style.
    pub fn retention_ms(mut self, ms: i64) -> Self {
        self.retention_ms = Some(ms);
        self
    }
}

/// Checks a topic name against Kafka's rule, which the embedded backend also enforces.
pub fn validate_topic_name(name: &str) -> crate::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(crate::LogError::InvalidTopicName(name.to_string()))
    }
}

/// Where a new consumer group starts when it has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// The oldest retained record (Kafka `auto.offset.reset=earliest`).
    #[default]
    Earliest,
    /// Only records appended after the consumer joined.
    Latest,
}
