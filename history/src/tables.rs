//! Finding, opening and reading the history tables.

use std::collections::HashMap;

use automata_schemas::TopicSpec;
use automata_schemas::catalog::topics;
use deltalake::DeltaTable;
use deltalake::table::builder::{DeltaTableBuilder, ensure_table_uri};

use crate::storage::HistoryLocation;
use crate::{HistoryError, app_id};

fn delta_err(uri: &str, source: deltalake::DeltaTableError) -> HistoryError {
    HistoryError::Delta {
        table: uri.to_string(),
        source,
    }
}

/// A handle on a table location that may not hold a table yet (nothing loaded).
pub(crate) fn new_table(loc: &HistoryLocation, uri: &str) -> Result<DeltaTable, HistoryError> {
    crate::storage::register_s3();
    let url = ensure_table_uri(uri).map_err(|e| delta_err(uri, e))?;
    DeltaTableBuilder::from_url(url)
        .map(|b| b.with_storage_options(loc.options().clone()))
        .and_then(|b| b.build())
        .map_err(|e| delta_err(uri, e))
}

/// Opens the table at `uri` (a local path, or a URL reachable with the `AWS_*` environment), or
/// `None` when nothing has been written there yet.
pub async fn open_table(uri: &str) -> Result<Option<DeltaTable>, HistoryError> {
    open_table_at(&HistoryLocation::default(), uri).await
}

/// Opens the table at `uri` with `loc`'s storage options, or `None` when nothing is there yet.
///
/// Existence is checked first, so that a table still to be created is not an error (and not an
/// error line in the log).
pub async fn open_table_at(
    loc: &HistoryLocation,
    uri: &str,
) -> Result<Option<DeltaTable>, HistoryError> {
    let mut table = new_table(loc, uri)?;
    if !table
        .verify_deltatable_existence()
        .await
        .map_err(|e| delta_err(uri, e))?
    {
        return Ok(None);
    }
    table.load().await.map_err(|e| delta_err(uri, e))?;
    Ok(Some(table))
}

/// The last log offset each partition has in the table, from its `txn` actions.
pub async fn table_offsets(
    table: &DeltaTable,
    topic: &TopicSpec,
) -> Result<HashMap<i32, i64>, HistoryError> {
    let err = |e| delta_err(topic.name, e);
    let state = table.snapshot().map_err(err)?;
    let mut out = HashMap::new();
    for p in 0..topic.partitions as i32 {
        if let Some(v) = state
            .transaction_version(table.log_store().as_ref(), app_id(topic.name, p))
            .await
            .map_err(err)?
        {
            out.insert(p, v);
        }
    }
    Ok(out)
}

/// The topics that have a history table (see [`automata_schemas::catalog::in_history`]).
pub fn history_topics() -> impl Iterator<Item = &'static TopicSpec> {
    topics()
        .iter()
        .filter(|t| automata_schemas::catalog::in_history(t))
}

/// The history tables under one root, opened lazily and refreshed on demand.
pub struct HistoryTables {
    location: HistoryLocation,
    open: HashMap<&'static str, DeltaTable>,
}

impl HistoryTables {
    /// Tables under `location` (a local path, or object storage with its options).
    pub fn new(location: impl Into<HistoryLocation>) -> Self {
        HistoryTables {
            location: location.into(),
            open: HashMap::new(),
        }
    }

    /// The root location.
    pub fn root(&self) -> &str {
        self.location.root()
    }

    /// The table of `topic` at its latest version, or `None` when nothing is written yet.
    pub async fn latest(
        &mut self,
        topic: &'static str,
    ) -> Result<Option<DeltaTable>, HistoryError> {
        if let Some(t) = self.open.get_mut(topic) {
            t.update_incremental(None)
                .await
                .map_err(|e| delta_err(topic, e))?;
            return Ok(Some(t.clone()));
        }
        let uri = self.location.table_uri(topic);
        match open_table_at(&self.location, &uri).await? {
            Some(t) => {
                self.open.insert(topic, t.clone());
                Ok(Some(t))
            }
            None => Ok(None),
        }
    }
}
