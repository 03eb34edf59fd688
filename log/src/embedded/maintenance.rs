//! Retention and compaction of the embedded store, run in the background.
//!
//! Retention deletes records older than the topic's `retention_ms` from the head of each
//! partition (like Kafka deleting whole old segments, it stops at the first newer record).
//! Compaction keeps only the latest record per key below the high watermark seen at the start of
//! the pass, and drops tombstones once they are older than [`TOMBSTONE_RETENTION_MS`], so that
//! a reader starting from the beginning still sees every deletion for a day, as on Kafka
//! (`delete.retention.ms`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::{Inner, TopicState, WeakInner, codec, lock_err};
use crate::error::Result;
use crate::record::now_ms;

/// How long a tombstone stays readable on a compacted topic (Kafka's default `delete.retention.ms`).
pub const TOMBSTONE_RETENTION_MS: i64 = 24 * 3600 * 1000;

/// What one maintenance pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Records removed because they were past retention.
    pub expired: u64,
    /// Records removed because a newer record has the same key.
    pub compacted: u64,
}

pub(super) fn spawn(inner: WeakInner, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(strong) = inner.upgrade() else {
                return;
            };
            let r = tokio::task::spawn_blocking(move || run(&strong)).await;
            match r {
                Ok(Ok(rep)) if rep != MaintenanceReport::default() => {
                    tracing::info!(
                        expired = rep.expired,
                        compacted = rep.compacted,
                        "log maintenance"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "log maintenance failed"),
                Err(e) => tracing::warn!(error = %e, "log maintenance task failed"),
            }
        }
    });
}

pub(super) fn run(inner: &Inner) -> Result<MaintenanceReport> {
    let topics: Vec<Arc<TopicState>> = inner
        .topics
        .read()
        .map_err(lock_err)?
        .values()
        .cloned()
        .collect();
    let mut rep = MaintenanceReport::default();
    let now = now_ms();
    for t in topics {
        for p in 0..t.partition_count() {
            if let Some(ret) = t.config.retention_ms {
                rep.expired += expire(inner, &t, p, now - ret)?;
            }
            if t.config.compacted {
                rep.compacted += compact(inner, &t, p, now)?;
            }
        }
    }
    Ok(rep)
}

fn timestamp_of(raw: &[u8]) -> Option<i64> {
    // Frame: version byte, then the big-endian timestamp.
    raw.get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_be_bytes)
}

fn expire(inner: &Inner, t: &TopicState, p: i32, cutoff: i64) -> Result<u64> {
    let mut batch = inner.db.batch();
    let mut n = 0u64;
    for kv in
        t.ks.range(codec::record_key(p, 0)..=codec::record_key(p, i64::MAX))
    {
        let (k, v) = kv.into_inner()?;
        match timestamp_of(&v) {
            Some(ts) if ts < cutoff => {
                batch.remove(&t.ks, k);
                n += 1;
            }
            _ => break,
        }
    }
    if n > 0 {
        batch.commit()?;
    }
    Ok(n)
}

/// A stored entry as (store key, offset, record); `None` for one that cannot be read (left alone).
fn readable(kv: fjall::Guard) -> Result<Option<(fjall::UserKey, i64, crate::record::Record)>> {
    let (k, v) = kv.into_inner()?;
    Ok(
        match (
            codec::parse_record_key(&k),
            codec::decode(Bytes::from(v.to_vec())),
        ) {
            (Some((_, off)), Ok(rec)) => Some((k, off, rec)),
            _ => None,
        },
    )
}

fn compact(inner: &Inner, t: &TopicState, p: i32, now: i64) -> Result<u64> {
    let high = t.next_offsets[p as usize].load(Ordering::Acquire);
    let range = codec::record_key(p, 0)..codec::record_key(p, high);
    // First pass: the latest offset of every key.
    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    for kv in t.ks.range(range.clone()) {
        let Some((_, off, rec)) = readable(kv)? else {
            continue;
        };
        if let Some(key) = rec.key {
            latest.insert(key, off);
        }
    }
    // Second pass: delete superseded records and old tombstones.
    let mut batch = inner.db.batch();
    let mut n = 0u64;
    for kv in t.ks.range(range) {
        let Some((k, off, rec)) = readable(kv)? else {
            continue;
        };
        let Some(key) = rec.key else { continue };
        let newest = latest.get(&key).copied().unwrap_or(off);
        let old_tombstone =
            rec.value.is_none() && rec.timestamp_ms.unwrap_or(now) < now - TOMBSTONE_RETENTION_MS;
        if off < newest || old_tombstone {
            batch.remove(&t.ks, k);
            n += 1;
        }
    }
    if n > 0 {
        batch.commit()?;
    }
    Ok(n)
}
