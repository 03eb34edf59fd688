//! The history sink: every Avro topic into its Delta Lake table, exactly once
//! (see `automata-history` for the table layout and the offsets carried in Delta commits).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use automata_history::{FlushPolicy, HistoryWriter};
use automata_log::{ConsumedRecord, TopicPartitionOffset};
use automata_schemas::SchemaIds;

use crate::runtime::{Sink, SinkError};

/// How the history tables are kept tidy.
#[derive(Debug, Clone, Default)]
pub struct Upkeep {
    /// How often small files are compacted, old days expired and dead files vacuumed
    /// (`None`: never).
    pub every: Option<Duration>,
    /// How long each topic's rows are kept (absent: forever).
    pub retention: BTreeMap<String, Duration>,
}

/// Writes the pipeline's topics to Delta tables under a root location.
pub struct HistorySink {
    writer: HistoryWriter,
    upkeep: Upkeep,
    last_upkeep: Instant,
}

impl HistorySink {
    /// A sink writing under `location` with the registered schema `ids`.
    pub fn new(
        location: impl Into<automata_history::HistoryLocation>,
        ids: SchemaIds,
        policy: FlushPolicy,
        upkeep: Upkeep,
    ) -> Self {
        HistorySink {
            writer: HistoryWriter::new(location, ids, policy),
            upkeep,
            last_upkeep: Instant::now(),
        }
    }

    /// Compaction, retention and vacuum, when due; a failure is logged and tried next time.
    async fn upkeep(&mut self) {
        let Some(every) = self.upkeep.every else {
            return;
        };
        if self.last_upkeep.elapsed() < every {
            return;
        }
        self.last_upkeep = Instant::now();
        let retention = self.upkeep.retention.clone();
        match self.writer.maintain(|t| retention.get(t).copied()).await {
            Ok(reports) => {
                for r in reports
                    .iter()
                    .filter(|r| r.files_compacted + r.rows_expired + r.files_vacuumed > 0)
                {
                    tracing::info!(table = %r.table, compacted = r.files_compacted, written = r.files_written, expired_rows = r.rows_expired, vacuumed = r.files_vacuumed, "history upkeep");
                }
            }
            Err(e) => tracing::warn!(error = %e, "history upkeep failed; will retry"),
        }
    }

    fn durable(&self) -> Vec<TopicPartitionOffset> {
        self.writer
            .committed_offsets()
            .into_iter()
            .map(|(topic, partition, offset)| TopicPartitionOffset {
                topic,
                partition,
                offset: offset + 1,
            })
            .collect()
    }

    async fn flush(&mut self, force: bool) -> Result<Vec<TopicPartitionOffset>, SinkError> {
        let rows = self.writer.flush(force).await.map_err(err)?;
        if rows > 0 {
            metrics::counter!("automata_history_rows_written_total").increment(rows as u64);
            tracing::debug!(rows, "history written");
        }
        Ok(self.durable())
    }
}

fn by_topic(partitions: &[(String, i32)]) -> BTreeMap<&str, Vec<i32>> {
    let mut out: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        out.entry(t.as_str()).or_default().push(*p);
    }
    out
}

fn err(e: automata_history::HistoryError) -> SinkError {
    SinkError::Write {
        sink: "history",
        message: e.to_string(),
    }
}

impl Sink for HistorySink {
    fn name(&self) -> &'static str {
        "history"
    }

    fn inputs(&self) -> Vec<&'static str> {
        automata_history::history_topics().map(|t| t.name).collect()
    }

    async fn write(
        &mut self,
        batch: &[ConsumedRecord],
    ) -> Result<Vec<TopicPartitionOffset>, SinkError> {
        let rep = self.writer.ingest(batch).await.map_err(err)?;
        if rep.unreadable > 0 {
            metrics::counter!("automata_history_unreadable_total").increment(rep.unreadable as u64);
        }
        if rep.duplicates > 0 {
            metrics::counter!("automata_history_duplicates_skipped_total")
                .increment(rep.duplicates as u64);
        }
        self.flush(false).await
    }

    async fn idle(&mut self) -> Result<Vec<TopicPartitionOffset>, SinkError> {
        let offsets = self.flush(false).await?;
        self.upkeep().await;
        Ok(offsets)
    }

    async fn assigned(
        &mut self,
        partitions: &[(String, i32)],
    ) -> Result<Vec<TopicPartitionOffset>, SinkError> {
        let mut out = Vec::new();
        for (topic, parts) in by_topic(partitions) {
            for (partition, offset) in self.writer.assign(topic, &parts).await.map_err(err)? {
                out.push(TopicPartitionOffset {
                    topic: topic.to_string(),
                    partition,
                    offset,
                });
            }
        }
        if !out.is_empty() {
            tracing::info!(
                partitions = out.len(),
                "history resumes from the tables' offsets"
            );
        }
        Ok(out)
    }

    async fn revoked(&mut self, partitions: &[(String, i32)]) -> Result<(), SinkError> {
        for (topic, parts) in by_topic(partitions) {
            self.writer.revoke(topic, &parts).await.map_err(err)?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<Vec<TopicPartitionOffset>, SinkError> {
        self.flush(true).await
    }
}
