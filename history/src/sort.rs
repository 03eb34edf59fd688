//! The order rows are written in: each flushed batch is sorted by its table's sort key.
//!
//! The sink takes records in log order, which for a fleet is every server's sensors interleaved
//! at every step: every row group then holds every server and every sensor kind, and its
//! min/max statistics rule nothing out. Sorted by a key that leads with the columns operators
//! filter on, a row group (and each of its pages, through the page index) covers a narrow range
//! of them, so a scan for one sensor kind or one server skips most of the file. Only the batch
//! of one flush is sorted (files are not merged), which is what pruning needs.

use std::sync::Arc;

use automata_schemas::catalog::{TELEMETRY_LOGS, TELEMETRY_READINGS};
use deltalake::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt64Array};
use deltalake::arrow::compute::{
    SortColumn, cast, lexsort_to_indices, sort_to_indices, take_record_batch,
};
use deltalake::arrow::datatypes::{DataType, UInt32Type};
use deltalake::arrow::error::ArrowError;

/// The columns a table's rows are sorted by when written, most significant first.
///
/// Telemetry leads with `kind` (a handful of values, and the usual filter of fleet-wide
/// questions: "temperatures", "power"), then `server_id` (the filter of questions about one
/// machine), then the sensor and time, so that one sensor's readings are a contiguous, ordered
/// run. Other tables are small or read whole, and keep log order.
pub fn sort_key(topic: &str) -> &'static [&'static str] {
    match topic {
        TELEMETRY_READINGS => &["kind", "server_id", "sensor_id", "timestamp"],
        TELEMETRY_LOGS => &["server_id", "created"],
        _ => &[],
    }
}

/// `batch` ordered by the `columns` it has (ascending, nulls first); `batch` itself when it
/// has none of them.
pub fn sort_batch(batch: &RecordBatch, columns: &[&str]) -> Result<RecordBatch, ArrowError> {
    let keys: Vec<&ArrayRef> = columns
        .iter()
        .filter_map(|c| batch.column_by_name(c))
        .collect();
    if keys.is_empty() || batch.num_rows() < 2 {
        return Ok(batch.clone());
    }
    let indices = lexsort_to_indices(&sort_columns(&keys)?, None)?;
    take_record_batch(batch, &indices)
}

/// The key columns as arrow sorts them fastest: string columns replaced by the rank of each
/// value among the column's distinct values, and consecutive ranks packed into one `u64` while
/// they fit.
///
/// Comparing strings row by row is what makes a plain lexicographic sort slow; the key columns
/// are low-cardinality (kinds, servers, sensors), so ranking their few distinct values and
/// sorting integers gives the same order for a fraction of the cost (the sort runs in the
/// sink's write path, which must keep up with the log).
fn sort_columns(keys: &[&ArrayRef]) -> Result<Vec<SortColumn>, ArrowError> {
    let mut out = Vec::with_capacity(keys.len());
    // Ranks packed so far, and the bits they take.
    let mut packed: Option<(Vec<u64>, u32)> = None;
    for key in keys {
        let Some((ranks, distinct)) = string_ranks(key)? else {
            out.extend(packed.take().map(|(p, _)| packed_column(p)));
            out.push(SortColumn {
                values: Arc::clone(key),
                options: None,
            });
            continue;
        };
        let bits = u64::BITS - u64::from(distinct).leading_zeros();
        packed = match packed.take() {
            Some((mut p, used)) if used + bits <= u64::BITS => {
                for (word, r) in p.iter_mut().zip(&ranks) {
                    *word = (*word << bits) | u64::from(*r);
                }
                Some((p, used + bits))
            }
            full => {
                out.extend(full.map(|(p, _)| packed_column(p)));
                Some((ranks.iter().map(|r| u64::from(*r)).collect(), bits))
            }
        };
    }
    out.extend(packed.map(|(p, _)| packed_column(p)));
    Ok(out)
}

fn packed_column(words: Vec<u64>) -> SortColumn {
    SortColumn {
        values: Arc::new(UInt64Array::from(words)),
        options: None,
    }
}

/// For a string column: each row's rank among the column's distinct values (null first, as
/// 0), and the highest rank. `None` for other types.
fn string_ranks(column: &ArrayRef) -> Result<Option<(Vec<u32>, u32)>, ArrowError> {
    if !matches!(
        column.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return Ok(None);
    }
    let dictionary_type =
        DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8));
    let encoded = cast(column, &dictionary_type)?;
    let dictionary = encoded.as_dictionary::<UInt32Type>();
    let order = sort_to_indices(dictionary.values(), None, None)?;
    // rank[value index] = 1 + its position in sorted order; 0 is kept for nulls.
    let mut rank = vec![0u32; order.len()];
    for (position, value) in (1u32..).zip(order.values()) {
        if let Some(r) = rank.get_mut(*value as usize) {
            *r = position;
        }
    }
    let keys = dictionary.keys();
    let ranks = (0..keys.len())
        .map(|i| match keys.is_valid(i) {
            true => rank.get(keys.value(i) as usize).copied().unwrap_or(0),
            false => 0,
        })
        .collect();
    let highest = u32::try_from(order.len()).unwrap_or(u32::MAX);
    Ok(Some((ranks, highest)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{ArrayRef, AsArray, Float64Array, Int64Array, StringArray};
    use deltalake::arrow::datatypes::{Float64Type, Int64Type};

    use super::*;

    fn batch(kinds: &[&str], servers: &[&str], ts: &[i64]) -> RecordBatch {
        let value = Float64Array::from_iter_values((0..kinds.len()).map(|i| i as f64));
        RecordBatch::try_from_iter([
            (
                "kind",
                Arc::new(StringArray::from(kinds.to_vec())) as ArrayRef,
            ),
            ("server_id", Arc::new(StringArray::from(servers.to_vec()))),
            ("timestamp", Arc::new(Int64Array::from(ts.to_vec()))),
            ("value", Arc::new(value)),
        ])
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn rows_follow_the_key_and_keep_their_values() {
        let b = batch(
            &["power", "fan", "power", "fan"],
            &["srv-2", "srv-1", "srv-1", "srv-1"],
            &[1, 9, 3, 2],
        );
        let s = sort_batch(&b, &["kind", "server_id", "sensor_id", "timestamp"])
            .unwrap_or_else(|e| panic!("{e}"));
        let kinds: Vec<_> = s.column(0).as_string::<i32>().iter().flatten().collect();
        let servers: Vec<_> = s.column(1).as_string::<i32>().iter().flatten().collect();
        let ts: Vec<_> = s.column(2).as_primitive::<Int64Type>().values().to_vec();
        let values: Vec<_> = s.column(3).as_primitive::<Float64Type>().values().to_vec();
        assert_eq!(kinds, ["fan", "fan", "power", "power"]);
        assert_eq!(servers, ["srv-1", "srv-1", "srv-1", "srv-2"]);
        assert_eq!(ts, [2, 9, 3, 1]);
        assert_eq!(values, [3.0, 1.0, 2.0, 0.0]);
    }

    #[test]
    fn a_batch_without_key_columns_is_left_alone() {
        let b = batch(&["b", "a"], &["x", "y"], &[2, 1]);
        assert_eq!(sort_batch(&b, &["nope"]).ok(), Some(b.clone()));
        assert_eq!(sort_key("servers.state"), &[] as &[&str]);
    }

    proptest::proptest! {
        /// Ranked and packed keys order rows exactly as arrow's own sort of the raw columns.
        #[test]
        fn same_order_as_a_plain_lexicographic_sort(
            rows in proptest::collection::vec(
                (proptest::option::of(0u8..5), 0u16..300, proptest::option::of(-3i64..3)),
                2..200,
            )
        ) {
            let kinds: StringArray = rows.iter().map(|r| r.0.map(|k| format!("k{k}"))).collect();
            let servers: StringArray =
                rows.iter().map(|r| Some(format!("srv-{}", r.1))).collect();
            let ts: Int64Array = rows.iter().map(|r| r.2).collect();
            let b = RecordBatch::try_from_iter([
                ("kind", Arc::new(kinds) as ArrayRef),
                ("server_id", Arc::new(servers)),
                ("timestamp", Arc::new(ts)),
            ])
            .unwrap_or_else(|e| panic!("{e}"));
            let ours = sort_batch(&b, &["kind", "server_id", "timestamp"])
                .unwrap_or_else(|e| panic!("{e}"));
            let plain: Vec<SortColumn> = b
                .columns()
                .iter()
                .map(|c| SortColumn { values: c.clone(), options: None })
                .collect();
            let indices = lexsort_to_indices(&plain, None).unwrap_or_else(|e| panic!("{e}"));
            let expected = take_record_batch(&b, &indices).unwrap_or_else(|e| panic!("{e}"));
            proptest::prop_assert_eq!(ours, expected);
        }
    }
}
