//! The history writer against real Delta tables on local disk: exactly once across restarts,
//! typed columns, damaged records skipped without stalling.

use std::collections::HashMap;
use std::time::Duration;

use automata_history::layout::Pushed;
use automata_history::{FlushPolicy, HistoryWriter, RecordBatcher, open_table, table_offsets};
use automata_log::{ConsumedRecord, Record};
use automata_schemas::SchemaIds;
use automata_schemas::catalog::{TELEMETRY_READINGS, topic};
use automata_schemas::sample::{SAMPLE_SCHEMA_ID, telemetry_reading_bytes};
use deltalake::arrow::datatypes::{DataType, TimeUnit};
use deltalake::datafusion::prelude::SessionContext;

fn ids() -> SchemaIds {
    SchemaIds::new(HashMap::from([(
        TELEMETRY_READINGS.to_string(),
        SAMPLE_SCHEMA_ID,
    )]))
}

fn policy() -> FlushPolicy {
    FlushPolicy {
        max_rows: 1_000_000,
        max_age: Duration::from_secs(3600),
    }
}

/// `n` readings spread over three partitions, offsets from `from` in each.
fn records(from: i64, n: i64) -> Vec<ConsumedRecord> {
    let mut out = Vec::new();
    for p in 0..3 {
        for o in from..from + n {
            let server = format!("srv-{p}");
            let value = telemetry_reading_bytes(&server, o as u64).expect("sample encodes");
            out.push(ConsumedRecord {
                topic: TELEMETRY_READINGS.to_string(),
                partition: p,
                offset: o,
                record: Record {
                    key: Some(server.into_bytes().into()),
                    value: Some(value.into()),
                    headers: Vec::new(),
                    timestamp_ms: Some(1_790_000_000_000 + o),
                },
            });
        }
    }
    out
}

async fn count_rows(uri: &str) -> (usize, usize) {
    let table = open_table(uri).await.expect("open").expect("table exists");
    let ctx = SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .expect("session");
    ctx.register_table("t", table.table_provider().await.expect("provider"))
        .expect("register");
    let b = ctx
        .sql("SELECT count(*) AS n, count(DISTINCT (_partition, _offset)) AS d FROM t")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let col = |i: usize| {
        b[0].column(i)
            .as_any()
            .downcast_ref::<deltalake::arrow::array::Int64Array>()
            .expect("int64")
            .value(0) as usize
    };
    (col(0), col(1))
}

#[tokio::test]
async fn a_restart_skips_what_the_table_holds_and_writes_the_rest_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().display().to_string();
    let mut w = HistoryWriter::new(root.clone(), ids(), policy());
    let rep = w.ingest(&records(0, 100)).await.expect("ingest");
    assert_eq!(rep.buffered, 300);
    assert_eq!(w.flush(true).await.expect("flush"), 300);
    // The same batch again (a retry) is not buffered twice.
    let rep = w.ingest(&records(0, 100)).await.expect("ingest");
    assert_eq!(rep.duplicates, 300);
    drop(w);

    // A new writer (a restart) reads the offsets back from the table's txn actions.
    let mut w = HistoryWriter::new(root.clone(), ids(), policy());
    let rep = w.ingest(&records(50, 100)).await.expect("ingest");
    assert_eq!(
        rep.duplicates, 150,
        "offsets 50..99 of each partition are in the table"
    );
    assert_eq!(rep.buffered, 150);
    assert_eq!(w.flush(true).await.expect("flush"), 150);

    let uri = w.table_uri(TELEMETRY_READINGS);
    assert_eq!(count_rows(&uri).await, (450, 450));
    let table = open_table(&uri).await.expect("open").expect("exists");
    let spec = topic(TELEMETRY_READINGS).expect("topic");
    let offsets = table_offsets(&table, spec).await.expect("offsets");
    assert_eq!(offsets, HashMap::from([(0, 149), (1, 149), (2, 149)]));
    assert_eq!(
        table
            .snapshot()
            .expect("snapshot")
            .metadata()
            .partition_columns(),
        &vec!["date".to_string()]
    );
}

#[tokio::test]
async fn a_damaged_record_is_skipped_and_its_offset_still_moves_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = HistoryWriter::new(dir.path().display().to_string(), ids(), policy());
    let mut batch = records(0, 3);
    batch[1].record.value = Some(b"\x00\x00\x00\x00\x01not avro".to_vec().into());
    batch[2].record.value = Some(vec![0u8; 2].into());
    let rep = w.ingest(&batch).await.expect("ingest");
    assert_eq!(rep.unreadable, 2);
    assert_eq!(rep.buffered, 7);
    assert_eq!(w.flush(true).await.expect("flush"), 7);
    let committed = w.committed_offsets();
    assert!(
        committed.iter().all(|(_, _, o)| *o == 2),
        "every partition is written up to offset 2: {committed:?}"
    );
}

#[test]
fn the_table_layout_uses_types_delta_can_store() {
    let spec = topic(TELEMETRY_READINGS).expect("topic");
    let b = RecordBatcher::new(spec, SAMPLE_SCHEMA_ID).expect("batcher");
    let schema = b.schema();
    let utc_us = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    assert_eq!(
        schema.field_with_name("timestamp").expect("ts").data_type(),
        &utc_us
    );
    assert_eq!(
        schema.field_with_name("kind").expect("kind").data_type(),
        &DataType::Utf8
    );
    assert_eq!(
        schema.field_with_name("value").expect("value").data_type(),
        &DataType::Float64
    );
    assert_eq!(
        schema.field_with_name("date").expect("date").data_type(),
        &DataType::Utf8
    );
}

/// A pushed record with `value` at `offset` of partition 0.
fn with_value(value: Vec<u8>, offset: i64) -> ConsumedRecord {
    let mut r = records(0, 1).remove(0);
    r.offset = offset;
    r.record.value = Some(value.into());
    r
}

#[test]
fn only_whole_records_become_rows() {
    let spec = topic(TELEMETRY_READINGS).expect("topic");
    let mut b = RecordBatcher::new(spec, SAMPLE_SCHEMA_ID).expect("batcher");
    let good = telemetry_reading_bytes("srv-0", 1).expect("encode");
    let mut offset = 0;
    let mut push = |b: &mut RecordBatcher, v: Vec<u8>| {
        offset += 1;
        b.push(&with_value(v, offset)).expect("push")
    };
    for n in 0..good.len() {
        assert_eq!(
            push(&mut b, good[..n].to_vec()),
            Pushed::Unreadable,
            "a record cut to {n} of {} bytes",
            good.len()
        );
        assert_eq!(push(&mut b, good.clone()), Pushed::Row, "the next record");
    }
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(push(&mut b, longer), Pushed::Unreadable, "trailing bytes");
    let mut other_schema = good.clone();
    other_schema[4] = other_schema[4].wrapping_add(1);
    assert_eq!(
        push(&mut b, other_schema),
        Pushed::Unreadable,
        "another schema id"
    );
    let mut twice = good.clone();
    twice.extend_from_slice(&good);
    assert_eq!(
        push(&mut b, twice),
        Pushed::Unreadable,
        "two records in one"
    );
    let (batch, _) = b.take().expect("take").expect("rows");
    assert_eq!(batch.num_rows(), good.len());
    assert_eq!(b.take_dropped(), 0);
}

#[test]
fn a_record_whose_columns_do_not_build_is_dropped_alone() {
    let spec = topic(TELEMETRY_READINGS).expect("topic");
    let mut b = RecordBatcher::new(spec, SAMPLE_SCHEMA_ID).expect("batcher");
    let good = telemetry_reading_bytes("srv-0", 1).expect("encode");
    // Same length, not UTF-8: it decodes, and fails only when the string column is built.
    let bad = telemetry_reading_bytes("srv-\u{e9}", 1).expect("encode");
    let at = bad
        .windows(2)
        .position(|w| w == [0xc3, 0xa9])
        .expect("the accented byte pair");
    let mut bad = bad;
    bad[at] = 0xff;
    for i in 0..10 {
        let v = if i == 4 { bad.clone() } else { good.clone() };
        assert_eq!(b.push(&with_value(v, i)).expect("push"), Pushed::Row);
    }
    let (batch, offsets) = b.take().expect("take").expect("rows");
    assert_eq!(batch.num_rows(), 9, "every good record is kept");
    assert_eq!(b.take_dropped(), 1);
    assert_eq!(offsets, vec![(0, 9)]);
}

proptest::proptest! {
    /// Whatever bytes arrive on a topic, the batcher skips or decodes them; it never panics and
    /// never lets a damaged record break the batch: every good record is a row.
    #[test]
    fn arbitrary_bytes_never_panic_or_break_the_batch(
        noise in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256), 1..20),
    ) {
        let spec = topic(TELEMETRY_READINGS).expect("topic");
        let mut b = RecordBatcher::new(spec, SAMPLE_SCHEMA_ID).expect("batcher");
        let good = records(0, 1);
        let mut rows = 0;
        let goods = noise.len();
        for (i, bytes) in noise.into_iter().enumerate() {
            let mut framed = vec![0u8, 0, 0, 0, SAMPLE_SCHEMA_ID as u8];
            framed.extend(bytes);
            if b.push(&with_value(framed, 2 * i as i64)).expect("push") == Pushed::Row {
                rows += 1;
            }
            let mut r = good[0].clone();
            r.offset = 2 * i as i64 + 1;
            proptest::prop_assert_eq!(b.push(&r).expect("a good record after noise"), Pushed::Row);
            rows += 1;
        }
        let (batch, _) = b.take().expect("take").expect("rows");
        proptest::prop_assert_eq!(batch.num_rows() + b.take_dropped(), rows);
        let offsets = batch
            .column_by_name("_offset")
            .expect("offsets")
            .as_any()
            .downcast_ref::<deltalake::arrow::array::Int64Array>()
            .expect("i64");
        let odd = offsets.iter().flatten().filter(|o| o % 2 == 1).count();
        proptest::prop_assert_eq!(odd, goods, "every good record is a row");
    }
}

#[tokio::test]
async fn a_partition_handed_to_another_member_is_written_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().display().to_string();
    let mut a = HistoryWriter::new(root.clone(), ids(), policy());
    let mut b = HistoryWriter::new(root.clone(), ids(), policy());
    a.ingest(&records(0, 10)).await.expect("ingest");
    assert_eq!(a.flush(true).await.expect("flush"), 30);
    // a buffers more, then partition 1 moves to b before a writes it out.
    a.ingest(&records(10, 10)).await.expect("ingest");
    a.revoke(TELEMETRY_READINGS, &[1]).await.expect("revoke");
    let resume = b.assign(TELEMETRY_READINGS, &[1]).await.expect("assign");
    assert_eq!(resume, vec![(1, 10)], "b resumes after the table's offset");
    // b is handed records from before its resume point too (a seek can race a fetch): skipped.
    let mine: Vec<ConsumedRecord> = records(5, 15)
        .into_iter()
        .filter(|r| r.partition == 1)
        .collect();
    let rep = b.ingest(&mine).await.expect("ingest");
    assert_eq!(rep.duplicates, 5, "what the table holds is skipped");
    assert_eq!(rep.buffered, 10);
    b.flush(true).await.expect("flush");
    a.flush(true).await.expect("flush");
    let uri = a.table_uri(TELEMETRY_READINGS);
    let (rows, distinct) = count_rows(&uri).await;
    assert_eq!(rows, distinct, "no row twice");
    // Partitions 0 and 2 from a (20 each), partition 1 from a (10) and b (10).
    assert_eq!(rows, 60);
    let table = open_table(&uri).await.expect("open").expect("exists");
    let offsets = table_offsets(&table, topic(TELEMETRY_READINGS).expect("topic"))
        .await
        .expect("offsets");
    assert_eq!(offsets.get(&1), Some(&19));
}

/// Every Parquet file under `dir`.
fn parquet_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(parquet_files(&p));
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn telemetry_files_are_sorted_by_server_whatever_the_log_order() {
    use deltalake::arrow::array::{AsArray, RecordBatch};
    use deltalake::arrow::datatypes::TimestampMicrosecondType;
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("history").display().to_string();
    let mut w = HistoryWriter::new(root, ids(), policy());
    // Partitions in the reverse order of their servers (each in its own offset order).
    let mut recs = records(0, 50);
    recs.sort_by_key(|r| (std::cmp::Reverse(r.partition), r.offset));
    w.ingest(&recs).await.expect("ingest");
    w.flush(true).await.expect("flush");

    let files = parquet_files(std::path::Path::new(&w.table_uri(TELEMETRY_READINGS)));
    assert_eq!(files.len(), 1);
    let file = std::fs::File::open(&files[0]).expect("open file");
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader")
        .collect::<Result<_, _>>()
        .expect("read");
    let mut rows = Vec::new();
    for b in &batches {
        let servers = b.column_by_name("server_id").expect("server_id");
        let times = b.column_by_name("timestamp").expect("timestamp");
        let times = times.as_primitive::<TimestampMicrosecondType>();
        for (s, t) in servers.as_string::<i32>().iter().zip(times.values()) {
            rows.push((s.expect("server").to_string(), *t));
        }
    }
    assert_eq!(rows.len(), 150);
    let mut sorted = rows.clone();
    sorted.sort();
    assert_eq!(rows, sorted);
}

#[tokio::test]
async fn a_table_an_older_release_wrote_takes_the_columns_added_since() {
    use automata_history::app_id;
    use deltalake::kernel::Transaction;
    use deltalake::kernel::transaction::CommitProperties;

    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().display().to_string();
    let w = HistoryWriter::new(root.clone(), ids(), policy());
    let uri = w.table_uri(TELEMETRY_READINGS);
    drop(w);

    // An older release: the same rows without the optional `thresholds` column, offsets 0..9
    // of each partition committed in the table's txn actions as the writer does.
    let spec = topic(TELEMETRY_READINGS).expect("topic");
    let mut batcher = RecordBatcher::new(spec, SAMPLE_SCHEMA_ID).expect("batcher");
    for r in records(0, 10) {
        assert_eq!(batcher.push(&r).expect("push"), Pushed::Row);
    }
    let (batch, _) = batcher.take().expect("take").expect("rows");
    let i = batch.schema().index_of("thresholds").expect("thresholds");
    let mut old = batch.clone();
    old.remove_column(i);
    std::fs::create_dir_all(&uri).expect("table dir");
    let url = deltalake::ensure_table_uri(&uri).expect("url");
    let table = deltalake::DeltaTable::try_from_url(url)
        .await
        .expect("location");
    let txns = (0..3)
        .map(|p| Transaction::new(app_id(TELEMETRY_READINGS, p), 9))
        .collect();
    table
        .write(vec![old])
        .with_partition_columns(["date"])
        .with_commit_properties(CommitProperties::default().with_application_transactions(txns))
        .await
        .expect("old release writes");

    // The current release resumes after the old rows and writes its own, thresholds included.
    let mut w = HistoryWriter::new(root, ids(), policy());
    let rep = w.ingest(&records(0, 20)).await.expect("ingest");
    assert_eq!((rep.duplicates, rep.buffered), (30, 30));
    assert_eq!(w.flush(true).await.expect("the new column merges"), 30);
    assert_eq!(count_rows(&uri).await, (60, 60));
    let table = open_table(&uri).await.expect("open").expect("exists");
    let schema = table.snapshot().expect("snapshot").schema();
    assert!(
        schema.field("thresholds").is_some(),
        "the table schema gained the column"
    );
}
