//! The consume-transform-produce loop every processor runs in, exactly once.
//!
//! Each batch is read, handed record by record to the processor, and then its outputs and the
//! input offsets (last processed + 1) are committed together: one Kafka transaction, or one
//! atomic write on the embedded log. A record the processor rejects goes to the dead-letter topic
//! inside the same commit, so it is neither lost nor retried forever. A batch is always committed
//! before the next poll, so a partition revocation never finds processed-but-uncommitted work.
//!
//! A processor's in-memory state is rebuilt at start (and after a failed commit or a change of
//! partitions) from its changelog: the compacted topic it writes its state to. That is how the
//! state stays consistent with the committed offsets, as Kafka Streams does it.

use std::time::Duration;

use automata_log::{
    ConsumedRecord, LogConsumer, LogError, MessageLog, Record, StartFrom, dead_letter,
    offsets_to_commit,
};
use tokio_util::sync::CancellationToken;

/// Why the processor refused a record; the record goes to the dead-letter topic with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub String);

impl<E: std::fmt::Display> From<E> for Rejection {
    fn from(e: E) -> Self {
        Rejection(e.to_string())
    }
}

/// A stateful stream processor.
pub trait Processor: Send + 'static {
    /// Its name: the consumer group and the prefix of its transactional id.
    fn name(&self) -> &'static str;
    /// Topics it consumes.
    fn inputs(&self) -> Vec<&'static str>;
    /// The compacted topic its state is rebuilt from, if it keeps state.
    fn changelog(&self) -> Option<&'static str> {
        None
    }
    /// Applies one changelog record while restoring state.
    fn restore(&mut self, _record: &ConsumedRecord) {}
    /// Handles one input record, pushing `(topic, record)` outputs.
    fn process(
        &mut self,
        record: &ConsumedRecord,
        out: &mut Vec<(String, Record)>,
    ) -> Result<(), Rejection>;
    /// Called after each batch, before the commit: emit what was coalesced over the batch. Also
    /// called when a poll brought no input, so what [`Processor::global`] changed is emitted.
    fn end_batch(&mut self, _out: &mut Vec<(String, Record)>) {}
    /// Compacted topics every instance reads whole and follows live, not split by the group:
    /// reference data each member needs for its own share of the inputs (a catalog), as a Kafka
    /// Streams global table.
    fn globals(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// Applies one record of a global topic, at start (catching up) and live.
    fn global(&mut self, _record: &ConsumedRecord) {}
    /// The input partitions this instance owns, told before each batch: what it must answer
    /// for when a global record changes everything.
    fn assigned(&mut self, _partitions: &[(String, i32)]) {}
}

/// Why a processor stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// The log failed in a way a restart will not fix (e.g. fenced by a newer instance).
    #[error("processor {name}: {source}")]
    Log {
        /// Processor name.
        name: &'static str,
        /// The log error.
        #[source]
        source: LogError,
    },
}

/// Tuning of the loop.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Most records per transaction.
    pub batch_max: usize,
    /// How long to wait for a batch to fill.
    pub batch_wait: Duration,
    /// Unique and stable per process: with the name, the transactional id (fencing zombies).
    pub instance_id: String,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            batch_max: 2_000,
            batch_wait: Duration::from_millis(200),
            instance_id: "0".into(),
        }
    }
}

/// Reads a compacted changelog from the beginning to its current end.
async fn restore<P: Processor>(log: &MessageLog, p: &mut P) -> Result<u64, LogError> {
    let Some(topic) = p.changelog() else {
        return Ok(0);
    };
    let group = format!("{}-restore-{}", p.name(), std::process::id());
    let (_, n) = catch_up(log, &group, &[topic], |r| p.restore(r)).await?;
    Ok(n)
}

/// Reads `topics` from the beginning to their current end with a consumer of its own group,
/// applying each record; returns the consumer (positioned after them) and the count.
async fn catch_up(
    log: &MessageLog,
    group: &str,
    topics: &[&str],
    mut apply: impl FnMut(&ConsumedRecord),
) -> Result<(LogConsumer, u64), LogError> {
    let mut remaining: std::collections::HashMap<(String, i32), i64> =
        std::collections::HashMap::new();
    for topic in topics {
        for m in log.watermarks(topic).await? {
            if m.high > m.low {
                remaining.insert((topic.to_string(), m.partition), m.high);
            }
        }
    }
    let mut c = log.consumer(group, topics, StartFrom::Earliest)?;
    let mut n = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while !remaining.is_empty() {
        if tokio::time::Instant::now() > deadline {
            return Err(LogError::Timeout(
                Duration::from_secs(300),
                format!("restoring {}", topics.join(", ")),
            ));
        }
        let batch = c.recv_batch(10_000, Duration::from_secs(2)).await?;
        if batch.is_empty() {
            // Quiet: the tail of a partition was a tombstone that compaction removed.
            break;
        }
        for r in batch {
            apply(&r);
            n += 1;
            let key = (r.topic.clone(), r.partition);
            if remaining
                .get(&key)
                .is_some_and(|high| r.offset + 1 >= *high)
            {
                remaining.remove(&key);
            }
        }
    }
    Ok((c, n))
}

/// Runs a processor until `shutdown`, restarting its loop (with state restore) after failures.
pub async fn run<P, F>(
    log: MessageLog,
    factory: F,
    cfg: RunnerConfig,
    shutdown: CancellationToken,
) -> Result<(), ProcessorError>
where
    P: Processor,
    F: Fn() -> P,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut p = factory();
        let name = p.name();
        match run_once(&log, &mut p, &cfg, &shutdown).await {
            Ok(()) => return Ok(()),
            Err(LogError::Fenced(e)) => {
                return Err(ProcessorError::Log {
                    name,
                    source: LogError::Fenced(e),
                });
            }
            Err(e) => {
                tracing::warn!(processor = name, error = %e, retry_in = ?backoff, "processor loop failed; restarting from committed offsets");
                metrics::counter!("automata_processor_restarts_total", "processor" => name)
                    .increment(1);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn run_once<P: Processor>(
    log: &MessageLog,
    p: &mut P,
    cfg: &RunnerConfig,
    shutdown: &CancellationToken,
) -> Result<(), LogError> {
    let name = p.name();
    let restored = restore(log, p).await?;
    if restored > 0 {
        tracing::info!(
            processor = name,
            records = restored,
            "state restored from changelog"
        );
    }
    let global_topics = p.globals();
    let mut globals = if global_topics.is_empty() {
        None
    } else {
        // Its own group per process and start: every instance reads the whole topics.
        let group = format!("{name}-global-{}-{}", std::process::id(), cfg.instance_id);
        let (c, n) = catch_up(log, &group, &global_topics, |r| p.global(r)).await?;
        tracing::info!(processor = name, records = n, "global tables read");
        Some(c)
    };
    let inputs = p.inputs();
    let mut consumer = log.consumer(name, &inputs, StartFrom::Earliest)?;
    let tx = log
        .transactional_producer(&format!("{name}-{}", cfg.instance_id))
        .await?;
    let mut assignment: Option<Vec<(String, i32)>> = None;
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            b = consumer.recv_batch(cfg.batch_max, cfg.batch_wait) => b?,
        };
        if let Some(g) = globals.as_mut() {
            for r in g.recv_batch(10_000, Duration::ZERO).await? {
                p.global(&r);
            }
        }
        let now = consumer.assignment();
        match &assignment {
            Some(prev) if !prev.is_empty() && *prev != now && p.changelog().is_some() => {
                // New partitions may carry state another instance wrote: rebuild it first. (The
                // first assignment, after joining with none, is what the restore already read.)
                return Err(LogError::Kafka("partition assignment changed".into()));
            }
            Some(prev) if *prev == now => {}
            _ => {
                p.assigned(&now);
                assignment = Some(now);
            }
        }
        let mut outputs = Vec::with_capacity(batch.len());
        let mut rejected = 0u64;
        for r in &batch {
            if let Err(Rejection(reason)) = p.process(r, &mut outputs) {
                tracing::warn!(processor = name, topic = %r.topic, partition = r.partition, offset = r.offset, %reason, "record dead-lettered");
                outputs.push(dead_letter(r, name, &reason));
                rejected += 1;
            }
        }
        p.end_batch(&mut outputs);
        if batch.is_empty() && outputs.is_empty() {
            continue;
        }
        let n_out = outputs.len();
        tx.commit(&consumer, outputs, offsets_to_commit(&batch))
            .await?;
        metrics::counter!("automata_processor_records_total", "processor" => name)
            .increment(batch.len() as u64);
        metrics::counter!("automata_processor_outputs_total", "processor" => name)
            .increment(n_out as u64);
        if rejected > 0 {
            metrics::counter!("automata_processor_rejected_total", "processor" => name)
                .increment(rejected);
        }
    }
}
