//! The loop every sink runs in: read a batch, hand it over, commit what the sink says is durable.
//!
//! A sink returns, after each batch and when idle, the offsets it holds durably. Only those are
//! committed, so the group's offsets never run ahead of the target: after a crash the sink is
//! handed again whatever it had not made durable. Sinks that buffer (the Delta history does, to
//! write healthy files) commit later; sinks whose target carries the offsets itself skip what
//! they already hold, which makes the whole exactly once.

use std::time::Duration;

use automata_log::{ConsumedRecord, LogError, MessageLog, StartFrom, TopicPartitionOffset};
use tokio_util::sync::CancellationToken;

/// Why a sink could not write a batch.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target failed; the batch is retried.
    #[error("sink {sink}: {message}")]
    Write {
        /// Sink name.
        sink: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A destination for records leaving the log.
pub trait Sink: Send + 'static {
    /// Its name: the consumer group.
    fn name(&self) -> &'static str;
    /// Topics it consumes.
    fn inputs(&self) -> Vec<&'static str>;
    /// Where a new sink starts reading.
    fn start_from(&self) -> StartFrom {
        StartFrom::Earliest
    }
    /// Takes a batch; returns the offsets (next to read) now durable in the target.
    /// An error retries the same batch, so taking a batch twice must be harmless.
    fn write(
        &mut self,
        batch: &[ConsumedRecord],
    ) -> impl std::future::Future<Output = Result<Vec<TopicPartitionOffset>, SinkError>> + Send;
    /// Called when no records came for a while: write out what is due; returns durable offsets.
    fn idle(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Vec<TopicPartitionOffset>, SinkError>> + Send
    {
        async { Ok(Vec::new()) }
    }
    /// Called once at shutdown: write out everything; returns durable offsets.
    fn close(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Vec<TopicPartitionOffset>, SinkError>> + Send
    {
        async { Ok(Vec::new()) }
    }
}

async fn commit(
    consumer: &automata_log::LogConsumer,
    name: &'static str,
    offsets: Vec<TopicPartitionOffset>,
) -> Result<(), SinkError> {
    if !offsets.is_empty() {
        consumer.commit(&offsets).await?;
        metrics::counter!("automata_sink_commits_total", "sink" => name).increment(1);
    }
    Ok(())
}

/// Runs a sink until `shutdown`, retrying failed batches with backoff.
pub async fn run<S: Sink>(
    log: MessageLog,
    mut sink: S,
    shutdown: CancellationToken,
) -> Result<(), SinkError> {
    let name = sink.name();
    let mut consumer = log.consumer(name, &sink.inputs(), sink.start_from())?;
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => {
                let offsets = sink.close().await?;
                return commit(&consumer, name, offsets).await;
            }
            b = consumer.recv_batch(5_000, Duration::from_millis(500)) => b?,
        };
        if batch.is_empty() {
            // A failed write-out is retried on the next idle tick or batch; the records stay
            // uncommitted meanwhile, so nothing is lost and the role keeps running.
            match sink.idle().await {
                Ok(offsets) => commit(&consumer, name, offsets).await?,
                Err(e) => {
                    metrics::counter!("automata_sink_write_errors_total", "sink" => name)
                        .increment(1);
                    tracing::warn!(sink = name, error = %e, "sink write failed; will retry");
                }
            }
            continue;
        }
        let mut backoff = Duration::from_millis(100);
        let offsets = loop {
            match sink.write(&batch).await {
                Ok(offsets) => break offsets,
                Err(e) => {
                    metrics::counter!("automata_sink_write_errors_total", "sink" => name)
                        .increment(1);
                    tracing::warn!(sink = name, error = %e, retry_in = ?backoff, "sink write failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        };
        metrics::counter!("automata_sink_records_total", "sink" => name)
            .increment(batch.len() as u64);
        commit(&consumer, name, offsets).await?;
    }
}
