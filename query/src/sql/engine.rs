//! The SQL engine: DataFusion over the Delta history tables plus the log's unwritten tail.
//!
//! Each query gets its own session with only the tables it names. A raw table is the Delta table
//! (what the history sink has committed) followed by the records the log holds past the offsets
//! carried in that table's commits, decoded the same way the sink decodes them: a reading sent a
//! second ago is in the answer, not only what has been flushed to Parquet. The tail is capped
//! (`max_live_rows` per table, the newest kept) so that a stopped sink cannot make queries huge.
//!
//! Queries are read-only (no DDL, DML or `SET`), run with a memory pool of their own, and are
//! cancelled at the time limit.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use automata_history::{HistoryTables, RecordBatcher, table_offsets};
use automata_log::{MessageLog, ReadRange};
use automata_schemas::SchemaIds;
use automata_schemas::catalog::topic;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::DataType;
use deltalake::arrow::datatypes::{FieldRef, Schema, SchemaRef};
use deltalake::datafusion::catalog::MemorySchemaProvider;
use deltalake::datafusion::common::config::Dialect;
use deltalake::datafusion::common::{Column, ScalarValue};
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::SendableRecordBatchStream;
use deltalake::datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::logical_expr::{Expr, cast, lit};
use deltalake::datafusion::prelude::{DataFrame, SQLOptions, SessionConfig, SessionContext};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::views::{VIEWS, raw_name, view};

/// The `[sql]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlConfig {
    /// A query running longer is cancelled.
    pub timeout_secs: u64,
    /// Memory one query may hold (sorts, joins, aggregates), in MiB.
    pub memory_limit_mb: usize,
    /// Newest unwritten log records read per table, on top of the Delta table.
    pub max_live_rows: usize,
    /// Rows a JSON answer holds at most (Arrow answers stream without a cap).
    pub max_json_rows: usize,
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig {
            timeout_secs: 30,
            memory_limit_mb: 1024,
            max_live_rows: 200_000,
            max_json_rows: 100_000,
        }
    }
}

/// Why a query has no answer.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The query is wrong: syntax, unknown table or column, types (the planner's message).
    #[error("{0}")]
    Query(String),
    /// The query needed more memory than its limit.
    #[error("the query needs more memory than its limit of {limit_mb} MiB: {message}")]
    Memory {
        /// The limit.
        limit_mb: usize,
        /// DataFusion's message.
        message: String,
    },
    /// The query ran past its time limit and was cancelled.
    #[error("the query ran longer than its limit of {0} s and was cancelled")]
    Timeout(u64),
    /// Storage or the log failed underneath.
    #[error("fleet history is not readable now: {0}")]
    Unavailable(String),
}

impl SqlError {
    fn from_datafusion(e: DataFusionError, limit_mb: usize) -> Self {
        match e.find_root() {
            DataFusionError::ResourcesExhausted(m) => SqlError::Memory {
                limit_mb,
                message: m.clone(),
            },
            DataFusionError::ObjectStore(_)
            | DataFusionError::IoError(_)
            | DataFusionError::External(_) => SqlError::Unavailable(e.to_string()),
            _ => SqlError::Query(e.to_string()),
        }
    }
}

/// The DataFusion settings of every query (and of `bench query`, so that it times the same).
pub fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema("datafusion", "public");
    let parquet = &mut config.options_mut().execution.parquet;
    // Evaluate filters while decoding (late materialisation): a query for one server or one
    // sensor kind decodes the other columns only for the rows that match.
    parquet.pushdown_filters = true;
    parquet.reorder_filters = true;
    config
}

/// `df` with its string and binary view columns as plain strings and binaries.
///
/// History string columns are scanned as views (see [`automata_history::scan`]); answers keep
/// the plain types that JSON, CSV, Parquet and Arrow IPC clients have always received.
fn without_views(df: DataFrame) -> Result<DataFrame, DataFusionError> {
    let mut changed = false;
    let exprs: Vec<Expr> = df
        .schema()
        .iter()
        .map(|(q, f)| {
            let c = Expr::Column(Column::from((q, f)));
            let to = match f.data_type() {
                DataType::Utf8View => DataType::Utf8,
                DataType::BinaryView => DataType::Binary,
                _ => return c,
            };
            changed = true;
            cast(c, to).alias_qualified(q.cloned(), f.name())
        })
        .collect();
    if changed { df.select(exprs) } else { Ok(df) }
}

/// Runs SQL over fleet history.
pub struct SqlEngine {
    log: MessageLog,
    ids: SchemaIds,
    tables: Mutex<HistoryTables>,
    config: SqlConfig,
}

impl SqlEngine {
    /// An engine over the history tables at `history` and the log's tail.
    pub fn new(
        log: MessageLog,
        ids: SchemaIds,
        history: impl Into<automata_history::HistoryLocation>,
        config: SqlConfig,
    ) -> Self {
        SqlEngine {
            log,
            ids,
            tables: Mutex::new(HistoryTables::new(history)),
            config,
        }
    }

    /// The limits queries run under.
    pub fn config(&self) -> &SqlConfig {
        &self.config
    }

    fn session(&self) -> Result<SessionContext, SqlError> {
        // No spilling to disk: the memory limit is a hard limit, and a query over it is refused
        // with a message instead of filling the service's disk.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(self.config.memory_limit_mb.saturating_mul(1 << 20), 1.0)
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
            .map_err(|e| SqlError::Unavailable(e.to_string()))?;
        let ctx = SessionContext::new_with_config_rt(session_config(), runtime);
        super::functions::register(&ctx);
        if let Some(catalog) = ctx.catalog("datafusion") {
            catalog
                .register_schema("raw", Arc::new(MemorySchemaProvider::new()))
                .map_err(|e| SqlError::Unavailable(e.to_string()))?;
        }
        Ok(ctx)
    }

    /// The topics a query reads, from the tables it names.
    fn topics_of(
        &self,
        ctx: &SessionContext,
        sql: &str,
    ) -> Result<BTreeSet<&'static str>, SqlError> {
        let state = ctx.state();
        let statement = state
            .sql_to_statement(sql, &Dialect::Generic)
            .map_err(|e| SqlError::Query(e.to_string()))?;
        let refs = state
            .resolve_table_references(&statement)
            .map_err(|e| SqlError::Query(e.to_string()))?;
        let mut out = BTreeSet::new();
        for r in refs {
            let name = r.table();
            if r.schema() == Some("raw") {
                if let Some(t) =
                    automata_history::tables::history_topics().find(|t| raw_name(t.name) == name)
                {
                    out.insert(t.name);
                }
            } else if let Some(v) = view(name) {
                out.extend(v.topics.iter().copied());
            }
        }
        Ok(out)
    }

    /// Registers `raw.<topic>`: the Delta table followed by the log's unwritten tail.
    async fn register_raw(&self, ctx: &SessionContext, name: &'static str) -> Result<(), SqlError> {
        let Some(spec) = topic(name) else {
            return Ok(());
        };
        // Without a registered id nothing in the log is readable yet: the table is just empty.
        let id = self.ids.get(name).unwrap_or(0);
        let unavailable = |e: &dyn std::fmt::Display| SqlError::Unavailable(e.to_string());
        let table = self
            .tables
            .lock()
            .await
            .latest(spec.name)
            .await
            .map_err(|e| unavailable(&e))?;
        let written: HashMap<i32, i64> = match &table {
            Some(t) => table_offsets(t, spec).await.map_err(|e| unavailable(&e))?,
            None => HashMap::new(),
        };
        let mut batcher = RecordBatcher::new(spec, id).map_err(|e| unavailable(&e))?;
        let flushed = match &table {
            Some(t) => {
                t.update_datafusion_session(&ctx.state())
                    .map_err(|e| unavailable(&e))?;
                Some(
                    automata_history::scan::table_provider(t)
                        .await
                        .map_err(|e| unavailable(&e))?,
                )
            }
            None => None,
        };
        // The table's own types, plus the columns of fields added since an older release wrote
        // it (its next write merges them in): until then they read as nulls.
        let added: Vec<FieldRef> = match &flushed {
            Some(p) => batcher
                .schema()
                .fields()
                .iter()
                .filter(|f| p.schema().field_with_name(f.name()).is_err())
                .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
                .collect(),
            None => Vec::new(),
        };
        let schema: SchemaRef = match &flushed {
            Some(p) => {
                let mut fields: Vec<FieldRef> = p.schema().fields().iter().cloned().collect();
                fields.extend(added.iter().cloned());
                Arc::new(Schema::new(fields))
            }
            None => batcher.schema(),
        };

        // The tail: per partition, from past the table's offset (or the newest `max_live_rows`
        // spread over the partitions) to the high watermark.
        let marks = self
            .log
            .watermarks(name)
            .await
            .map_err(|e| unavailable(&e))?;
        let per_partition = (self.config.max_live_rows / marks.len().max(1)).max(1) as i64;
        let ranges: Vec<ReadRange> = marks
            .iter()
            .map(|m| {
                let after = written.get(&m.partition).map_or(m.low, |o| o + 1);
                ReadRange {
                    topic: name.to_string(),
                    partition: m.partition,
                    from: after.max(m.high - per_partition).max(m.low),
                    to: m.high,
                }
            })
            .filter(|r| r.from < r.to)
            .collect();
        let records = self
            .log
            .read_ranges(&ranges, per_partition as usize, Duration::from_secs(5))
            .await
            .map_err(|e| unavailable(&e))?;
        for r in &records {
            batcher.push(r).map_err(|e| unavailable(&e))?;
        }
        let mut live: Vec<RecordBatch> = Vec::new();
        if let Some((b, _)) = batcher.take().map_err(|e| unavailable(&e))? {
            live.push(
                automata_history::layout::align(&b, &schema)
                    .map_err(|e| SqlError::Unavailable(format!("{name}: {e}")))?,
            );
        }
        let live = MemTable::try_new(schema, vec![live]).map_err(|e| unavailable(&e))?;
        let full = format!("raw.{}", raw_name(name));
        let provider = match flushed {
            Some(f) => {
                let df = ctx
                    .read_table(f)
                    .and_then(|d| with_null_columns(d, &added))
                    .and_then(|d| d.union(ctx.read_table(Arc::new(live))?))
                    .map_err(|e| unavailable(&e))?;
                df.into_view()
            }
            None => Arc::new(live),
        };
        ctx.register_table(full.as_str(), provider)
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    /// Plans `sql` in a session holding the tables it names.
    async fn plan(&self, sql: &str) -> Result<DataFrame, SqlError> {
        let limit = self.config.memory_limit_mb;
        let ctx = self.session()?;
        let topics = self.topics_of(&ctx, sql)?;
        for t in &topics {
            self.register_raw(&ctx, t).await?;
        }
        for v in VIEWS {
            if v.topics.iter().all(|t| topics.contains(t)) {
                let ddl = format!("CREATE VIEW {} AS {}", v.name, v.sql);
                ctx.sql(&ddl)
                    .await
                    .map_err(|e| SqlError::Unavailable(format!("view {}: {e}", v.name)))?;
            }
        }
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        ctx.sql_with_options(sql, options)
            .await
            .and_then(without_views)
            .map_err(|e| SqlError::from_datafusion(e, limit))
    }

    /// Runs `sql` and collects the answer (at most `max_rows` rows; `true` when cut there).
    pub async fn query(
        &self,
        sql: &str,
        max_rows: Option<usize>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>, bool), SqlError> {
        let limit = self.config.memory_limit_mb;
        let run = async {
            let mut df = self.plan(sql).await?;
            if let Some(n) = max_rows {
                df = df
                    .limit(0, Some(n + 1))
                    .map_err(|e| SqlError::from_datafusion(e, limit))?;
            }
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df
                .collect()
                .await
                .map_err(|e| SqlError::from_datafusion(e, limit))?;
            Ok::<_, SqlError>((schema, batches))
        };
        let (schema, mut batches) = self.with_deadline(run).await?;
        let mut truncated = false;
        if let Some(n) = max_rows {
            let total: usize = batches.iter().map(|b| b.num_rows()).sum();
            if total > n {
                truncated = true;
                let mut keep = n;
                for b in batches.iter_mut() {
                    let take = b.num_rows().min(keep);
                    *b = b.slice(0, take);
                    keep -= take;
                }
                batches.retain(|b| b.num_rows() > 0);
            }
        }
        Ok((schema, batches, truncated))
    }

    /// Runs `sql` and streams the answer; the stream ends with an error at the time limit.
    pub async fn stream(&self, sql: &str) -> Result<SendableRecordBatchStream, SqlError> {
        let limit = self.config.memory_limit_mb;
        let df = self.with_deadline(self.plan(sql)).await?;
        df.execute_stream()
            .await
            .map_err(|e| SqlError::from_datafusion(e, limit))
    }

    async fn with_deadline<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, SqlError>>,
    ) -> Result<T, SqlError> {
        let secs = self.config.timeout_secs;
        tokio::time::timeout(Duration::from_secs(secs), f)
            .await
            .map_err(|_| SqlError::Timeout(secs))?
    }
}

/// `df` with a null column for each of `added` (fields a table written by an older release
/// lacks), so that it lines up with rows decoded with the current schema.
fn with_null_columns(df: DataFrame, added: &[FieldRef]) -> Result<DataFrame, DataFusionError> {
    if added.is_empty() {
        return Ok(df);
    }
    let mut exprs: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| Expr::Column(Column::from_name(f.name())))
        .collect();
    for f in added {
        let null = ScalarValue::try_from(f.data_type())?;
        exprs.push(lit(null).alias(f.name()));
    }
    df.select(exprs)
}
