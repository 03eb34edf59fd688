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
pub mod storage;
pub mod tables;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use automata_log::ConsumedRecord;
use automata_schemas::{SchemaIds, TopicSpec};
use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;

pub use layout::{
    DATE_COLUMN, LOG_TIMESTAMP_COLUMN, OFFSET_COLUMN, PARTITION_COLUMN, RecordBatcher,
};
pub use storage::HistoryLocation;
pub use tables::{HistoryTables, open_table, open_table_at, table_offsets};

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
    location: HistoryLocation,
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
        location: &HistoryLocation,
        topic: &'static TopicSpec,
        schema_id: u32,
    ) -> Result<Self, HistoryError> {
        let uri = location.table_uri(topic.name);
        let table = open_table_at(location, &uri).await?;
        let committed = match &table {
            Some(t) => table_offsets(t, topic).await?,
            None => HashMap::new(),
        };
        Ok(TableWriter {
            topic,
            location: location.clone(),
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
            self.stage()?;
        }
        // Rows another writer committed meanwhile (a partition that moved to another member and
        // back, or a commit that succeeded although it reported a failure) are dropped here.
        let committed = self.committed.clone();
        let fresh = |p: i32, o: i64| committed.get(&p).is_none_or(|c| o > *c);
        self.pending = match self.pending.take() {
            Some(b) => layout::retain_rows(&b, |_| true, fresh)
                .map_err(|e| layout::convert_err(self.topic.name, e))?,
            None => None,
        };
        let Some((batch, offsets)) = self.pending.clone() else {
            return Ok(0);
        };
        if batch.num_rows() == 0 {
            // Only skipped records (tombstones, unreadable ones): no file to write.
            self.advance(&offsets);
            self.pending = None;
            return Ok(0);
        }
        let rows = batch.num_rows();
        let txns = offsets
            .iter()
            .map(|(p, o)| Transaction::new(app_id(self.topic.name, *p), *o))
            .collect();
        let table = match self.table.take() {
            Some(t) => t,
            None => tables::new_table(&self.location, &self.uri)?,
        };
        let written = table
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_partition_columns([DATE_COLUMN])
            .with_writer_properties(writer_properties())
            .with_commit_properties(CommitProperties::default().with_application_transactions(txns))
            .await;
        match written {
            Ok(t) => {
                self.table = Some(t);
                self.pending = None;
                self.advance(&offsets);
                Ok(rows)
            }
            Err(e) => {
                // The handle may be stale after a failed commit (or another writer committed the
                // same partitions): reopen, and take the table's offsets as the truth again.
                self.table = open_table_at(&self.location, &self.uri)
                    .await
                    .ok()
                    .flatten();
                if let Some(t) = &self.table
                    && let Ok(now) = table_offsets(t, self.topic).await
                {
                    self.committed.extend(now);
                }
                Err(self.delta_err(e))
            }
        }
    }

    /// Moves what is buffered into `pending`: one batch with the offsets it covers.
    fn stage(&mut self) -> Result<(), HistoryError> {
        self.oldest = None;
        // Everything buffered is covered by the commit, skipped records (tombstones, unreadable
        // ones) included, so their offsets move on with it.
        let covered: Vec<(i32, i64)> = self.buffered.iter().map(|(p, o)| (*p, *o)).collect();
        self.pending = match self.batcher.take()? {
            Some((batch, _)) => Some((batch, covered)),
            None if covered.is_empty() => None,
            None => Some((RecordBatch::new_empty(self.batcher.schema()), covered)),
        };
        Ok(())
    }

    fn advance(&mut self, offsets: &[(i32, i64)]) {
        for (p, o) in offsets {
            let c = self.committed.entry(*p).or_insert(*o);
            *c = (*c).max(*o);
        }
    }

    /// Forgets partitions this member no longer owns: their buffered rows are dropped (the new
    /// owner reads them again from the table's offsets), so no row is written twice.
    fn release(&mut self, partitions: &[i32]) -> Result<(), HistoryError> {
        if self.pending.is_none() {
            self.stage()?;
        } else if !self.batcher.is_empty() {
            // A failed batch waits: keep it first, and the newer rows after it.
            let older = self.pending.take();
            self.stage()?;
            self.pending = merge(older, self.pending.take())
                .map_err(|e| layout::convert_err(self.topic.name, e))?;
        }
        let gone = |p: i32| partitions.contains(&p);
        self.pending = match self.pending.take() {
            Some(b) => layout::retain_rows(&b, |p| !gone(p), |p, _| !gone(p))
                .map_err(|e| layout::convert_err(self.topic.name, e))?,
            None => None,
        };
        for p in partitions {
            self.buffered.remove(p);
            self.committed.remove(p);
        }
        Ok(())
    }

    /// Reads the table's offsets of `partitions` again (they were just assigned to this member,
    /// and another may have written them since).
    async fn reload(&mut self, partitions: &[i32]) -> Result<Vec<(i32, i64)>, HistoryError> {
        let table = match self.table.take() {
            Some(mut t) => {
                let r = t.update_incremental(None).await;
                self.table = Some(t);
                r.map_err(|e| self.delta_err(e))?;
                self.table.clone()
            }
            None => open_table_at(&self.location, &self.uri).await?,
        };
        self.table = table;
        let now = match &self.table {
            Some(t) => table_offsets(t, self.topic).await?,
            None => HashMap::new(),
        };
        let mut out = Vec::new();
        for p in partitions {
            match now.get(p) {
                Some(o) => {
                    self.committed.insert(*p, *o);
                    out.push((*p, *o));
                }
                None => {
                    self.committed.remove(p);
                }
            }
        }
        Ok(out)
    }
}

/// Two staged batches as one (same schema), offsets merged.
fn merge(
    a: Option<layout::OffsetBatch>,
    b: Option<layout::OffsetBatch>,
) -> Result<Option<layout::OffsetBatch>, String> {
    match (a, b) {
        (Some((ba, oa)), Some((bb, ob))) => {
            let batch = deltalake::arrow::compute::concat_batches(&ba.schema(), [&ba, &bb])
                .map_err(|e| e.to_string())?;
            let mut offsets = oa;
            for (p, o) in ob {
                match offsets.iter_mut().find(|(q, _)| *q == p) {
                    Some(e) => e.1 = e.1.max(o),
                    None => offsets.push((p, o)),
                }
            }
            Ok(Some((batch, offsets)))
        }
        (a, b) => Ok(a.or(b)),
    }
}

/// Rows per Parquet row group: small enough for pruning and parallel scans, large enough for
/// good compression and few footers.
pub const ROW_GROUP_ROWS: usize = 100_000;

/// How every history file is encoded: Snappy (which every Parquet reader has), row groups near
/// [`ROW_GROUP_ROWS`].
fn writer_properties() -> deltalake::parquet::file::properties::WriterProperties {
    deltalake::parquet::file::properties::WriterProperties::builder()
        .set_compression(deltalake::parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
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
            let (t, m) = table
                .optimize()
                .with_target_size(target)
                .with_writer_properties(writer_properties())
                .await?;
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
                self.table = open_table_at(&self.location, &self.uri)
                    .await
                    .ok()
                    .flatten();
                Err(self.delta_err(e))
            }
        }
    }
}

/// Writes records of many topics into their Delta tables.
pub struct HistoryWriter {
    location: HistoryLocation,
    ids: SchemaIds,
    policy: FlushPolicy,
    tables: BTreeMap<String, TableWriter>,
}

impl HistoryWriter {
    /// A writer under `location` (a local path, or object storage with its options).
    pub fn new(location: impl Into<HistoryLocation>, ids: SchemaIds, policy: FlushPolicy) -> Self {
        HistoryWriter {
            location: location.into(),
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
            let w = TableWriter::open(&self.location, spec, id).await?;
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

    /// Partitions of `topic` now owned by this member: reloads their offsets from the table
    /// and returns where reading should resume (the next offset) for those the table holds.
    pub async fn assign(
        &mut self,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Vec<(i32, i64)>, HistoryError> {
        match self.table(topic).await? {
            Some(t) => Ok(t
                .reload(partitions)
                .await?
                .into_iter()
                .map(|(p, o)| (p, o + 1))
                .collect()),
            None => Ok(Vec::new()),
        }
    }

    /// Partitions of `topic` no longer owned by this member: their buffered rows are dropped.
    pub fn revoke(&mut self, topic: &str, partitions: &[i32]) -> Result<(), HistoryError> {
        match self.tables.get_mut(topic) {
            Some(t) => t.release(partitions),
            None => Ok(()),
        }
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
        self.location.table_uri(topic)
    }
}
