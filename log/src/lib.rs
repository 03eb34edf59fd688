//! The message log: one API for every producer, processor and sink, with two backends.
//!
//! - [`Backend::Embedded`]: partitions on local disk (fjall), the default on one machine.
//! - [`Backend::Kafka`]: an Apache Kafka cluster (rdkafka), for scale-out.
//!
//! Both give the same guarantees, checked by one conformance suite (`tests/log_conformance.rs`):
//! order per key, the same key-to-partition rule (Kafka's murmur2), no loss of an acknowledged
//! record across a restart, redelivery of what was not committed, compaction to the latest
//! value per key, consumer groups that resume from their committed offsets, and atomic
//! "outputs + input offsets" commits for exactly-once consume-transform-produce.

pub mod config;
pub mod embedded;
pub mod error;
pub mod kafka;
pub mod partitioner;
pub mod record;

use std::path::Path;
use std::time::Duration;

pub use config::{Backend, EmbeddedConfig, KafkaConfig, LogConfig, StartFrom, TopicConfig};
pub use error::{LogError, Result};
pub use record::{
    ConsumedRecord, Delivery, Header, Record, TopicPartitionOffset, now_ms, offsets_to_commit,
};

/// The topic that receives records a processor could not decode or handle.
pub const DEAD_LETTER_TOPIC: &str = "dead-letters";

/// Header names a dead-lettered record carries, so an operator can see why and from where.
pub mod dead_letter_headers {
    /// Why the record was rejected.
    pub const REASON: &str = "ma.dead-letter.reason";
    /// The topic it came from.
    pub const TOPIC: &str = "ma.dead-letter.topic";
    /// The partition it came from.
    pub const PARTITION: &str = "ma.dead-letter.partition";
    /// Its offset there.
    pub const OFFSET: &str = "ma.dead-letter.offset";
    /// The processor (consumer group) that rejected it.
    pub const GROUP: &str = "ma.dead-letter.group";
}

/// Builds the dead-letter copy of a record: same key, value and headers, plus why and from where.
pub fn dead_letter(source: &ConsumedRecord, group: &str, reason: &str) -> (String, Record) {
    use dead_letter_headers as h;
    let mut r = source.record.clone();
    r = r
        .with_header(h::REASON, reason.to_string())
        .with_header(h::TOPIC, source.topic.clone())
        .with_header(h::PARTITION, source.partition.to_string())
        .with_header(h::OFFSET, source.offset.to_string())
        .with_header(h::GROUP, group.to_string());
    metrics::counter!("automata_dead_lettered_records_total", "topic" => source.topic.clone(), "group" => group.to_string()).increment(1);
    (DEAD_LETTER_TOPIC.to_string(), r)
}

/// Counts an append attempt in the pipeline's produce metrics, the same way on both backends.
pub(crate) fn record_produce_metrics(
    backend: &'static str,
    topic: &str,
    n: usize,
    bytes: usize,
    ok: bool,
) {
    if ok {
        metrics::counter!("automata_records_produced_total", "topic" => topic.to_string(), "backend" => backend).increment(n as u64);
        metrics::counter!("automata_produced_bytes_total", "topic" => topic.to_string(), "backend" => backend).increment(bytes as u64);
    } else {
        metrics::counter!("automata_produce_errors_total", "topic" => topic.to_string(), "backend" => backend).increment(n as u64);
    }
}

/// A range of offsets `[from, to)` of one partition, for [`MessageLog::read_ranges`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRange {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset to read.
    pub from: i64,
    /// Offset to stop before (usually the high watermark).
    pub to: i64,
}

/// The log, whichever backend carries it; cheap to clone.
#[derive(Clone)]
pub enum MessageLog {
    /// Local disk.
    Embedded(embedded::EmbeddedLog),
    /// A Kafka cluster.
    Kafka(kafka::KafkaLog),
}

/// Low and high watermark of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PartitionWatermarks {
    /// Partition number.
    pub partition: i32,
    /// First offset still retained.
    pub low: i64,
    /// Next offset to be written.
    pub high: i64,
}

impl MessageLog {
    /// Opens the configured backend; a relative embedded directory is resolved under `data_dir`.
    pub fn open(cfg: &LogConfig, data_dir: &Path) -> Result<Self> {
        match cfg.backend {
            Backend::Embedded => {
                let dir = match &cfg.embedded.dir {
                    Some(d) if d.is_absolute() => d.clone(),
                    Some(d) => data_dir.join(d),
                    None => data_dir.join("log"),
                };
                Ok(MessageLog::Embedded(embedded::EmbeddedLog::open(
                    &dir,
                    cfg.embedded.clone(),
                )?))
            }
            Backend::Kafka => Ok(MessageLog::Kafka(kafka::KafkaLog::connect(
                cfg.kafka.clone(),
            )?)),
        }
    }

    /// One line saying where the log lives, for start-up output and status.
    pub fn describe(&self) -> String {
        match self {
            MessageLog::Embedded(l) => format!("embedded log at {}", l.dir().display()),
            MessageLog::Kafka(k) => format!("kafka at {}", k.brokers()),
        }
    }

    /// `embedded` or `kafka`.
    pub fn backend(&self) -> Backend {
        match self {
            MessageLog::Embedded(_) => Backend::Embedded,
            MessageLog::Kafka(_) => Backend::Kafka,
        }
    }

    /// Creates missing topics (idempotent).
    pub async fn ensure_topics(&self, topics: &[TopicConfig]) -> Result<()> {
        match self {
            MessageLog::Embedded(l) => l.ensure_topics(topics),
            MessageLog::Kafka(k) => k.ensure_topics(topics).await,
        }
    }

    /// Appends one record; resolves once it is acknowledged (durable per the backend's promise).
    pub async fn send(&self, topic: &str, record: Record) -> Result<Delivery> {
        match self {
            MessageLog::Embedded(l) => {
                let mut d = l.send_batch(topic, vec![record]).await?;
                d.pop().ok_or(LogError::Closed)
            }
            MessageLog::Kafka(k) => k.send(topic, &record).await,
        }
    }

    /// Appends many records; resolves once all are acknowledged, with their positions in order.
    pub async fn send_batch(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Delivery>> {
        match self {
            MessageLog::Embedded(l) => l.send_batch(topic, records).await,
            MessageLog::Kafka(k) => k.send_batch(topic, &records).await,
        }
    }

    /// Opens a consumer-group member.
    pub fn consumer(&self, group: &str, topics: &[&str], start: StartFrom) -> Result<LogConsumer> {
        Ok(match self {
            MessageLog::Embedded(l) => LogConsumer::Embedded(l.consumer(group, topics, start)?),
            MessageLog::Kafka(k) => LogConsumer::Kafka(k.consumer(group, topics, start)?),
        })
    }

    /// A producer whose commits append outputs and input offsets atomically.
    pub async fn transactional_producer(&self, transactional_id: &str) -> Result<TxProducer> {
        Ok(match self {
            MessageLog::Embedded(l) => TxProducer::Embedded(l.clone()),
            MessageLog::Kafka(k) => {
                TxProducer::Kafka(k.transactional_producer(transactional_id).await?)
            }
        })
    }

    /// Watermarks of every partition of a topic.
    pub async fn watermarks(&self, topic: &str) -> Result<Vec<PartitionWatermarks>> {
        let raw = match self {
            MessageLog::Embedded(l) => l.watermarks(topic)?,
            MessageLog::Kafka(k) => k.watermarks(topic).await?,
        };
        Ok(raw
            .into_iter()
            .map(|(partition, low, high)| PartitionWatermarks {
                partition,
                low,
                high,
            })
            .collect())
    }

    /// Reads offset ranges without joining a consumer group (queries over the unwritten tail of
    /// a topic use it): at most `max` records per range, waiting at most `wait` on Kafka.
    pub async fn read_ranges(
        &self,
        ranges: &[ReadRange],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ConsumedRecord>> {
        match self {
            MessageLog::Embedded(l) => {
                let mut out = Vec::new();
                for r in ranges {
                    out.extend(l.read_range(&r.topic, r.partition, r.from, r.to, max)?);
                }
                Ok(out)
            }
            MessageLog::Kafka(k) => Ok(k.read_ranges(ranges, max, wait).await?.0),
        }
    }

    /// Reads offset ranges to their ends, or fails: for a decision that a partial read would
    /// make wrongly (what a compacted topic holds), where [`Self::read_ranges`] would return
    /// what `wait` allowed.
    pub async fn read_ranges_whole(
        &self,
        ranges: &[ReadRange],
        wait: Duration,
    ) -> Result<Vec<ConsumedRecord>> {
        match self {
            MessageLog::Embedded(_) => self.read_ranges(ranges, usize::MAX, wait).await,
            MessageLog::Kafka(k) => match k.read_ranges(ranges, usize::MAX, wait).await? {
                (out, 0) => Ok(out),
                (_, cut) => Err(LogError::Kafka(format!(
                    "{cut} partition(s) not read to their end within {wait:?}"
                ))),
            },
        }
    }

    /// A group's committed offset on a partition.
    pub async fn committed(&self, group: &str, topic: &str, partition: i32) -> Result<Option<i64>> {
        match self {
            MessageLog::Embedded(l) => l.committed(group, topic, partition),
            MessageLog::Kafka(k) => k.committed(group, topic, partition).await,
        }
    }

    /// Waits until everything sent is acknowledged (a no-op on the embedded log, whose sends
    /// resolve only when durable).
    pub async fn flush(&self, timeout: Duration) -> Result<()> {
        match self {
            MessageLog::Embedded(_) => Ok(()),
            MessageLog::Kafka(k) => k.flush(timeout).await,
        }
    }
}

/// A consumer-group member, whichever backend.
pub enum LogConsumer {
    /// On the embedded log.
    Embedded(embedded::EmbeddedConsumer),
    /// On Kafka.
    Kafka(kafka::KafkaConsumer),
}

impl LogConsumer {
    /// Waits up to `wait` for records; returns up to `max` (empty on timeout).
    pub async fn recv_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<ConsumedRecord>> {
        match self {
            LogConsumer::Embedded(c) => c.recv_batch(max, wait).await,
            LogConsumer::Kafka(c) => c.recv_batch(max, wait).await,
        }
    }

    /// Commits offsets, each the *next* offset to read (last processed + 1).
    pub async fn commit(&self, offsets: &[TopicPartitionOffset]) -> Result<()> {
        match self {
            LogConsumer::Embedded(c) => c.commit(offsets).await,
            LogConsumer::Kafka(c) => c.commit(offsets).await,
        }
    }

    /// Moves the read position of an owned partition.
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<()> {
        match self {
            LogConsumer::Embedded(c) => c.seek(topic, partition, offset),
            LogConsumer::Kafka(c) => c.seek(topic, partition, offset),
        }
    }

    /// The partitions this member owns now.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        match self {
            LogConsumer::Embedded(c) => c.assignment(),
            LogConsumer::Kafka(c) => c.assignment(),
        }
    }

    /// The member's consumer group.
    pub fn group(&self) -> &str {
        match self {
            LogConsumer::Embedded(c) => c.group(),
            LogConsumer::Kafka(c) => c.group(),
        }
    }
}

/// Commits outputs together with input offsets: a Kafka transaction, or one atomic embedded write.
pub enum TxProducer {
    /// Embedded: a single write batch.
    Embedded(embedded::EmbeddedLog),
    /// Kafka: a transactional producer.
    Kafka(kafka::KafkaTxProducer),
}

impl TxProducer {
    /// Appends `outputs` and commits `offsets` for `consumer`'s group, all or nothing.
    pub async fn commit(
        &self,
        consumer: &LogConsumer,
        outputs: Vec<(String, Record)>,
        offsets: Vec<TopicPartitionOffset>,
    ) -> Result<()> {
        match (self, consumer) {
            (TxProducer::Embedded(l), c) => l.commit_transaction(c.group(), outputs, offsets).await,
            (TxProducer::Kafka(p), LogConsumer::Kafka(c)) => p.commit(c, outputs, offsets).await,
            (TxProducer::Kafka(_), LogConsumer::Embedded(_)) => Err(LogError::Config(
                "a Kafka transaction needs a Kafka consumer".into(),
            )),
        }
    }
}
