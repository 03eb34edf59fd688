//! Fleet history as Delta Lake tables, written exactly once from the log.
//!
//! One table per topic under the history root (`<root>/<topic>`), partitioned by `date`
//! (UTC day of the record's log timestamp). Columns are the topic's Avro record decoded straight
//! to Arrow by `arrow-avro` (typed columns, nested records as structs, maps and arrays as Arrow
//! maps and lists), plus `_partition`, `_offset` and `_log_timestamp`.
//!
//! Exactly once, as delta-io's kafka-delta-ingest does it: every commit carries, as Delta `txn`
//! actions, the last offset it holds for each log partition (`app_id` =
//! `metal-automata/<topic>/<partition>`). On start the writer reads those versions back and skips
//! anything at or below them, so a crash between the Delta commit and the consumer's own offset
//! commit never duplicates a row, and a crash before the Delta commit loses nothing (the records
//! are read again). A commit is atomic in the Delta log: a half-written file is never visible.

pub mod layout;
pub mod tables;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use automata_log::ConsumedRecord;
use automata_schemas::{SchemaIds, TopicSpec};
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;

pub use layout::{
    DATE_COLUMN, LOG_TIMESTAMP_COLUMN, OFFSET_COLUMN, PARTITION_COLUMN, RecordBatcher,
};
pub use tables::{HistoryTables, open_table, table_offsets};

/// Why history could not be written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The Delta table failed (storage, commit conflict).
    #[error("delta table {table}: {source}")]
    Delta {
        /// Table (topic).
        table: String,
        /// Why.
        #[source]
        source: deltalake::DeltaTableError,
    },
    /// Arrow or Avro conversion failed.
    #[error("table {table}: {message}")]
    Convert {
        /// Table (topic).
        table: String,
        /// What went wrong.
        message: String,
    },
    /// The location is not a usable URL or path.
    #[error("invalid history location {0}")]
    Location(String),
}

/// When a table's buffer is written out.
#[derive(Debug, Clone)]
pub struct FlushPolicy {
    /// Rows that trigger a write (one Parquet row group per write, near this size).
    pub max_rows: usize,
    /// Age of the oldest buffered row that triggers a write.
    pub max_age: Duration,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy {
            max_rows: 100_000,
            max_age: Duration::from_secs(30),
        }
    }
}

/// The Delta `txn` app id that carries a log partition's last written offset.
pub fn app_id(topic: &str, partition: i32) -> String {
    format!("metal-automata/{topic}/{partition}")
}

/// What one `ingest` call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestReport {
    /// Rows buffered.
    pub buffered: usize,
    /// Records already in the table (redelivered after a crash), skipped.
    pub duplicates: usize,
    /// Records that could not be decoded, skipped (processors dead-letter them).
    pub unreadable: usize,
}

/// Buffers one topic's records and appends them to its Delta table.
struct TableWriter {
    topic: &'static TopicSpec,
    uri: String,
    batcher: RecordBatcher,
    oldest: Option<Instant>,
    /// Last offset buffered, per log partition (a retried batch is not buffered twice).
    buffered: HashMap<i32, i64>,
    /// A batch taken from the buffer whose commit failed: written first on the next flush.
    pending: Option<layout::OffsetBatch>,
    /// Last offset in the table, per log partition.
    committed: HashMap<i32, i64>,
    table: Option<DeltaTable>,
}

impl TableWriter {
    async fn open(
        root: &str,
        topic: &'static TopicSpec,
        schema_id: u32,
    ) -> Result<Self, HistoryError> {
        let uri = tables::table_uri(root, topic.name);
        let table = open_table(&uri).await?;
        let committed = match &table {
            Some(t) => table_offsets(t, topic).await?,
            None => HashMap::new(),
        };
        Ok(TableWriter {
            topic,
            uri,
            batcher: RecordBatcher::new(topic, schema_id)?,
            oldest: None,
            buffered: HashMap::new(),
            pending: None,
            committed,
            table,
        })
    }

    fn delta_err(&self, source: deltalake::DeltaTableError) -> HistoryError {
        HistoryError::Delta {
            table: self.topic.name.to_string(),
            source,
        }
    }

    fn ingest(&mut self, r: &ConsumedRecord, rep: &mut IngestReport) -> Result<(), HistoryError> {
        let seen = |m: &HashMap<i32, i64>| m.get(&r.partition).is_some_and(|o| r.offset <= *o);
        if seen(&self.committed) || seen(&self.buffered) {
            rep.duplicates += 1;
            return Ok(());
        }
        match self.batcher.push(r)? {
            layout::Pushed::Row => {
                rep.buffered += 1;
                self.oldest.get_or_insert_with(Instant::now);
            }
            layout::Pushed::Unreadable => rep.unreadable += 1,
            layout::Pushed::Tombstone => {}
        }
        self.buffered.insert(r.partition, r.offset);
        Ok(())
    }

    fn due(&self, policy: &FlushPolicy) -> bool {
        self.pending.is_some()
            || self.batcher.len() >= policy.max_rows
            || self.oldest.is_some_and(|t| t.elapsed() >= policy.max_age)
    }

    /// Appends what is buffered as one Delta commit carrying the offsets; returns rows written.
    ///
    /// If the commit fails, the batch stays pending and is written first next time, so no row
    /// is lost and the offsets never get ahead of the rows.
    async fn flush(&mut self) -> Result<usize, HistoryError> {
        if self.pending.is_none() {
            self.oldest = None;
            // Everything buffered is covered by this commit, skipped records (tombstones,
            // unreadable ones) included, so their offsets move on with it.
            let covered: Vec<(i32, i64)> = self.buffered.iter().map(|(p, o)| (*p, *o)).collect();
            match self.batcher.take()? {
                Some((batch, _)) => self.pending = Some((batch, covered)),
                None => {
                    for (p, o) in covered {
                        let c = self.committed.entry(p).or_insert(o);
                        *c = (*c).max(o);
                    }
                }
            }
        }
        let Some((batch, offsets)) = self.pending.clone() else {
            return Ok(0);
        };
        let rows = batch.num_rows();
        let txns = offsets
            .iter()
            .map(|(p, o)| Transaction::new(app_id(self.topic.name, *p), *o))
            .collect();
        let table = match self.table.take() {
            Some(t) => t,
            None => tables::new_table(&self.uri)?,
        };
        let written = table
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_partition_columns([DATE_COLUMN])
            .with_commit_properties(CommitProperties::default().with_application_transactions(txns))
            .await;
        match written {
            Ok(t) => {
                self.table = Some(t);
                self.pending = None;
                self.committed.extend(offsets);
                Ok(rows)
            }
            Err(e) => {
                // The handle may be stale after a failed commit: reopen on the next attempt.
                self.table = open_table(&self.uri).await.ok().flatten();
                Err(self.delta_err(e))
            }
        }
    }
}

/// What a maintenance pass did to one table.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct MaintenanceReport {
    /// Table (topic).
    pub table: String,
    /// Small files merged away by compaction.
    pub files_compacted: u64,
    /// Files compaction wrote in their place.
    pub files_written: u64,
    /// Rows removed because they are older than the table's retention.
    pub rows_expired: u64,
    /// Unreferenced files deleted from storage.
    pub files_vacuumed: u64,
}

/// Files below this are merged by compaction (delta-rs' default target is 100 MiB).
const COMPACT_TARGET_BYTES: u64 = 128 << 20;
/// Removed files are kept this long for readers still scanning an older version.
const VACUUM_GRACE: Duration = Duration::from_secs(3600);

impl TableWriter {
    /// Compacts small files, drops days past `retention`, and deletes files no longer referenced.
    async fn maintain(
        &mut self,
        retention: Option<Duration>,
    ) -> Result<MaintenanceReport, HistoryError> {
        let mut rep = MaintenanceReport {
            table: self.topic.name.to_string(),
            ..Default::default()
        };
        let Some(mut table) = self.table.take() else {
            return Ok(rep);
        };
        let result: Result<DeltaTable, deltalake::DeltaTableError> = async {
            if let Some(keep) = retention {
                let cutoff = chrono::Utc::now().timestamp_millis()
                    - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
                let day = layout::day(cutoff);
                let (t, m) = table
                    .delete()
                    .with_predicate(format!("{DATE_COLUMN} < '{day}'"))
                    .await?;
                rep.rows_expired = m.num_deleted_rows.unwrap_or(0) as u64;
                table = t;
            }
            let target = std::num::NonZeroU64::new(COMPACT_TARGET_BYTES)
                .unwrap_or(std::num::NonZeroU64::MIN);
            let (t, m) = table.optimize().with_target_size(target).await?;
            rep.files_compacted = m.num_files_removed;
            rep.files_written = m.num_files_added;
            table = t;
            let (t, m) = table
                .vacuum()
                .with_retention_period(chrono::Duration::from_std(VACUUM_GRACE).unwrap_or_default())
                .with_enforce_retention_duration(false)
                .await?;
            rep.files_vacuumed = m.files_deleted.len() as u64;
            Ok(t)
        }
        .await;
        match result {
            Ok(t) => {
                self.table = Some(t);
                Ok(rep)
            }
            Err(e) => {
                self.table = open_table(&self.uri).await.ok().flatten();
                Err(self.delta_err(e))
            }
        }
    }
}

/// Writes records of many topics into their Delta tables.
pub struct HistoryWriter {
    root: String,
    ids: SchemaIds,
    policy: FlushPolicy,
    tables: BTreeMap<String, TableWriter>,
}

impl HistoryWriter {
    /// A writer under `root` (a local path or a URL object_store understands).
    pub fn new(root: impl Into<String>, ids: SchemaIds, policy: FlushPolicy) -> Self {
        HistoryWriter {
            root: root.into(),
            ids,
            policy,
            tables: BTreeMap::new(),
        }
    }

    async fn table(&mut self, topic: &str) -> Result<Option<&mut TableWriter>, HistoryError> {
        if !self.tables.contains_key(topic) {
            let (Some(spec), Some(id)) =
                (automata_schemas::catalog::topic(topic), self.ids.get(topic))
            else {
                return Ok(None);
            };
            if spec.schema_json.is_none() {
                return Ok(None);
            }
            let w = TableWriter::open(&self.root, spec, id).await?;
            self.tables.insert(topic.to_string(), w);
        }
        Ok(self.tables.get_mut(topic))
    }

    /// The last offset already in history for a log partition (resume point), if any.
    pub async fn committed_offset(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, HistoryError> {
        Ok(self
            .table(topic)
            .await?
            .and_then(|t| t.committed.get(&partition).copied()))
    }

    /// Buffers records; skips those already in history and those that cannot be decoded.
    pub async fn ingest(
        &mut self,
        records: &[ConsumedRecord],
    ) -> Result<IngestReport, HistoryError> {
        let mut rep = IngestReport::default();
        for r in records {
            if let Some(t) = self.table(&r.topic).await? {
                t.ingest(r, &mut rep)?;
            }
        }
        Ok(rep)
    }

    /// Writes every table whose buffer is due (or all, with `force`); returns rows written.
    pub async fn flush(&mut self, force: bool) -> Result<usize, HistoryError> {
        let mut rows = 0;
        for t in self.tables.values_mut() {
            if force || t.due(&self.policy) {
                rows += t.flush().await?;
            }
        }
        Ok(rows)
    }

    /// Compacts, expires (per `retention`, by topic) and vacuums every table opened so far.
    pub async fn maintain(
        &mut self,
        retention: impl Fn(&str) -> Option<Duration>,
    ) -> Result<Vec<MaintenanceReport>, HistoryError> {
        let mut out = Vec::new();
        for (topic, t) in self.tables.iter_mut() {
            out.push(t.maintain(retention(topic)).await?);
        }
        Ok(out)
    }

    /// The last offset in history of every log partition written so far.
    pub fn committed_offsets(&self) -> Vec<(String, i32, i64)> {
        self.tables
            .iter()
            .flat_map(|(topic, t)| {
                t.committed
                    .iter()
                    .map(move |(p, o)| (topic.clone(), *p, *o))
            })
            .collect()
    }

    /// Rows buffered and not yet written.
    pub fn buffered(&self) -> usize {
        self.tables
            .values()
            .map(|t| t.batcher.len() + t.pending.as_ref().map_or(0, |p| p.0.num_rows()))
            .sum()
    }

    /// Where a topic's table lives.
    pub fn table_uri(&self, topic: &str) -> String {
        tables::table_uri(&self.root, topic)
    }
}
