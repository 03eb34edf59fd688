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
    let log = MessageLog::open(&LogConfig::default(), dir.path()).expect("log");
    let cfgs: Vec<_> = topics().iter().map(|t| t.log_config()).collect();
    log.ensure_topics(&cfgs).await.expect("topics");
    let ids = SchemaIds::new(HashMap::from([(
        TELEMETRY_READINGS.to_string(),
        SAMPLE_SCHEMA_ID,
    )]));
    let send = |from: u64, n: u64| {
        let log = log.clone();
        async move {
            let recs: Vec<Record> = (from..from + n)
                .map(|i| {
                    let server = format!("srv-{}", i % 7);
                    let v = telemetry_reading_bytes(&server, i).expect("encodes");
                    Record::new(server.into_bytes(), v)
                })
                .collect();
            log.send_batch(TELEMETRY_READINGS, recs)
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
