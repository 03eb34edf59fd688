//! `metal-automata bench query`: writes a generated fleet history through the history writer,
//! then times operator queries in DataFusion and, on the very same Parquet files, in DuckDB.
//!
//! DuckDB runs in the Python test peers' venv (`scripts/bench_duckdb.py`): the product stays
//! Rust, and the comparison uses DuckDB's own engine, not a copy of ours.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use automata_history::{FlushPolicy, HistoryWriter, open_table};
use automata_log::{ConsumedRecord, Record};
use automata_schemas::catalog::{TELEMETRY_READINGS, topic};
use automata_schemas::types::{SensorKind, TelemetryReading};
use automata_schemas::{SchemaIds, encode};
use deltalake::datafusion::prelude::SessionContext;
use serde::Serialize;

/// The generated fleet.
#[derive(Debug, Clone, Serialize)]
pub struct FleetSize {
    /// Servers.
    pub servers: usize,
    /// Sensors per server.
    pub sensors: usize,
    /// Hours of history.
    pub hours: f64,
    /// Seconds between readings of a sensor.
    pub interval_secs: u64,
}

/// One query's timings.
#[derive(Debug, Serialize)]
pub struct QueryTiming {
    /// Short name.
    pub name: String,
    /// The SQL.
    pub sql: String,
    /// Best of [`RUNS`] runs in DataFusion, ms.
    pub datafusion_ms: f64,
    /// Best of [`RUNS`] runs in DuckDB, ms (none when DuckDB is not available).
    pub duckdb_ms: Option<f64>,
    /// DataFusion time / DuckDB time.
    pub ratio: Option<f64>,
    /// Rows in the answer.
    pub rows: usize,
}

/// What `bench query` measured.
#[derive(Debug, Serialize)]
pub struct QueryBenchResult {
    /// The fleet.
    pub fleet: FleetSize,
    /// Rows written.
    pub rows: u64,
    /// Sink throughput, wall clock: rows per second from the first record handed to the writer
    /// to the last commit (decoding runs beside the background Parquet writes).
    pub sink_rows_per_sec: f64,
    /// The Avro decoding into Arrow alone, rows/s.
    pub decode_rows_per_sec: f64,
    /// Parquet encoding and Delta commits alone, rows/s.
    pub write_rows_per_sec: f64,
    /// Parquet bytes on disk.
    pub parquet_bytes: u64,
    /// Parquet files.
    pub files: usize,
    /// The queries.
    pub queries: Vec<QueryTiming>,
}

/// Runs of each query in each engine, the best kept: five, so that a busy machine (other
/// processes on a small box) rarely spoils every run of one engine and none of the other.
const RUNS: usize = 5;

/// Records handed to the writer at a time, as a sink batch from the log would be.
const CHUNK: usize = 100_000;

const QUERIES: &[(&str, &str)] = &[
    ("count", "SELECT count(*) AS n FROM telemetry"),
    (
        "avg temperature per server (top 10)",
        "SELECT server_id, avg(value) AS avg_c FROM telemetry WHERE kind = 'temperature' \
         GROUP BY server_id ORDER BY avg_c DESC, server_id LIMIT 10",
    ),
    (
        "hourly avg/max per kind",
        "SELECT date_trunc('hour', \"timestamp\") AS hour, kind, avg(value) AS avg_v, \
         max(value) AS max_v FROM telemetry GROUP BY 1, 2 ORDER BY 1, 2",
    ),
    (
        "power in the last hour (top 10)",
        "SELECT server_id, max(value) AS max_w FROM telemetry WHERE kind = 'power' AND \
         \"timestamp\" >= (SELECT max(\"timestamp\") FROM telemetry) - INTERVAL '1 hour' \
         GROUP BY server_id ORDER BY max_w DESC, server_id LIMIT 10",
    ),
    (
        "one server's sensors",
        "SELECT sensor, count(*) AS n, min(value) AS lo, max(value) AS hi FROM telemetry \
         WHERE server_id = 'srv-00042' GROUP BY sensor ORDER BY sensor",
    ),
];

/// The telemetry view both engines query (same definition as the `telemetry` operator table).
const VIEW: &str = "SELECT \"timestamp\", server_id, sensor_id AS sensor, kind, value, unit \
                    FROM raw_telemetry";

const KINDS: [(SensorKind, &str, f64); 4] = [
    (SensorKind::Temperature, "Cel", 30.0),
    (SensorKind::Power, "W", 350.0),
    (SensorKind::Fan, "RPM", 6000.0),
    (SensorKind::Voltage, "V", 12.0),
];

fn reading(server: usize, sensor: usize, ts_ms: i64, seed: u64) -> TelemetryReading {
    let (kind, unit, base) = KINDS[sensor % KINDS.len()];
    // Deterministic noise: no RNG state to share between chunks.
    let h = (server as u64 * 1_000_003 + sensor as u64 * 7919 + ts_ms as u64 / 1000 + seed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let noise = (h >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
    TelemetryReading {
        timestamp: ts_ms,
        server_id: format!("srv-{server:05}"),
        sensor_id: format!("sensor-{sensor:03}"),
        name: format!("Sensor {sensor}"),
        kind,
        value: base * (1.0 + noise * 0.2),
        unit: unit.into(),
        component_id: None,
        thresholds: None,
        source: "bench".into(),
    }
}

/// Readings of every sensor pre-encoded for [`VARIANTS`] steps. Each step of the benchmark
/// splices its own timestamp into them (the first field of the record), so that making a record
/// costs a copy and the figures measure the sink, not the generator.
struct Templates {
    /// Per variant, per (server, sensor): the framing, then the body after the timestamp.
    records: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
    /// Record keys (server ids), shared by every step.
    keys: Vec<bytes::Bytes>,
}

/// Distinct readings per sensor: the values repeat with this period, in steps.
const VARIANTS: usize = 8;
/// Bytes of the Confluent framing (magic byte, schema id).
const FRAME: usize = 5;

impl Templates {
    fn new(fleet: &FleetSize, schema_id: u32) -> Result<Self> {
        let spec = topic(TELEMETRY_READINGS).context("telemetry topic")?;
        let mut records = Vec::with_capacity(VARIANTS);
        for variant in 0..VARIANTS {
            let mut step = Vec::with_capacity(fleet.servers * fleet.sensors);
            for server in 0..fleet.servers {
                for sensor in 0..fleet.sensors {
                    let r = reading(server, sensor, 0, variant as u64 * 7_777);
                    let v = encode(spec, schema_id, &r).context("encoding a reading")?;
                    let ts_len = v
                        .iter()
                        .skip(FRAME)
                        .position(|b| b & 0x80 == 0)
                        .context("a timestamp varint")?
                        + 1;
                    step.push((v[..FRAME].to_vec(), v[FRAME + ts_len..].to_vec()));
                }
            }
            records.push(step);
        }
        let keys = (0..fleet.servers)
            .map(|s| bytes::Bytes::from(format!("srv-{s:05}")))
            .collect();
        Ok(Templates { records, keys })
    }

    /// The record of `index` (server-major) at step `step`, stamped `ts_ms`.
    fn record(
        &self,
        step: u64,
        index: usize,
        sensors: usize,
        ts_ms: i64,
    ) -> (bytes::Bytes, Vec<u8>) {
        let (frame, tail) = &self.records[step as usize % VARIANTS][index];
        let mut v = Vec::with_capacity(frame.len() + 10 + tail.len());
        v.extend_from_slice(frame);
        // Avro long: zig-zag, then base-128 varint.
        let mut n = ((ts_ms << 1) ^ (ts_ms >> 63)) as u64;
        while n >= 0x80 {
            v.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        v.push(n as u8);
        v.extend_from_slice(tail);
        (self.keys[index / sensors].clone(), v)
    }
}

/// Bytes and number of the Parquet files under `p`.
pub fn parquet_size(p: &Path) -> (u64, usize) {
    let mut bytes = 0;
    let mut files = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                let (b, f) = parquet_size(&path);
                bytes += b;
                files += f;
            } else if path.extension().is_some_and(|x| x == "parquet") {
                bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                files += 1;
            }
        }
    }
    (bytes, files)
}

/// Runs the benchmark in `dir`; `duckdb_python` is a Python with the duckdb package.
pub async fn run(
    fleet: FleetSize,
    dir: &Path,
    duckdb_python: Option<PathBuf>,
    progress: bool,
) -> Result<QueryBenchResult> {
    let schema_id = 1;
    let ids = SchemaIds::new(HashMap::from([(TELEMETRY_READINGS.to_string(), schema_id)]));
    let root = dir.join("history").display().to_string();
    let policy = FlushPolicy {
        max_rows: 1_000_000,
        max_age: std::time::Duration::from_secs(3600),
    };
    let mut writer = HistoryWriter::new(root.clone(), ids, policy);
    let steps = ((fleet.hours * 3600.0) / fleet.interval_secs.max(1) as f64).ceil() as u64;
    let per_step = fleet.servers * fleet.sensors;
    let total = steps * per_step as u64;
    let templates = Templates::new(&fleet, schema_id)?;
    let bar = crate::bench::progress_bar(progress, total, "writing history");
    let start_ms = chrono::Utc::now().timestamp_millis() - (fleet.hours * 3_600_000.0) as i64;
    let mut offset: i64 = 0;
    let mut decode = Duration::ZERO;
    let mut sink = Duration::ZERO;
    let mut chunk: Vec<ConsumedRecord> = Vec::with_capacity(CHUNK);
    for step in 0..steps {
        let ts = start_ms + (step * fleet.interval_secs * 1000) as i64;
        for index in 0..per_step {
            let (key, value) = templates.record(step, index, fleet.sensors, ts);
            chunk.push(ConsumedRecord {
                topic: TELEMETRY_READINGS.to_string(),
                partition: 0,
                offset,
                record: Record {
                    key: Some(key),
                    value: Some(value.into()),
                    headers: Vec::new(),
                    timestamp_ms: Some(ts),
                },
            });
            offset += 1;
            let last = step + 1 == steps && index + 1 == per_step;
            if chunk.len() == CHUNK || last {
                let t = Instant::now();
                writer.ingest(&chunk).await?;
                decode += t.elapsed();
                writer.flush(last).await?;
                sink += t.elapsed();
                bar.inc(chunk.len() as u64);
                chunk.clear();
            }
        }
    }
    bar.finish_and_clear();
    let table_uri = writer.table_uri(TELEMETRY_READINGS);
    let (parquet_bytes, files) = parquet_size(Path::new(&table_uri));

    // DataFusion over the Delta table.
    let table = open_table(&table_uri)
        .await?
        .context("the benchmark table was not written")?;
    let ctx = SessionContext::new_with_config(automata_query::sql::session_config());
    automata_query::sql::functions::register(&ctx);
    table.update_datafusion_session(&ctx.state())?;
    ctx.register_table(
        "raw_telemetry",
        automata_history::scan::table_provider(&table).await?,
    )?;
    ctx.sql(&format!("CREATE VIEW telemetry AS {VIEW}")).await?;
    let mut queries = Vec::new();
    for (name, sql) in QUERIES {
        let mut best = f64::MAX;
        let mut rows = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let batches = ctx.sql(sql).await?.collect().await?;
            best = best.min(t.elapsed().as_secs_f64() * 1000.0);
            rows = batches.iter().map(|b| b.num_rows()).sum();
        }
        queries.push(QueryTiming {
            name: name.to_string(),
            sql: sql.to_string(),
            datafusion_ms: best,
            duckdb_ms: None,
            ratio: None,
            rows,
        });
    }

    // DuckDB over exactly the files the Delta log lists.
    if let Some(python) = duckdb_python {
        let files: Vec<String> = table
            .get_file_uris()?
            .map(|u| u.trim_start_matches("file://").to_string())
            .collect();
        let input = serde_json::json!({
            "files": files,
            "view": VIEW,
            "queries": QUERIES.iter().map(|(_, q)| q).collect::<Vec<_>>(),
            "runs": RUNS,
        });
        let out = run_python(&python, &input).await?;
        let times: Vec<f64> = serde_json::from_slice(&out).with_context(|| {
            format!(
                "DuckDB timings from {:?}",
                String::from_utf8_lossy(&out[..out.len().min(200)])
            )
        })?;
        for (q, ms) in queries.iter_mut().zip(times) {
            q.duckdb_ms = Some(ms);
            q.ratio = Some(q.datafusion_ms / ms.max(0.001));
        }
    }
    Ok(QueryBenchResult {
        fleet,
        rows: offset as u64,
        sink_rows_per_sec: offset as f64 / sink.as_secs_f64().max(1e-9),
        decode_rows_per_sec: offset as f64 / decode.as_secs_f64().max(1e-9),
        write_rows_per_sec: offset as f64 / writer.write_time().as_secs_f64().max(1e-9),
        parquet_bytes,
        files,
        queries,
    })
}

/// The DuckDB side, built in so that an installed binary needs no source tree.
const DUCKDB_SCRIPT: &str = include_str!("../../scripts/bench_duckdb.py");

async fn run_python(python: &Path, input: &serde_json::Value) -> Result<Vec<u8>> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(python)
        .arg("-c")
        .arg(DUCKDB_SCRIPT)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", python.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&serde_json::to_vec(input)?).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "DuckDB run failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}
