//! The SQL engine over a real embedded log and real Delta tables: flushed rows and the log's
//! unwritten tail are both in the answer, each once; bad queries and writes are refused.

use std::collections::HashMap;
use std::time::Duration;

use automata_history::{FlushPolicy, HistoryWriter};
use automata_log::{LogConfig, MessageLog, Record, StartFrom};
use automata_query::sql::{SqlConfig, SqlEngine, SqlError};
use automata_schemas::SchemaIds;
use automata_schemas::catalog::{TELEMETRY_READINGS, topics};
use automata_schemas::sample::{SAMPLE_SCHEMA_ID, telemetry_reading_bytes};
use deltalake::arrow::array::Int64Array;

/// An embedded log in `dir` with every topic of the catalog.
async fn fleet_log(dir: &std::path::Path) -> MessageLog {
    let log = MessageLog::open(&LogConfig::default(), dir).expect("log");
    let cfgs: Vec<_> = topics().iter().map(|t| t.log_config()).collect();
    log.ensure_topics(&cfgs).await.expect("topics");
    log
}

/// Readings `from..from + n`, spread over `servers` servers.
fn readings(from: u64, n: u64, servers: u64) -> Vec<Record> {
    (from..from + n)
        .map(|i| {
            let server = format!("srv-{}", i % servers);
            let v = telemetry_reading_bytes(&server, i).expect("encodes");
            Record::new(server.into_bytes(), v)
        })
        .collect()
}

async fn count(engine: &SqlEngine, sql: &str) -> i64 {
    let (_, batches, _) = engine.query(sql, None).await.expect("query runs");
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("a count")
        .value(0)
}

#[tokio::test]
async fn flushed_rows_and_the_unwritten_tail_are_each_counted_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = fleet_log(dir.path()).await;
    let ids = SchemaIds::new(HashMap::from([(
        TELEMETRY_READINGS.to_string(),
        SAMPLE_SCHEMA_ID,
    )]));
    let send = |from: u64, n: u64| {
        let log = log.clone();
        async move {
            log.send_batch(TELEMETRY_READINGS, readings(from, n, 7))
                .await
                .expect("send");
        }
    };
    send(0, 300).await;

    // The sink writes what it has read so far; 200 more arrive after.
    let root = dir.path().join("history").display().to_string();
    let mut writer = HistoryWriter::new(
        root.clone(),
        ids.clone(),
        FlushPolicy {
            max_rows: 1_000_000,
            max_age: Duration::from_secs(3600),
        },
    );
    let mut c = log
        .consumer("history", &[TELEMETRY_READINGS], StartFrom::Earliest)
        .expect("consumer");
    let mut read = 0;
    while read < 300 {
        let b = c
            .recv_batch(1000, Duration::from_secs(2))
            .await
            .expect("recv");
        assert!(!b.is_empty(), "the log holds 300 records");
        read += b.len();
        writer.ingest(&b).await.expect("ingest");
    }
    assert_eq!(writer.flush(true).await.expect("flush"), 300);
    send(300, 200).await;

    let engine = SqlEngine::new(log.clone(), ids, root, SqlConfig::default());
    assert_eq!(count(&engine, "SELECT count(*) FROM telemetry").await, 500);
    assert_eq!(
        count(
            &engine,
            "SELECT count(DISTINCT (_partition, _offset)) FROM raw.telemetry_readings"
        )
        .await,
        500
    );
    assert_eq!(
        count(
            &engine,
            "SELECT count(*) FROM telemetry WHERE kind = 'temperature' AND unit = 'Cel'"
        )
        .await,
        500
    );

    // JSON answers are cut at the row limit and say so.
    let (schema, batches, truncated) = engine
        .query("SELECT * FROM telemetry", Some(10))
        .await
        .expect("query");
    assert!(truncated);
    // Strings are scanned as views, but answered as plain strings, as clients always had them.
    for b in &batches {
        assert_eq!(b.schema(), schema);
    }
    assert_eq!(
        schema
            .field_with_name("server_id")
            .expect("server_id")
            .data_type(),
        &deltalake::arrow::datatypes::DataType::Utf8
    );
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 10);

    // Wrong queries carry the planner's message; writes are refused.
    for bad in [
        "SELECT nope FROM telemetry",
        "SELEC 1",
        "SELECT * FROM no_such_table",
        "CREATE TABLE x AS SELECT 1",
        "INSERT INTO telemetry VALUES (1)",
        "SET datafusion.execution.batch_size = 1",
    ] {
        match engine.query(bad, None).await {
            Err(SqlError::Query(m)) => assert!(!m.is_empty()),
            other => panic!("{bad}: expected a query error, got {other:?}"),
        }
    }

    // Every operator table plans over an empty history too.
    for v in automata_query::sql::views::VIEWS {
        engine
            .query(&format!("SELECT * FROM {} LIMIT 1", v.name), None)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
    }
}

#[tokio::test]
async fn a_query_past_its_memory_limit_is_refused_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = MessageLog::open(&LogConfig::default(), dir.path()).expect("log");
    let engine = SqlEngine::new(
        log,
        SchemaIds::new(HashMap::new()),
        dir.path().join("history").display().to_string(),
        SqlConfig {
            memory_limit_mb: 1,
            ..SqlConfig::default()
        },
    );
    let r = engine
        .query(
            "SELECT value % 1000 AS k, array_agg(value) FROM generate_series(1, 3000000) \
             GROUP BY k ORDER BY k",
            None,
        )
        .await;
    assert!(
        matches!(r, Err(SqlError::Memory { .. })),
        "expected the memory limit, got {r:?}"
    );
}

#[tokio::test]
async fn a_table_an_older_release_wrote_reads_with_the_columns_added_since() {
    use automata_history::layout::Pushed;
    use automata_history::{RecordBatcher, app_id};
    use automata_schemas::catalog::topic;
    use deltalake::kernel::Transaction;
    use deltalake::kernel::transaction::CommitProperties;

    let dir = tempfile::tempdir().expect("tempdir");
    let log = fleet_log(dir.path()).await;
    log.send_batch(TELEMETRY_READINGS, readings(0, 50, 5))
        .await
        .expect("send");
    let mut c = log
        .consumer("old-release", &[TELEMETRY_READINGS], StartFrom::Earliest)
        .expect("consumer");
    let mut read = Vec::new();
    while read.len() < 50 {
        let b = c
            .recv_batch(1000, Duration::from_secs(2))
            .await
            .expect("recv");
        assert!(!b.is_empty(), "the log holds 50 records");
        read.extend(b);
    }

    // An older release wrote the first 30 records without the optional `thresholds` column.
    let mut batcher =
        RecordBatcher::new(topic(TELEMETRY_READINGS).expect("topic"), SAMPLE_SCHEMA_ID)
            .expect("batcher");
    let mut last: HashMap<i32, i64> = HashMap::new();
    for r in &read[..30] {
        assert_eq!(batcher.push(r).expect("push"), Pushed::Row);
        let o = last.entry(r.partition).or_insert(r.offset);
        *o = (*o).max(r.offset);
    }
    let (mut old, _) = batcher.take().expect("take").expect("rows");
    old.remove_column(old.schema().index_of("thresholds").expect("thresholds"));
    let root = dir.path().join("history").display().to_string();
    let uri = format!("{root}/{TELEMETRY_READINGS}");
    std::fs::create_dir_all(&uri).expect("table dir");
    let table =
        deltalake::DeltaTable::try_from_url(deltalake::ensure_table_uri(&uri).expect("url"))
            .await
            .expect("location");
    let txns = last
        .iter()
        .map(|(p, o)| Transaction::new(app_id(TELEMETRY_READINGS, *p), *o))
        .collect();
    table
        .write(vec![old])
        .with_partition_columns(["date"])
        .with_commit_properties(CommitProperties::default().with_application_transactions(txns))
        .await
        .expect("old release writes");

    // The current release reads the old rows with nulls there, and the tail with its values.
    let ids = SchemaIds::new(HashMap::from([(
        TELEMETRY_READINGS.to_string(),
        SAMPLE_SCHEMA_ID,
    )]));
    let engine = SqlEngine::new(log.clone(), ids, root, SqlConfig::default());
    assert_eq!(
        count(&engine, "SELECT count(*) FROM raw.telemetry_readings").await,
        50
    );
    assert_eq!(
        count(
            &engine,
            "SELECT count(thresholds) FROM raw.telemetry_readings"
        )
        .await,
        20
    );
    assert_eq!(count(&engine, "SELECT count(*) FROM telemetry").await, 50);
}
