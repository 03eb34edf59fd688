//! The Arrow layout of a history table, and the conversion of log records into it.
//!
//! Both the writer (records into Parquet) and the live reader (records not yet written, for
//! queries) go through [`RecordBatcher`], so the two always produce the same columns.

use std::sync::Arc;

use arrow_avro::reader::{Decoder, ReaderBuilder};
use arrow_avro::schema::{AvroSchema, Fingerprint, FingerprintAlgorithm, SchemaStore};
use automata_log::ConsumedRecord;
use automata_schemas::TopicSpec;
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
    StructArray, TimestampMicrosecondArray, new_null_array,
};
use deltalake::arrow::compute::{cast, concat_batches};
use deltalake::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use deltalake::arrow::error::ArrowError;

use crate::HistoryError;

/// Log partition of the row.
pub const PARTITION_COLUMN: &str = "_partition";
/// Log offset of the row.
pub const OFFSET_COLUMN: &str = "_offset";
/// Time the log stamped the record with.
pub const LOG_TIMESTAMP_COLUMN: &str = "_log_timestamp";
/// Partition column of every table: the UTC day of the log timestamp, `YYYY-MM-DD`.
pub const DATE_COLUMN: &str = "date";

pub(crate) fn convert_err(table: &str, e: impl std::fmt::Display) -> HistoryError {
    HistoryError::Convert {
        table: table.to_string(),
        message: e.to_string(),
    }
}

/// The type Delta Lake stores for an Arrow type decoded from Avro.
///
/// Delta has one timestamp type (microseconds, UTC) and no dictionaries, so `timestamp-millis`
/// becomes microseconds and Avro enums (decoded as dictionaries) become plain strings, at every
/// depth. Every other type is kept as it is.
pub fn delta_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Dictionary(_, v) => delta_type(v),
        DataType::Struct(fields) => DataType::Struct(delta_fields(fields)),
        DataType::List(f) => DataType::List(Arc::new(delta_field(f))),
        DataType::LargeList(f) => DataType::LargeList(Arc::new(delta_field(f))),
        DataType::Map(f, sorted) => DataType::Map(Arc::new(delta_field(f)), *sorted),
        other => other.clone(),
    }
}

fn delta_field(f: &Field) -> Field {
    f.clone().with_data_type(delta_type(f.data_type()))
}

fn delta_fields(fields: &Fields) -> Fields {
    fields.iter().map(|f| delta_field(f)).collect()
}

/// Converts a decoded column to its Delta type. Avro enums arrive as dictionaries and are stored
/// as lower-case strings (`temperature`, not `TEMPERATURE`): Delta has no enum type, operators
/// query lower-case words, and lower-casing the few dictionary values here costs nothing, where a
/// `lower()` in every query costs a call per row. The symbols stay in the field's metadata.
fn to_delta(c: &ArrayRef, target: &DataType) -> Result<ArrayRef, ArrowError> {
    if let Some(dict) = c.as_any_dictionary_opt() {
        let values = cast(dict.values(), &DataType::Utf8)?;
        let lowered: StringArray = values
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_ascii_lowercase))
            .collect();
        return cast(&dict.with_values(Arc::new(lowered)), target);
    }
    match (c.data_type(), target) {
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let s = c.as_struct();
            let columns = s
                .columns()
                .iter()
                .zip(fields.iter())
                .map(|(col, f)| to_delta(col, f.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                columns,
                s.nulls().cloned(),
            )?))
        }
        (DataType::List(_), DataType::List(field)) => {
            let l = c.as_list::<i32>();
            let values = to_delta(l.values(), field.data_type())?;
            Ok(Arc::new(ListArray::try_new(
                field.clone(),
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            )?))
        }
        (from, to) if from == to => Ok(c.clone()),
        _ => cast(c, target),
    }
}

/// Casts every column of `batch` to `schema` by name; a column `batch` lacks becomes nulls.
pub fn align(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let col = match batch.schema().index_of(f.name()) {
            Ok(i) => {
                let c = batch.column(i);
                if c.data_type() == f.data_type() {
                    c.clone()
                } else {
                    cast(c, f.data_type()).map_err(|e| format!("column {}: {e}", f.name()))?
                }
            }
            Err(_) => new_null_array(f.data_type(), batch.num_rows()),
        };
        columns.push(col);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// What one [`RecordBatcher::push`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Decoded into the batch.
    Row,
    /// A tombstone: no row.
    Tombstone,
    /// Not decodable with the topic's registered schema: skipped.
    Unreadable,
}

/// A batch in the table layout with the last offset it holds for each log partition.
pub type OffsetBatch = (RecordBatch, Vec<(i32, i64)>);

/// Where a row came from in the log: partition, offset, log timestamp (ms).
type RowMeta = (i32, i64, i64);

/// Decodes one topic's Avro records (Confluent framing) into Arrow batches in the table layout.
///
/// Records are decoded straight into arrow-avro's column builders, with no check beforehand:
/// a record is taken when the decoder consumed exactly its bytes and exactly one row. A damaged
/// record (cut short, trailing bytes, another schema) is caught there; one that only fails when
/// the columns are built (a string that is not UTF-8, an enum index out of range) is caught
/// when the decoder is flushed. Either way the decoder is rebuilt from the raw records it held,
/// and only the damaged one is dropped: the common case pays nothing for the rare one.
pub struct RecordBatcher {
    topic: &'static TopicSpec,
    schema_id: u32,
    decoder: Decoder,
    /// The records in the decoder's current batch, kept to rebuild it after a damaged record.
    in_decoder: Vec<(bytes::Bytes, RowMeta)>,
    decoded: Vec<RecordBatch>,
    /// Origin of every row in `decoded`, in order.
    meta: Vec<RowMeta>,
    /// Records first taken as rows and dropped when their columns failed to build.
    dropped: usize,
    schema: SchemaRef,
}

/// Rows arrow-avro decodes into one batch before it is flushed into `decoded`.
const DECODER_BATCH_ROWS: usize = 8192;

fn new_decoder(topic: &'static TopicSpec, schema_id: u32) -> Result<Decoder, HistoryError> {
    let json = topic
        .schema_json
        .ok_or_else(|| convert_err(topic.name, "topic has no Avro schema"))?;
    let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
    store
        .set(
            Fingerprint::Id(schema_id),
            AvroSchema::new(json.to_string()),
        )
        .map_err(|e| convert_err(topic.name, e))?;
    ReaderBuilder::new()
        .with_writer_schema_store(store)
        .with_reader_schema(AvroSchema::new(json.to_string()))
        .with_batch_size(DECODER_BATCH_ROWS)
        .build_decoder()
        .map_err(|e| convert_err(topic.name, e))
}

/// Decodes `value` as exactly one record: it consumed all the bytes and added one row.
fn decode_one(decoder: &mut Decoder, value: &[u8]) -> bool {
    let before = decoder.capacity();
    matches!(decoder.decode(value), Ok(n) if n == value.len()) && decoder.capacity() + 1 == before
}

impl RecordBatcher {
    /// A batcher for `topic`, whose records carry registered schema id `schema_id`.
    pub fn new(topic: &'static TopicSpec, schema_id: u32) -> Result<Self, HistoryError> {
        let decoder = new_decoder(topic, schema_id)?;
        let mut fields: Vec<Field> = decoder
            .schema()
            .fields()
            .iter()
            .map(|f| delta_field(f))
            .collect();
        fields.push(Field::new(PARTITION_COLUMN, DataType::Int32, false));
        fields.push(Field::new(OFFSET_COLUMN, DataType::Int64, false));
        fields.push(Field::new(
            LOG_TIMESTAMP_COLUMN,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ));
        fields.push(Field::new(DATE_COLUMN, DataType::Utf8, false));
        Ok(RecordBatcher {
            topic,
            schema_id,
            decoder,
            in_decoder: Vec::with_capacity(DECODER_BATCH_ROWS),
            decoded: Vec::new(),
            meta: Vec::new(),
            dropped: 0,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// The table's Arrow schema: the Avro record's fields, then the log columns and `date`.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows pushed and not yet taken.
    pub fn len(&self) -> usize {
        self.meta.len() + self.in_decoder.len()
    }

    /// Whether no rows wait.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records [`push`](Self::push) took as rows that turned out damaged when their columns
    /// were built, since the last call: they are not in the batch.
    pub fn take_dropped(&mut self) -> usize {
        std::mem::take(&mut self.dropped)
    }

    /// Decodes one record into the pending batch.
    pub fn push(&mut self, r: &ConsumedRecord) -> Result<Pushed, HistoryError> {
        let Some(value) = r.record.value.as_ref() else {
            return Ok(Pushed::Tombstone);
        };
        if self.decoder.batch_is_full() {
            self.drain_decoder()?;
        }
        let meta = (r.partition, r.offset, r.record.timestamp_ms.unwrap_or(0));
        if decode_one(&mut self.decoder, value) {
            self.in_decoder.push((value.clone(), meta));
            return Ok(Pushed::Row);
        }
        // The decoder is left mid-record: rebuild it from the rows it held, without this one.
        tracing::debug!(
            topic = self.topic.name,
            partition = r.partition,
            offset = r.offset,
            "record does not decode with the topic's schema: skipped"
        );
        self.rebuild()?;
        Ok(Pushed::Unreadable)
    }

    /// A fresh decoder with the held records decoded into it again, flushed one by one so
    /// that a record whose columns fail to build is found and dropped.
    fn rebuild(&mut self) -> Result<(), HistoryError> {
        self.decoder = new_decoder(self.topic, self.schema_id)?;
        for (value, meta) in std::mem::take(&mut self.in_decoder) {
            let row = if decode_one(&mut self.decoder, &value) {
                self.decoder.flush().ok().flatten()
            } else {
                None
            };
            match row {
                Some(b) => {
                    self.decoded.push(b);
                    self.meta.push(meta);
                }
                None => {
                    self.dropped += 1;
                    self.decoder = new_decoder(self.topic, self.schema_id)?;
                }
            }
        }
        Ok(())
    }

    fn drain_decoder(&mut self) -> Result<(), HistoryError> {
        match self.decoder.flush() {
            Ok(Some(b)) => {
                self.decoded.push(b);
                self.meta.extend(self.in_decoder.drain(..).map(|(_, m)| m));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::debug!(topic = self.topic.name, error = %e, "a record's columns do not build: finding it");
                self.rebuild()
            }
        }
    }

    /// Takes the pending rows as one batch in the table layout, with the partitions and last
    /// offsets it holds.
    pub fn take(&mut self) -> Result<Option<OffsetBatch>, HistoryError> {
        self.drain_decoder()?;
        if self.meta.is_empty() {
            self.decoded.clear();
            return Ok(None);
        }
        let name = self.topic.name;
        let data = concat_batches(&self.decoder.schema(), &self.decoded)
            .map_err(|e| convert_err(name, e))?;
        let meta = std::mem::take(&mut self.meta);
        self.decoded.clear();
        if data.num_rows() != meta.len() {
            return Err(convert_err(
                name,
                format!(
                    "{} rows decoded for {} records",
                    data.num_rows(),
                    meta.len()
                ),
            ));
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (c, f) in data.columns().iter().zip(self.schema.fields()) {
            columns.push(to_delta(c, f.data_type()).map_err(|e| convert_err(name, e))?);
        }
        columns.push(Arc::new(Int32Array::from_iter_values(
            meta.iter().map(|m| m.0),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(
            meta.iter().map(|m| m.1),
        )));
        columns.push(Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                meta.iter().map(|m| m.2.saturating_mul(1000)),
            )
            .with_timezone("UTC"),
        ));
        columns.push(Arc::new(days(meta.iter().map(|m| m.2))));
        let batch =
            RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| convert_err(name, e))?;
        let mut last: Vec<(i32, i64)> = Vec::new();
        for (p, o, _) in &meta {
            match last.iter_mut().find(|(q, _)| q == p) {
                Some(e) => e.1 = e.1.max(*o),
                None => last.push((*p, *o)),
            }
        }
        Ok(Some((batch, last)))
    }
}

/// The `date` column of millisecond timestamps: formatted once per day, not once per row.
fn days(ts_ms: impl Iterator<Item = i64>) -> StringArray {
    const DAY_MS: i64 = 86_400_000;
    let mut current: Option<(i64, String)> = None;
    let mut out = deltalake::arrow::array::StringBuilder::new();
    for ts in ts_ms {
        let n = ts.div_euclid(DAY_MS);
        match &current {
            Some((d, s)) if *d == n => out.append_value(s),
            _ => {
                let s = day(ts);
                out.append_value(&s);
                current = Some((n, s));
            }
        }
    }
    out.finish()
}

/// The rows of `batch` whose log partition and offset pass `keep`, with the offsets recomputed
/// (`covered` keeps only the partitions `keep_partition` accepts); `None` when no row and no
/// offset is left.
pub fn retain_rows(
    (batch, covered): &OffsetBatch,
    keep_partition: impl Fn(i32) -> bool,
    keep: impl Fn(i32, i64) -> bool,
) -> Result<Option<OffsetBatch>, String> {
    use deltalake::arrow::array::BooleanArray;
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| format!("batch has no {name} column"))
    };
    let partitions = column(PARTITION_COLUMN)?
        .as_any()
        .downcast_ref::<Int32Array>()
        .ok_or("_partition is not Int32")?
        .clone();
    let offsets = column(OFFSET_COLUMN)?
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or("_offset is not Int64")?
        .clone();
    let mask: BooleanArray = (0..batch.num_rows())
        .map(|i| Some(keep(partitions.value(i), offsets.value(i))))
        .collect();
    let covered: Vec<(i32, i64)> = covered
        .iter()
        .filter(|(p, o)| keep_partition(*p) && keep(*p, *o))
        .copied()
        .collect();
    let kept = if mask.true_count() == batch.num_rows() {
        batch.clone()
    } else {
        deltalake::arrow::compute::filter_record_batch(batch, &mask).map_err(|e| e.to_string())?
    };
    if kept.num_rows() == 0 && covered.is_empty() {
        return Ok(None);
    }
    Ok(Some((kept, covered)))
}

/// The UTC day of a millisecond timestamp, `YYYY-MM-DD`.
pub fn day(ts_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts_ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}
