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
pub mod scan;
pub mod sort;
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
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;

pub use layout::{
    DATE_COLUMN, LOG_TIMESTAMP_COLUMN, OFFSET_COLUMN, PARTITION_COLUMN, RecordBatcher,
};
pub use storage::HistoryLocation;
pub use tables::{HistoryTables, history_topics, open_table, open_table_at, table_offsets};

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

/// One batch being encoded and committed by a background task.
struct Write {
    handle: tokio::task::JoinHandle<(Result<DeltaTable, deltalake::DeltaTableError>, Duration)>,
    /// The batch and its offsets: kept to be retried if the commit fails.
    batch: layout::OffsetBatch,
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
    /// The batch being written in the background.
    writing: Option<Write>,
    /// Time spent encoding Parquet and committing, summed over finished writes.
    write_time: Duration,
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
            writing: None,
            write_time: Duration::ZERO,
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
        let dropped = self.batcher.take_dropped();
        rep.buffered = rep.buffered.saturating_sub(dropped);
        rep.unreadable += dropped;
        self.buffered.insert(r.partition, r.offset);
        Ok(())
    }

    fn due(&self, policy: &FlushPolicy) -> bool {
        self.pending.is_some()
            || self.batcher.len() >= policy.max_rows
            || self.oldest.is_some_and(|t| t.elapsed() >= policy.max_age)
    }

    /// Writes out what is due (everything with `force`) and collects a finished background
    /// write; returns the rows committed by this call.
    ///
    /// Parquet encoding and the Delta commit run as a background task, so the next records are
    /// decoded while the last batch is written: one write per table at a time, and a new one
    /// waits for the last. With `force`, returns only when everything buffered is committed.
    ///
    /// If a commit fails, its batch stays pending and is written first next time, so no row is
    /// lost and the offsets never get ahead of the rows.
    async fn flush(&mut self, due: bool, force: bool) -> Result<usize, HistoryError> {
        let start = due || force;
        let mut rows = 0;
        if self
            .writing
            .as_ref()
            .is_some_and(|w| start || w.handle.is_finished())
        {
            rows += self.finish_write().await?;
        }
        if !start {
            return Ok(rows);
        }
        self.start_write()?;
        if force {
            rows += self.finish_write().await?;
        }
        Ok(rows)
    }

    /// Stages what is buffered (or the batch that failed last time) and starts writing it.
    fn start_write(&mut self) -> Result<(), HistoryError> {
        let batch = match self.pending.take() {
            // A retried batch: rows another writer committed meanwhile (a partition that moved
            // to another member and back, or a commit that landed although it reported a
            // failure) are dropped first.
            Some(b) => {
                let committed = &self.committed;
                layout::retain_rows(
                    &b,
                    |_| true,
                    |p, o| committed.get(&p).is_none_or(|c| o > *c),
                )
                .map_err(|e| layout::convert_err(self.topic.name, e))?
            }
            None => self.stage()?,
        };
        let Some((batch, offsets)) = batch else {
            return Ok(());
        };
        if batch.num_rows() == 0 {
            // Only skipped records (tombstones, unreadable ones): no file to write.
            self.advance(&offsets);
            return Ok(());
        }
        let txns = offsets
            .iter()
            .map(|(p, o)| Transaction::new(app_id(self.topic.name, *p), *o))
            .collect();
        let table = match self.table.take() {
            Some(t) => t,
            None => tables::new_table(&self.location, &self.uri)?,
        };
        let rows = batch.clone();
        let (name, key) = (self.topic.name, sort::sort_key(self.topic.name));
        let handle = tokio::spawn(async move {
            let started = Instant::now();
            // Sorting only helps readers skip data: a batch that cannot be sorted is written
            // as it is rather than held back.
            let rows = sort::sort_batch(&rows, key).unwrap_or_else(|e| {
                tracing::warn!(table = name, error = %e, "history batch written unsorted");
                rows
            });
            let written = table
                .write(vec![rows])
                .with_save_mode(SaveMode::Append)
                // A schema release adds optional fields (the evolution guard allows nothing
                // else): merging adds their columns to a table an older release wrote, where a
                // plain append would refuse every batch from then on.
                .with_schema_mode(SchemaMode::Merge)
                .with_partition_columns([DATE_COLUMN])
                .with_writer_properties(writer_properties())
                .with_commit_properties(
                    CommitProperties::default().with_application_transactions(txns),
                )
                .await;
            (written, started.elapsed())
        });
        self.writing = Some(Write {
            handle,
            batch: (batch, offsets),
        });
        Ok(())
    }

    /// Waits for the background write, if any; returns the rows it committed.
    async fn finish_write(&mut self) -> Result<usize, HistoryError> {
        let Some(Write { handle, batch }) = self.writing.take() else {
            return Ok(0);
        };
        let (written, took) = match handle.await {
            Ok(r) => r,
            Err(e) => (
                Err(deltalake::DeltaTableError::Generic(format!(
                    "the write task failed: {e}"
                ))),
                Duration::ZERO,
            ),
        };
        self.write_time += took;
        match written {
            Ok(t) => {
                self.table = Some(t);
                self.advance(&batch.1);
                Ok(batch.0.num_rows())
            }
            Err(e) => {
                self.pending = Some(batch);
                self.reopen().await;
                Err(self.delta_err(e))
            }
        }
    }

    /// After a failed operation the handle may be stale (or another writer committed the same
    /// partitions): reopen the table, and take its offsets as the truth again.
    async fn reopen(&mut self) {
        self.table = open_table_at(&self.location, &self.uri)
            .await
            .ok()
            .flatten();
        if let Some(t) = &self.table
            && let Ok(now) = table_offsets(t, self.topic).await
        {
            self.advance(&now.into_iter().collect::<Vec<_>>());
        }
    }

    /// What is buffered, taken from the batcher: one batch with the offsets it covers.
    fn stage(&mut self) -> Result<Option<layout::OffsetBatch>, HistoryError> {
        self.oldest = None;
        // Everything buffered is covered by the commit, skipped records (tombstones, unreadable
        // ones) included, so their offsets move on with it.
        let covered: Vec<(i32, i64)> = self.buffered.iter().map(|(p, o)| (*p, *o)).collect();
        Ok(match self.batcher.take()? {
            Some((batch, _)) => Some((batch, covered)),
            None if covered.is_empty() => None,
            None => Some((RecordBatch::new_empty(self.batcher.schema()), covered)),
        })
    }

    fn advance(&mut self, offsets: &[(i32, i64)]) {
        for (p, o) in offsets {
            let c = self.committed.entry(*p).or_insert(*o);
            *c = (*c).max(*o);
        }
    }

    /// Forgets partitions this member no longer owns: their buffered rows are dropped (the new
    /// owner reads them again from the table's offsets), so no row is written twice.
    async fn release(&mut self, partitions: &[i32]) -> Result<(), HistoryError> {
        // A write under way ends first; if it failed, its batch is pending and filtered below.
        if let Err(e) = self.finish_write().await {
            tracing::warn!(error = %e, "history write failed while partitions were revoked");
        }
        // A failed batch first, then the newer rows.
        let staged = self.stage()?;
        let all = merge(self.pending.take(), staged)
            .map_err(|e| layout::convert_err(self.topic.name, e))?;
        let gone = |p: i32| partitions.contains(&p);
        self.pending = match all {
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
        if let Err(e) = self.finish_write().await {
            tracing::warn!(error = %e, "history write failed while partitions were assigned");
        }
        match self.table.as_mut() {
            Some(t) => {
                if let Err(e) = t.update_incremental(None).await {
                    return Err(self.delta_err(e));
                }
            }
            None => self.table = open_table_at(&self.location, &self.uri).await?,
        }
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

/// Rows per Parquet data page at most: the unit the page index lets a scan skip. Files are
/// sorted (see [`sort`]), so one server's rows within a row group sit in one or two pages; at
/// parquet's default of 20,000 a page holds some 80 servers' readings, all decoded to find one.
pub const PAGE_ROWS: usize = 5_000;

/// How every history file is encoded: Snappy (which every Parquet reader has), row groups near
/// [`ROW_GROUP_ROWS`], pages of at most [`PAGE_ROWS`], and page-level statistics (the page
/// index, parquet's default, spelled out because pruning depends on it).
fn writer_properties() -> deltalake::parquet::file::properties::WriterProperties {
    use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};
    WriterProperties::builder()
        .set_compression(deltalake::parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page)
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
        self.finish_write().await?;
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
                self.reopen().await;
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
    pub async fn revoke(&mut self, topic: &str, partitions: &[i32]) -> Result<(), HistoryError> {
        match self.tables.get_mut(topic) {
            Some(t) => t.release(partitions).await,
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

    /// Starts writing every table whose buffer is due and collects the writes that finished;
    /// with `force`, writes everything and waits. Returns the rows committed by this call.
    pub async fn flush(&mut self, force: bool) -> Result<usize, HistoryError> {
        let mut rows = 0;
        for t in self.tables.values_mut() {
            let due = t.due(&self.policy);
            rows += t.flush(due, force).await?;
        }
        Ok(rows)
    }

    /// Time spent encoding Parquet and committing, summed over finished writes of all tables
    /// (they run in the background, beside decoding).
    pub fn write_time(&self) -> Duration {
        self.tables.values().map(|t| t.write_time).sum()
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
            .map(|t| {
                t.batcher.len()
                    + t.pending.as_ref().map_or(0, |p| p.0.num_rows())
                    + t.writing.as_ref().map_or(0, |w| w.batch.0.num_rows())
            })
            .sum()
    }

    /// Where a topic's table lives.
    pub fn table_uri(&self, topic: &str) -> String {
        self.location.table_uri(topic)
    }
}
