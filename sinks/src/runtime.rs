//! The loop every sink runs in: read a batch, write it out, then commit the offsets.
//!
//! Offsets are committed only after the sink says the batch is written, so a crash replays the
//! batch (at least once). Sinks whose target can carry the offsets in its own commit (the Delta
//! Lake history does, in `txn` actions) turn that into exactly once by skipping what they
//! already hold.

use std::time::Duration;

use automata_log::{ConsumedRecord, LogError, MessageLog, StartFrom, offsets_to_commit};
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
    /// Writes a batch durably (or drops records it does not want); errors retry the batch.
    fn write(
        &mut self,
        batch: &[ConsumedRecord],
    ) -> impl std::future::Future<Output = Result<(), SinkError>> + Send;
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
            _ = shutdown.cancelled() => return Ok(()),
            b = consumer.recv_batch(5_000, Duration::from_millis(250)) => b?,
        };
        if batch.is_empty() {
            continue;
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            match sink.write(&batch).await {
                Ok(()) => break,
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
        }
        consumer.commit(&offsets_to_commit(&batch)).await?;
        metrics::counter!("automata_sink_records_total", "sink" => name)
            .increment(batch.len() as u64);
    }
}
