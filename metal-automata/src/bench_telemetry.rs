//! `metal-automata bench telemetry`: the time of a full sensor sweep over N simulated BMCs, cold
//! (sessions and chassis topology read first) and warm, with the readings written to an embedded
//! log as the collector does; then the pipeline's throughput: the swept readings, replayed as
//! later polls, published to a fresh embedded log while the health processor and the history
//! sink (Delta/Parquet) run on it with the same runtimes `serve` uses, timed until both have
//! committed the last reading.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use automata_bmc::registry::BmcEntry;
use automata_bmc::{Credentials, TlsPolicy};
use automata_log::{LogConfig, MessageLog, Record, StartFrom};
use automata_processors::health::{HealthConfig, HealthProcessor};
use automata_schemas::catalog::{TELEMETRY_READINGS, topic};
use automata_schemas::types::TelemetryReading;
use automata_schemas::{SchemaIds, decode};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// `bench telemetry` options.
#[derive(Debug, clap::Args)]
pub struct TelemetryBenchArgs {
    /// Simulated BMCs.
    #[arg(long, default_value_t = 1000)]
    pub servers: usize,
    /// BMCs polled at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Warm sweeps to time after the first.
    #[arg(long, default_value_t = 3)]
    pub sweeps: usize,
    /// The first simulated BMC's address; the others take the next loopback IPs.
    #[arg(long, default_value = "127.5.0.1:8000")]
    pub listen: std::net::SocketAddr,
    /// Readings pushed through log → health → Parquet (0: skip that stage).
    #[arg(long, default_value_t = 1_000_000)]
    pub pipeline_readings: usize,
}

/// One sweep's figures.
#[derive(Debug, Serialize)]
pub struct SweepFigure {
    /// cold (first) or warm.
    pub kind: &'static str,
    /// Wall time, s.
    pub secs: f64,
    /// BMCs that answered.
    pub ok: usize,
    /// Readings published.
    pub readings: usize,
    /// Readings per second.
    pub readings_per_sec: f64,
}

/// The pipeline stage's figures.
#[derive(Debug, Serialize)]
pub struct PipelineFigure {
    /// Readings pushed through.
    pub readings: usize,
    /// Publishing them to the log (the collectors' side), s.
    pub publish_secs: f64,
    /// From the first publish until health and history had both committed the last one, s.
    pub end_to_end_secs: f64,
    /// Readings per second end to end.
    pub readings_per_sec: f64,
    /// Health changes the processor emitted.
    pub health_events: i64,
    /// Parquet files and bytes written for `telemetry.readings`.
    pub parquet_files: usize,
    /// Bytes of those files.
    pub parquet_bytes: u64,
}

/// What `bench telemetry` measured.
#[derive(Debug, Serialize)]
pub struct TelemetryBench {
    /// BMCs.
    pub bmcs: usize,
    /// Each sweep.
    pub sweeps: Vec<SweepFigure>,
    /// Log → health → Parquet, when run.
    pub pipeline: Option<PipelineFigure>,
}

/// Runs the bench.
pub async fn run(a: TelemetryBenchArgs, table: bool) -> Result<TelemetryBench> {
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let sim = crate::simulate::SimulateArgs::local(a.servers, a.listen, tmp.path().join("sim"));
    let (mut cfg, _) = crate::simulate::config(&sim)?;
    cfg.ground_truth = None;
    let password = cfg.credentials.password.clone();
    let fleet = automata_simulator::Fleet::start(cfg).await?;

    let mut lc = automata_log::LogConfig {
        backend: automata_log::Backend::Embedded,
        ..Default::default()
    };
    lc.embedded.dir = Some(tmp.path().join("log"));
    let log = automata_log::MessageLog::open(&lc, tmp.path())?;
    let spec = topic(TELEMETRY_READINGS).context("no telemetry topic")?;
    log.ensure_topics(&[spec.log_config()]).await?;
    let ids = SchemaIds::new(HashMap::from([(TELEMETRY_READINGS.to_string(), 1)]));

    let bmcs: Vec<(BmcEntry, Credentials)> = fleet
        .endpoints
        .iter()
        .map(|e| {
            (
                BmcEntry {
                    name: e.name.clone(),
                    address: e.address.clone(),
                    username: "admin".into(),
                    protocol: automata_bmc::Protocol::Redfish,
                    tls: TlsPolicy::Verify,
                    added_at: String::new(),
                    labels: Default::default(),
                },
                Credentials::new("admin", password.clone()),
            )
        })
        .collect();
    let cfg = automata_producers::bmc::BmcCollectorConfig {
        fleet_concurrency: a.concurrency.max(1),
        ..Default::default()
    };
    let mut poller = automata_producers::bmc::SensorPoller::new(cfg);
    let mut sweeps = Vec::new();
    let bar = crate::bench::progress_bar(table, (a.sweeps + 1) as u64, "sensor sweeps");
    for i in 0..=a.sweeps {
        let r = poller.sweep(&log, &ids, bmcs.clone()).await?;
        let secs = r.elapsed_ms as f64 / 1000.0;
        sweeps.push(SweepFigure {
            kind: if i == 0 { "cold" } else { "warm" },
            secs,
            ok: r.ok,
            readings: r.readings,
            readings_per_sec: r.readings as f64 / secs.max(0.001),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    fleet.stop().await;
    let pipeline = if a.pipeline_readings > 0 {
        let seed = swept_readings(&log, &ids).await?;
        Some(pipeline(tmp.path(), seed, a.pipeline_readings, table).await?)
    } else {
        None
    };
    Ok(TelemetryBench {
        bmcs: a.servers,
        sweeps,
        pipeline,
    })
}

/// Every reading the sweeps published to the bench's log.
async fn swept_readings(log: &MessageLog, ids: &SchemaIds) -> Result<Vec<TelemetryReading>> {
    let spec = topic(TELEMETRY_READINGS).context("no telemetry topic")?;
    let id = ids
        .get(TELEMETRY_READINGS)
        .context("no telemetry schema id")?;
    let mut consumer = log.consumer("bench-replay", &[TELEMETRY_READINGS], StartFrom::Earliest)?;
    let mut out = Vec::new();
    loop {
        let batch = consumer
            .recv_batch(10_000, Duration::from_millis(500))
            .await?;
        if batch.is_empty() {
            break;
        }
        for r in batch {
            if let Some(v) = r.record.value.as_deref() {
                out.push(decode(spec, id, v)?);
            }
        }
    }
    anyhow::ensure!(!out.is_empty(), "the sweeps published no readings");
    Ok(out)
}

/// Pushes `total` readings (the swept ones, again and again as later polls) through a fresh
/// embedded log with the health processor and the history sink running on it.
async fn pipeline(
    dir: &Path,
    seed: Vec<TelemetryReading>,
    total: usize,
    table: bool,
) -> Result<PipelineFigure> {
    let mut lc = LogConfig {
        backend: automata_log::Backend::Embedded,
        ..Default::default()
    };
    lc.embedded.dir = Some(dir.join("pipeline-log"));
    let log = MessageLog::open(&lc, dir)?;
    let specs: Vec<_> = automata_schemas::topics()
        .iter()
        .map(|t| t.log_config())
        .collect();
    log.ensure_topics(&specs).await?;
    let ids = SchemaIds::new(
        automata_schemas::topics()
            .iter()
            .zip(1u32..)
            .map(|(t, i)| (t.name.to_string(), i))
            .collect(),
    );
    let spec = topic(TELEMETRY_READINGS).context("no telemetry topic")?;
    let id = ids
        .get(TELEMETRY_READINGS)
        .context("no telemetry schema id")?;
    // Encoded beforehand: the collectors' encoding is part of the sweep figures.
    let mut records = Vec::with_capacity(total);
    for (i, r) in seed.iter().cycle().take(total).enumerate() {
        let round = i64::try_from(i / seed.len()).unwrap_or(i64::MAX);
        let mut r = r.clone();
        r.timestamp += round * 60_000;
        let bytes = automata_schemas::encode(spec, id, &r)?;
        records.push(Record::new(r.server_id.clone(), bytes).with_timestamp(r.timestamp));
    }

    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let (l, s, i) = (log.clone(), shutdown.clone(), ids.clone());
    tasks.spawn(async move {
        automata_processors::run(
            l,
            move || HealthProcessor::new(i.clone(), HealthConfig::default()),
            automata_processors::RunnerConfig::default(),
            s,
        )
        .await
        .map_err(anyhow::Error::from)
    });
    let history = dir.join("history");
    let (l, s, i, root) = (
        log.clone(),
        shutdown.clone(),
        ids.clone(),
        history.to_string_lossy().into_owned(),
    );
    tasks.spawn(async move {
        let location = automata_history::HistoryLocation::new(root);
        let policy = automata_history::FlushPolicy {
            max_rows: 100_000,
            max_age: Duration::from_secs(1),
        };
        let upkeep = automata_sinks::history::Upkeep {
            every: None,
            retention: Default::default(),
        };
        let sink = automata_sinks::history::HistorySink::new(location, i, policy, upkeep);
        automata_sinks::run(l, sink, s)
            .await
            .map_err(anyhow::Error::from)
    });

    let bar = crate::bench::progress_bar(table, total as u64, "log → health → Parquet");
    let started = Instant::now();
    // In order, as polls arrive: the health processor ignores a reading older than the last.
    let mut records = records.into_iter();
    loop {
        let chunk: Vec<Record> = records.by_ref().take(20_000).collect();
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        log.send_batch(TELEMETRY_READINGS, chunk).await?;
        bar.inc(n as u64);
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let highs = log.watermarks(TELEMETRY_READINGS).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(done) = tasks.try_join_next() {
            done??;
            anyhow::bail!("a pipeline stage stopped early");
        }
        let mut caught_up = true;
        for w in &highs {
            for group in ["health", "history"] {
                let at = log
                    .committed(group, TELEMETRY_READINGS, w.partition)
                    .await?;
                caught_up &= at.unwrap_or(0) >= w.high;
            }
        }
        if caught_up {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the pipeline did not catch up in 10 min"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let end_to_end_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    shutdown.cancel();
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let health_events = log
        .watermarks(automata_schemas::catalog::HEALTH_EVENTS)
        .await?
        .iter()
        .map(|w| w.high - w.low)
        .sum();
    let (parquet_bytes, parquet_files) =
        crate::bench_query::parquet_size(&history.join(TELEMETRY_READINGS));
    Ok(PipelineFigure {
        readings: total,
        publish_secs,
        end_to_end_secs,
        readings_per_sec: total as f64 / end_to_end_secs.max(0.001),
        health_events,
        parquet_files,
        parquet_bytes,
    })
}
