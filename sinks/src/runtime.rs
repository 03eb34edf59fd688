//! The loop every sink runs in: read a batch, hand it over, commit what the sink says is durable.
//!
//! A sink returns, after each batch and when idle, the offsets it holds durably. Only those are
//! committed, so the group's offsets never run ahead of the target: after a crash the sink is
//! handed again whatever it had not made durable. Sinks that buffer (the Delta history does, to
//! write healthy files) commit later; sinks whose target carries the offsets itself skip what
//! they already hold, which makes the whole exactly once.

use std::collections::{BTreeSet, HashMap};
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
    /// Partitions just assigned to this member: returns where to resume reading them (the next
    /// offset), for targets that carry their own offsets; the others leave the group's.
    fn assigned(
        &mut self,
        _partitions: &[(String, i32)],
    ) -> impl std::future::Future<Output = Result<Vec<TopicPartitionOffset>, SinkError>> + Send
    {
        async { Ok(Vec::new()) }
    }
    /// Partitions taken from this member: drop whatever is buffered for them.
    fn revoked(
        &mut self,
        _partitions: &[(String, i32)],
    ) -> impl std::future::Future<Output = Result<(), SinkError>> + Send {
        async { Ok(()) }
    }
    /// Called once at shutdown: write out everything; returns durable offsets.
    fn close(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Vec<TopicPartitionOffset>, SinkError>> + Send
    {
        async { Ok(Vec::new()) }
    }
}

/// The consumer with what the runtime knows about it: the partitions it owns, and the offsets
/// it last committed (so that unchanged offsets are not sent to the group coordinator again).
struct Member {
    consumer: automata_log::LogConsumer,
    name: &'static str,
    owned: BTreeSet<(String, i32)>,
    committed: HashMap<(String, i32), i64>,
}

impl Member {
    async fn commit(&mut self, offsets: Vec<TopicPartitionOffset>) -> Result<(), SinkError> {
        let changed: Vec<TopicPartitionOffset> = offsets
            .into_iter()
            .filter(|o| {
                let tp = (o.topic.clone(), o.partition);
                // A partition another member owns now is theirs to commit.
                (self.owned.is_empty() || self.owned.contains(&tp))
                    && self.committed.get(&tp) != Some(&o.offset)
            })
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.consumer.commit(&changed).await {
            // Typically a rebalance in flight (IllegalGeneration, RebalanceInProgress). The
            // target holds what it wrote, so a lost group commit only means records are read
            // again and skipped: retried with the next batch, never fatal.
            metrics::counter!("automata_sink_commit_errors_total", "sink" => self.name)
                .increment(1);
            tracing::warn!(sink = self.name, error = %e, "offset commit failed; will retry");
            return Ok(());
        }
        for o in changed {
            self.committed.insert((o.topic, o.partition), o.offset);
        }
        metrics::counter!("automata_sink_commits_total", "sink" => self.name).increment(1);
        Ok(())
    }

    /// Follows a rebalance: tells the sink what it lost and gained, and resumes gained
    /// partitions where the sink's target says (a failed seek only costs re-reading, since
    /// sinks skip what they already hold).
    /// Returns the partitions lost.
    async fn follow_assignment<S: Sink>(
        &mut self,
        sink: &mut S,
    ) -> Result<BTreeSet<(String, i32)>, SinkError> {
        let now: BTreeSet<(String, i32)> = self.consumer.assignment().into_iter().collect();
        if now == self.owned {
            return Ok(BTreeSet::new());
        }
        let lost: Vec<(String, i32)> = self.owned.difference(&now).cloned().collect();
        let gained: Vec<(String, i32)> = now.difference(&self.owned).cloned().collect();
        if !lost.is_empty() {
            sink.revoked(&lost).await?;
            for tp in &lost {
                self.committed.remove(tp);
            }
        }
        self.owned = now;
        if !gained.is_empty() {
            for o in sink.assigned(&gained).await? {
                if let Err(e) = self.consumer.seek(&o.topic, o.partition, o.offset) {
                    tracing::warn!(sink = self.name, topic = %o.topic, partition = o.partition, error = %e, "cannot resume from the target's offset; records it holds are skipped instead");
                }
            }
        }
        tracing::debug!(
            sink = self.name,
            lost = lost.len(),
            gained = gained.len(),
            "assignment followed"
        );
        Ok(lost.into_iter().collect())
    }
}

/// Runs a sink until `shutdown`, retrying failed batches with backoff.
pub async fn run<S: Sink>(
    log: MessageLog,
    mut sink: S,
    shutdown: CancellationToken,
) -> Result<(), SinkError> {
    let name = sink.name();
    let consumer = log.consumer(name, &sink.inputs(), sink.start_from())?;
    let mut member = Member {
        consumer,
        name,
        owned: BTreeSet::new(),
        committed: HashMap::new(),
    };
    loop {
        let mut batch = tokio::select! {
            _ = shutdown.cancelled() => {
                let offsets = sink.close().await?;
                return member.commit(offsets).await;
            }
            b = member.consumer.recv_batch(5_000, Duration::from_millis(500)) => b?,
        };
        let lost = member.follow_assignment(&mut sink).await?;
        // Records of a partition lost in this very poll belong to its new owner now.
        if !lost.is_empty() {
            batch.retain(|r| !lost.contains(&(r.topic.clone(), r.partition)));
        }
        if batch.is_empty() {
            // A failed write-out is retried on the next idle tick or batch; the records stay
            // uncommitted meanwhile, so nothing is lost and the role keeps running.
            match sink.idle().await {
                Ok(offsets) => member.commit(offsets).await?,
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
        member.commit(offsets).await?;
    }
}
