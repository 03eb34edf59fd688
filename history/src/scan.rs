//! DataFusion's own Parquet scan over exactly the files a table's Delta snapshot lists.
//!
//! deltalake's provider reads a table's files through one DataFusion partition, so a query
//! decodes Parquet on one core however many the machine has. History tables use none of the
//! Delta features that need its row-level handling (deletion vectors, column mapping: reader
//! version 1), so the files can go straight to DataFusion's `ParquetSource`, as a listing table
//! would, and get its parallel byte-range scan, filter pushdown and row-group pruning. The Delta
//! log stays the only source of truth on which files make up the table; a table that does use
//! such features is read through deltalake's provider instead.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use deltalake::datafusion::catalog::{Session, TableProvider};
use deltalake::datafusion::common::stats::Precision;
use deltalake::datafusion::common::{ScalarValue, Statistics};
use deltalake::datafusion::datasource::TableType;
use deltalake::datafusion::datasource::listing::PartitionedFile;
use deltalake::datafusion::datasource::object_store::ObjectStoreUrl;
use deltalake::datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, ParquetSource,
};
use deltalake::datafusion::datasource::source::DataSourceExec;
use deltalake::datafusion::datasource::table_schema::TableSchema;
use deltalake::datafusion::error::Result as DfResult;
use deltalake::datafusion::logical_expr::Expr;
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::logstore::LogStore;

use crate::HistoryError;

/// One file of the snapshot, as the scan reads it.
#[derive(Debug, Clone)]
struct DataFile {
    path: deltalake::Path,
    size: u64,
    partition_values: Vec<ScalarValue>,
    rows: Option<usize>,
}

/// A history table at one snapshot, scanned by DataFusion's Parquet reader.
#[derive(Debug)]
pub struct SnapshotScan {
    store_url: ObjectStoreUrl,
    store: Arc<dyn deltalake::ObjectStore>,
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    schema: SchemaRef,
    files: Vec<DataFile>,
}

/// The fastest provider for `table`: [`SnapshotScan`] when the table allows it, deltalake's own
/// otherwise.
pub async fn table_provider(table: &DeltaTable) -> Result<Arc<dyn TableProvider>, HistoryError> {
    let err = |source| HistoryError::Delta {
        table: table.table_url().to_string(),
        source,
    };
    let snapshot = table.snapshot().map_err(err)?;
    if snapshot.protocol().min_reader_version() > 1 {
        return table
            .table_provider()
            .await
            .map_err(|e| HistoryError::Convert {
                table: table.table_url().to_string(),
                message: format!("deltalake's table provider: {e}"),
            });
    }
    let partition_columns = snapshot.metadata().partition_columns().to_vec();
    let logical = snapshot.snapshot().arrow_schema();
    let (partition_fields, file_fields): (Vec<FieldRef>, Vec<FieldRef>) = logical
        .fields()
        .iter()
        .cloned()
        .partition(|f| partition_columns.contains(f.name()));
    // String and binary columns are read as views (DataFusion's own default for Parquet, which
    // our explicit schema would otherwise override): decoding a dictionary page into views
    // copies no bytes for short strings such as server ids or sensor kinds, and comparisons,
    // hashing and grouping on views are faster than on offset-based strings.
    let file_fields: Vec<FieldRef> = file_fields
        .into_iter()
        .map(|f| match view_type(f.data_type()) {
            Some(t) => Arc::new(f.as_ref().clone().with_data_type(t)),
            None => f,
        })
        .collect();
    let file_schema = Arc::new(Schema::new(file_fields));
    // Partition columns come after the file's columns, as in every Hive-style table.
    let schema = Arc::new(Schema::new(
        file_schema
            .fields()
            .iter()
            .cloned()
            .chain(partition_fields.iter().cloned())
            .collect::<Vec<_>>(),
    ));
    let mut files = Vec::new();
    for f in snapshot.log_data().iter() {
        let values = f.partition_values_map();
        let partition_values = partition_fields
            .iter()
            .map(|field| {
                let v = values.get(field.name()).cloned().flatten();
                ScalarValue::Utf8(v)
                    .cast_to(field.data_type())
                    .map_err(|e| HistoryError::Convert {
                        table: table.table_url().to_string(),
                        message: format!("partition value of {}: {e}", field.name()),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        files.push(DataFile {
            path: f.object_store_path(),
            size: u64::try_from(f.size()).unwrap_or(0),
            partition_values,
            rows: f.num_records(),
        });
    }
    let log_store = table.log_store();
    Ok(Arc::new(SnapshotScan {
        store_url: log_store.object_store_url(),
        store: log_store.object_store(None),
        file_schema,
        partition_fields: partition_fields
            .into_iter()
            .map(|f| Arc::new(Field::new(f.name(), f.data_type().clone(), true)))
            .collect(),
        schema,
        files,
    }))
}

/// The view type the scan reads a top-level column of type `t` as, when there is one.
fn view_type(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 => Some(DataType::Utf8View),
        DataType::Binary | DataType::LargeBinary => Some(DataType::BinaryView),
        _ => None,
    }
}

#[async_trait::async_trait]
impl TableProvider for SnapshotScan {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        // Filters are left to DataFusion's physical optimizer, which pushes them into the
        // Parquet scan (row-group pruning, and row filtering when `pushdown_filters` is on).
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        // The table's root store under a table-specific URL (paths in the log are relative).
        let env = state.runtime_env();
        if env.object_store(&self.store_url).is_err() {
            env.register_object_store(self.store_url.as_ref(), self.store.clone());
        }
        let files: Vec<PartitionedFile> = self
            .files
            .iter()
            .map(|f| {
                let mut pf = PartitionedFile::new(f.path.to_string(), f.size)
                    .with_partition_values(f.partition_values.clone());
                if let Some(rows) = f.rows {
                    pf = pf.with_statistics(Arc::new(
                        Statistics::new_unknown(&self.schema).with_num_rows(Precision::Exact(rows)),
                    ));
                }
                pf
            })
            .collect();
        let total = self.files.iter().map(|f| f.rows).sum::<Option<usize>>();
        let table_schema = TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(self.partition_fields.clone())
            .build();
        let source = ParquetSource::new(table_schema)
            .with_table_parquet_options(state.table_options().parquet.clone());
        let mut config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_groups(vec![FileGroup::new(files)])
            .with_projection_indices(projection.cloned())?
            .with_limit(limit);
        if let Some(rows) = total {
            config = config.with_statistics(
                Statistics::new_unknown(&self.schema).with_num_rows(Precision::Exact(rows)),
            );
        }
        Ok(DataSourceExec::from_data_source(config.build()))
    }
}
