//! The record model shared by both backends.

use bytes::Bytes;

/// One header of a record: a name and opaque bytes, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name, e.g. `ma.dead-letter.reason`.
    pub name: String,
    /// Header value.
    pub value: Bytes,
}

/// A record to append: key, value (None is a tombstone on compacted topics), headers, timestamp.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Partitioning and compaction key, usually the server id.
    pub key: Option<Bytes>,
    /// Payload; `None` deletes the key on a compacted topic.
    pub value: Option<Bytes>,
    /// Headers carried with the record.
    pub headers: Vec<Header>,
    /// Event time in milliseconds since the epoch; `None` means "now" at append.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    /// A keyed record with a value, the common case.
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Record {
            key: Some(key.into()),
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    /// A tombstone: deletes `key` from a compacted topic.
    pub fn tombstone(key: impl Into<Bytes>) -> Self {
        Record {
            key: Some(key.into()),
            value: None,
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    /// Adds a header, builder style.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Sets the event timestamp, builder style.
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// The first header with this name, if any.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| &h.value)
    }

    /// Approximate payload size, for byte-rate metrics.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, |k| k.len())
            + self.value.as_ref().map_or(0, |v| v.len())
            + self
                .headers
                .iter()
                .map(|h| h.name.len() + h.value.len())
                .sum::<usize>()
    }
}

/// A record read back from the log, with where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Topic it was read from.
    pub topic: String,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// The record itself; `timestamp_ms` is always set on read.
    pub record: Record,
}

impl ConsumedRecord {
    /// The offset to commit once this record is processed: Kafka's "last processed + 1" rule.
    pub fn next_offset(&self) -> TopicPartitionOffset {
        TopicPartitionOffset {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset + 1,
        }
    }
}

/// A position in a partition: used for commits (always the *next* offset to read) and deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartitionOffset {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// Where an appended record landed, returned once the log has acknowledged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Partition the record was written to.
    pub partition: i32,
    /// Offset it was given.
    pub offset: i64,
}

/// Reduces consumed records to the offsets to commit: the highest next offset per partition.
pub fn offsets_to_commit<'a>(
    records: impl IntoIterator<Item = &'a ConsumedRecord>,
) -> Vec<TopicPartitionOffset> {
    let mut best: std::collections::BTreeMap<(String, i32), i64> = Default::default();
    for r in records {
        let e = best.entry((r.topic.clone(), r.partition)).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    best.into_iter()
        .map(|((topic, partition), offset)| TopicPartitionOffset {
            topic,
            partition,
            offset,
        })
        .collect()
}

/// Milliseconds since the Unix epoch, the timestamp unit of the log.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
