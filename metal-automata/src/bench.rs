//! `metal-automata bench log`: produce and consume throughput and produce latency of each backend.
//!
//! The payload is a real Avro `TelemetryReading` in the Confluent wire format (~200 bytes with
//! its key), the record the pipeline carries most of. Produce runs with many sends in flight, as
//! collectors do; latency is measured from send to acknowledgement for every record.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use automata_log::{MessageLog, Record, StartFrom, TopicConfig};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use serde::Serialize;

/// What one backend measured.
#[derive(Debug, Serialize)]
pub struct LogBenchResult {
    /// `embedded` or `kafka`.
    pub backend: String,
    /// Records produced and consumed.
    pub records: u64,
    /// Average record size (key + value) in bytes.
    pub record_bytes: u64,
    /// Produce throughput, records per second, until the last acknowledgement.
    pub produce_records_per_sec: f64,
    /// Produce throughput in MB/s.
    pub produce_mb_per_sec: f64,
    /// Median produce latency (send to acknowledgement), ms.
    pub produce_p50_ms: f64,
    /// 99th percentile produce latency, ms.
    pub produce_p99_ms: f64,
    /// Consume throughput, records per second, for a fresh consumer group reading it all.
    pub consume_records_per_sec: f64,
    /// Consume throughput in MB/s.
    pub consume_mb_per_sec: f64,
}

/// Records per send call: the embedded backend acknowledges a batch at once, as a Kafka client
/// acknowledges a produce request; both keep many calls in flight.
const CHUNK: usize = 500;
const IN_FLIGHT_CHUNKS: usize = 64;

/// A realistic telemetry payload set: `distinct` encoded readings cycled through.
fn payloads(distinct: usize) -> Result<Vec<(Bytes, Bytes)>> {
    let mut out = Vec::with_capacity(distinct);
    for i in 0..distinct {
        let server = format!("srv-{:05}", i % 1000);
        let value = automata_schemas::sample::telemetry_reading_bytes(&server, i as u64)
            .context("encoding a sample telemetry reading")?;
        out.push((Bytes::from(server), Bytes::from(value)));
    }
    Ok(out)
}

/// Runs the log benchmark on one backend.
pub async fn run_log_bench(
    log: &MessageLog,
    backend: &str,
    records: u64,
    progress: bool,
) -> Result<LogBenchResult> {
    let topic = format!("bench.telemetry.{}", uuid::Uuid::new_v4().simple());
    log.ensure_topics(&[TopicConfig::new(&topic, 6).retention_ms(3_600_000)])
        .await
        .context("creating the bench topic")?;
    let data = payloads(1024)?;
    let record_bytes = data
        .iter()
        .map(|(k, v)| (k.len() + v.len()) as u64)
        .sum::<u64>()
        / data.len() as u64;

    let bar = progress_bar(progress, records, &format!("{backend}: produce"));
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).context("histogram bounds")?;
    let started = Instant::now();
    let mut inflight = FuturesUnordered::new();
    let mut sent = 0u64;
    let mut i = 0usize;
    while sent < records || !inflight.is_empty() {
        while sent < records && inflight.len() < IN_FLIGHT_CHUNKS {
            let n = CHUNK.min((records - sent) as usize);
            let mut chunk = Vec::with_capacity(n);
            for _ in 0..n {
                let (k, v) = &data[i % data.len()];
                i += 1;
                chunk.push(Record {
                    key: Some(k.clone()),
                    value: Some(v.clone()),
                    headers: Vec::new(),
                    timestamp_ms: None,
                });
            }
            sent += n as u64;
            let log = log.clone();
            let topic = topic.clone();
            inflight.push(async move {
                let t0 = Instant::now();
                let r = log.send_batch(&topic, chunk).await;
                (r, t0.elapsed(), n)
            });
        }
        if let Some((r, took, n)) = inflight.next().await {
            r.context("produce failed")?;
            hist.record_n(took.as_micros().max(1) as u64, n as u64)
                .context("latency out of range")?;
            bar.inc(n as u64);
        }
    }
    let produce_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let bar = progress_bar(progress, records, &format!("{backend}: consume"));
    let mut consumer = log
        .consumer(
            &format!("bench-{}", uuid::Uuid::new_v4().simple()),
            &[&topic],
            StartFrom::Earliest,
        )
        .context("opening the bench consumer")?;
    let started = Instant::now();
    let mut got = 0u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while got < records {
        anyhow::ensure!(
            Instant::now() < deadline,
            "consumed only {got} of {records} records"
        );
        let batch = consumer.recv_batch(10_000, Duration::from_secs(5)).await?;
        got += batch.len() as u64;
        bar.inc(batch.len() as u64);
    }
    let consume_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let mb = (records * record_bytes) as f64 / 1e6;
    Ok(LogBenchResult {
        backend: backend.to_string(),
        records,
        record_bytes,
        produce_records_per_sec: records as f64 / produce_secs,
        produce_mb_per_sec: mb / produce_secs,
        produce_p50_ms: hist.value_at_quantile(0.5) as f64 / 1000.0,
        produce_p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        consume_records_per_sec: records as f64 / consume_secs,
        consume_mb_per_sec: mb / consume_secs,
    })
}

pub fn progress_bar(show: bool, len: u64, msg: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:>20} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(msg.to_string());
    bar
}
