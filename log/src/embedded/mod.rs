//! The embedded backend: topics and partitions on local disk in fjall.
//!
//! Why fjall: an LSM store with atomic cross-keyspace write batches and a journal that is in the
//! OS cache when a commit returns, so an acknowledged record survives `kill -9`; and ordered
//! range scans, which is exactly a partition read. We keep one keyspace per topic (key =
//! partition ++ offset) and one `_meta` keyspace for topic configs, high watermarks and committed
//! group offsets. Every append and offset commit goes through one writer thread that merges
//! concurrent requests into one fjall batch (group commit), which is where the throughput comes
//! from; a request's records and offsets always land in the same batch, which is what makes the
//! consume-transform-produce commit atomic, as a Kafka transaction is.

mod codec;
mod maintenance;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{EmbeddedConfig, StartFrom, TopicConfig, validate_topic_name};
use crate::error::{LogError, Result};
use crate::partitioner::partition_for_key;
use crate::record::{ConsumedRecord, Delivery, Record, TopicPartitionOffset, now_ms};

pub use maintenance::MaintenanceReport;

/// The state of one topic that readers and the writer share.
struct TopicState {
    config: TopicConfig,
    ks: Keyspace,
    /// Next offset to assign per partition (the high watermark), published after each commit.
    next_offsets: Vec<AtomicI64>,
}

impl TopicState {
    fn partition_count(&self) -> i32 {
        self.next_offsets.len() as i32
    }
}

/// One append inside a write request.
struct Append {
    topic: Arc<TopicState>,
    partition: i32,
    record: Record,
}

/// A unit the writer commits atomically: appends plus group offsets.
struct WriteRequest {
    appends: Vec<Append>,
    offsets: Vec<(String, TopicPartitionOffset)>,
    reply: oneshot::Sender<Result<Vec<Delivery>>>,
}

/// Membership of an in-process consumer group.
#[derive(Default)]
struct GroupState {
    generation: u64,
    /// member id -> subscribed topics
    members: BTreeMap<u64, Vec<String>>,
}

struct Inner {
    dir: PathBuf,
    db: Database,
    meta: Keyspace,
    topics: RwLock<HashMap<String, Arc<TopicState>>>,
    writer_tx: Mutex<Option<mpsc::Sender<WriteRequest>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Bumped after every commit and every group change; consumers wait on it.
    changed: watch::Sender<u64>,
    groups: Mutex<HashMap<String, GroupState>>,
    next_member: AtomicU64,
    round_robin: AtomicU32,
    config: EmbeddedConfig,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer once it has committed what it holds.
        if let Ok(mut tx) = self.writer_tx.lock() {
            tx.take();
        }
        if let Ok(mut h) = self.writer_thread.lock()
            && let Some(h) = h.take()
        {
            let _ = h.join();
        }
        let _ = self.db.persist(PersistMode::SyncAll);
    }
}

/// A message log on local disk; clones share one store.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

fn lock_err<T>(_: T) -> LogError {
    LogError::Store("internal lock poisoned".into())
}

fn meta_hw_key(topic: &str, partition: i32) -> Vec<u8> {
    let mut k = format!("hw/{topic}/").into_bytes();
    k.extend_from_slice(&(partition as u32).to_be_bytes());
    k
}

fn meta_offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut k = format!("offset/{}/{group}\0{topic}\0", group.len()).into_bytes();
    k.extend_from_slice(&(partition as u32).to_be_bytes());
    k
}

fn meta_topic_key(topic: &str) -> Vec<u8> {
    format!("topic/{topic}").into_bytes()
}

fn keyspace_name(topic: &str) -> String {
    format!("t.{topic}")
}

fn read_i64(v: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(v.try_into().ok()?))
}

impl EmbeddedLog {
    /// Opens (or creates) the store in `dir` and recovers its topics.
    pub fn open(dir: &Path, config: EmbeddedConfig) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| LogError::Store(format!("cannot create {}: {e}", dir.display())))?;
        let db = Database::builder(dir).open()?;
        let meta = db.keyspace("_meta", KeyspaceCreateOptions::default)?;
        let mut topics = HashMap::new();
        for kv in meta.prefix("topic/") {
            let (_, v) = kv.into_inner()?;
            let config: TopicConfig = serde_json::from_slice(&v)
                .map_err(|e| LogError::Store(format!("bad topic metadata: {e}")))?;
            let ts = Self::load_topic(&db, &meta, config)?;
            topics.insert(ts.config.name.clone(), ts);
        }
        let (tx, rx) = mpsc::channel::<WriteRequest>(4096);
        let (changed, _) = watch::channel(0u64);
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            db,
            meta,
            topics: RwLock::new(topics),
            writer_tx: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(None),
            changed,
            groups: Mutex::new(HashMap::new()),
            next_member: AtomicU64::new(1),
            round_robin: AtomicU32::new(0),
            config,
        });
        let weak = Arc::downgrade(&inner);
        let writer = Writer {
            db: inner.db.clone(),
            meta: inner.meta.clone(),
            fsync: inner.config.fsync,
            max_batch: inner.config.max_batch_records.max(1),
            changed: inner.changed.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| LogError::Store(format!("cannot start writer thread: {e}")))?;
        *inner.writer_thread.lock().map_err(lock_err)? = Some(handle);
        if inner.config.maintenance_interval_secs > 0
            && tokio::runtime::Handle::try_current().is_ok()
        {
            maintenance::spawn(
                weak,
                Duration::from_secs(inner.config.maintenance_interval_secs),
            );
        }
        Ok(EmbeddedLog { inner })
    }

    fn load_topic(db: &Database, meta: &Keyspace, config: TopicConfig) -> Result<Arc<TopicState>> {
        let ks = db.keyspace(&keyspace_name(&config.name), KeyspaceCreateOptions::default)?;
        let mut next = Vec::with_capacity(config.partitions as usize);
        for p in 0..config.partitions as i32 {
            let hw = match meta.get(meta_hw_key(&config.name, p))? {
                Some(v) => read_i64(&v).unwrap_or(0),
                None => 0,
            };
            // The stored high watermark is written in the same batch as the records, but take
            // the larger of it and the last key, so offsets are never reused.
            let last = ks
                .range(codec::record_key(p, 0)..=codec::record_key(p, i64::MAX))
                .next_back()
                .map(|g| g.key())
                .transpose()?
                .and_then(|k| codec::parse_record_key(&k))
                .map(|(_, o)| o + 1)
                .unwrap_or(0);
            next.push(AtomicI64::new(hw.max(last)));
        }
        Ok(Arc::new(TopicState {
            config,
            ks,
            next_offsets: next,
        }))
    }

    /// Where the store lives on disk.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Creates missing topics; grows the partition count of existing ones when asked for more.
    pub fn ensure_topics(&self, topics: &[TopicConfig]) -> Result<()> {
        let mut map = self.inner.topics.write().map_err(lock_err)?;
        for want in topics {
            validate_topic_name(&want.name)?;
            if want.partitions == 0 {
                return Err(LogError::Config(format!(
                    "topic {} needs partitions",
                    want.name
                )));
            }
            let merged = match map.get(&want.name) {
                Some(have)
                    if have.config.partitions >= want.partitions
                        && have.config.compacted == want.compacted
                        && have.config.retention_ms == want.retention_ms =>
                {
                    continue;
                }
                Some(have) => TopicConfig {
                    partitions: have.config.partitions.max(want.partitions),
                    ..want.clone()
                },
                None => want.clone(),
            };
            let json = serde_json::to_vec(&merged)
                .map_err(|e| LogError::Store(format!("cannot encode topic metadata: {e}")))?;
            self.inner.meta.insert(meta_topic_key(&merged.name), json)?;
            let ts = Self::load_topic(&self.inner.db, &self.inner.meta, merged)?;
            map.insert(ts.config.name.clone(), ts);
        }
        Ok(())
    }

    /// The configuration of every topic.
    pub fn topics(&self) -> Result<Vec<TopicConfig>> {
        let map = self.inner.topics.read().map_err(lock_err)?;
        let mut v: Vec<_> = map.values().map(|t| t.config.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    fn topic(&self, name: &str) -> Result<Arc<TopicState>> {
        self.inner
            .topics
            .read()
            .map_err(lock_err)?
            .get(name)
            .cloned()
            .ok_or_else(|| LogError::UnknownTopic(name.to_string()))
    }

    /// Low (first retained) and high (next to be written) offsets of each partition.
    pub fn watermarks(&self, topic: &str) -> Result<Vec<(i32, i64, i64)>> {
        let t = self.topic(topic)?;
        let mut out = Vec::new();
        for p in 0..t.partition_count() {
            let high = t.next_offsets[p as usize].load(Ordering::Acquire);
            let low =
                t.ks.range(codec::record_key(p, 0)..=codec::record_key(p, i64::MAX))
                    .next()
                    .map(|g| g.key())
                    .transpose()?
                    .and_then(|k| codec::parse_record_key(&k))
                    .map(|(_, o)| o)
                    .unwrap_or(high);
            out.push((p, low, high));
        }
        Ok(out)
    }

    /// Records of one partition from `from` up to (not including) `to`, at most `max`, read
    /// directly without a consumer group; damaged records are skipped (and counted).
    pub fn read_range(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
        max: usize,
    ) -> Result<Vec<ConsumedRecord>> {
        let t = self.topic(topic)?;
        if partition < 0 || partition >= t.partition_count() {
            return Err(LogError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            });
        }
        let to = to.min(t.next_offsets[partition as usize].load(Ordering::Acquire));
        let mut out = Vec::new();
        if from.max(0) >= to {
            return Ok(out);
        }
        let range = codec::record_key(partition, from.max(0))..codec::record_key(partition, to);
        for kv in t.ks.range(range).take(max) {
            let (k, v) = kv.into_inner()?;
            let Some((_, offset)) = codec::parse_record_key(&k) else {
                continue;
            };
            match codec::decode(Bytes::from(v.to_vec())) {
                Ok(record) => out.push(ConsumedRecord {
                    topic: topic.to_string(),
                    partition,
                    offset,
                    record,
                }),
                Err(reason) => {
                    tracing::error!(topic, partition, offset, %reason, "skipping a damaged record");
                    metrics::counter!("automata_log_corrupt_records_total", "topic" => topic.to_string()).increment(1);
                }
            }
        }
        Ok(out)
    }

    /// The committed offset of a group on a partition, if any.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Result<Option<i64>> {
        Ok(self
            .inner
            .meta
            .get(meta_offset_key(group, topic, partition))?
            .and_then(|v| read_i64(&v)))
    }

    fn partition_of(&self, t: &TopicState, record: &Record) -> i32 {
        match &record.key {
            Some(k) => partition_for_key(k, t.config.partitions),
            None => {
                (self.inner.round_robin.fetch_add(1, Ordering::Relaxed) % t.config.partitions)
                    as i32
            }
        }
    }

    async fn submit(
        &self,
        appends: Vec<Append>,
        offsets: Vec<(String, TopicPartitionOffset)>,
    ) -> Result<Vec<Delivery>> {
        let tx = self
            .inner
            .writer_tx
            .lock()
            .map_err(lock_err)?
            .clone()
            .ok_or(LogError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(WriteRequest {
            appends,
            offsets,
            reply,
        })
        .await
        .map_err(|_| LogError::Closed)?;
        rx.await.map_err(|_| LogError::Closed)?
    }

    fn appends_for(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Append>> {
        let t = self.topic(topic)?;
        Ok(records
            .into_iter()
            .map(|record| Append {
                partition: self.partition_of(&t, &record),
                topic: t.clone(),
                record,
            })
            .collect())
    }

    /// Appends records to a topic; returns once they are in the store (survive a process kill).
    pub async fn send_batch(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Delivery>> {
        let appends = self.appends_for(topic, records)?;
        let bytes: usize = appends.iter().map(|a| a.record.size()).sum();
        let n = appends.len();
        let r = self.submit(appends, Vec::new()).await;
        crate::record_produce_metrics("embedded", topic, n, bytes, r.is_ok());
        r
    }

    /// Appends outputs and commits a group's input offsets in one atomic write.
    pub async fn commit_transaction(
        &self,
        group: &str,
        outputs: Vec<(String, Record)>,
        offsets: Vec<TopicPartitionOffset>,
    ) -> Result<()> {
        let mut appends = Vec::with_capacity(outputs.len());
        for (topic, record) in outputs {
            let t = self.topic(&topic)?;
            appends.push(Append {
                partition: self.partition_of(&t, &record),
                topic: t,
                record,
            });
        }
        for o in &offsets {
            let t = self.topic(&o.topic)?;
            if o.partition < 0 || o.partition >= t.partition_count() {
                return Err(LogError::UnknownPartition {
                    topic: o.topic.clone(),
                    partition: o.partition,
                });
            }
        }
        let offsets = offsets
            .into_iter()
            .map(|o| (group.to_string(), o))
            .collect();
        let r = self.submit(appends, offsets).await.map(|_| ());
        if r.is_ok() {
            metrics::counter!("automata_transaction_commits_total", "backend" => "embedded")
                .increment(1);
        } else {
            metrics::counter!("automata_transaction_aborts_total", "backend" => "embedded")
                .increment(1);
        }
        r
    }

    /// Opens a consumer in `group` on `topics`; members of one group share the partitions.
    pub fn consumer(
        &self,
        group: &str,
        topics: &[&str],
        start: StartFrom,
    ) -> Result<EmbeddedConsumer> {
        let mut states = Vec::new();
        for t in topics {
            states.push(self.topic(t)?);
        }
        let member = self.inner.next_member.fetch_add(1, Ordering::Relaxed);
        {
            let mut groups = self.inner.groups.lock().map_err(lock_err)?;
            let g = groups.entry(group.to_string()).or_default();
            g.members
                .insert(member, topics.iter().map(|t| t.to_string()).collect());
            g.generation += 1;
        }
        self.inner.changed.send_modify(|v| *v += 1);
        Ok(EmbeddedConsumer {
            log: self.clone(),
            group: group.to_string(),
            topics: states,
            member,
            generation: 0,
            assignment: Vec::new(),
            cursor: 0,
            start,
            changed: self.inner.changed.subscribe(),
        })
    }

    /// Runs retention and compaction now over every topic (normally a background task does).
    pub fn run_maintenance(&self) -> Result<MaintenanceReport> {
        maintenance::run(&self.inner)
    }

    /// Bytes the store takes on disk.
    pub fn disk_space(&self) -> u64 {
        self.inner.db.disk_space().unwrap_or(0)
    }
}

/// The single writer: merges queued requests into one atomic fjall batch.
struct Writer {
    db: Database,
    meta: Keyspace,
    fsync: bool,
    max_batch: usize,
    changed: watch::Sender<u64>,
}

impl Writer {
    fn run(self, mut rx: mpsc::Receiver<WriteRequest>) {
        while let Some(first) = rx.blocking_recv() {
            let mut n = first.appends.len() + first.offsets.len();
            let mut reqs = vec![first];
            while n < self.max_batch {
                match rx.try_recv() {
                    Ok(r) => {
                        n += r.appends.len() + r.offsets.len();
                        reqs.push(r);
                    }
                    Err(_) => break,
                }
            }
            self.commit(reqs);
        }
    }

    fn commit(&self, reqs: Vec<WriteRequest>) {
        let now = now_ms();
        let mut batch = self.db.batch();
        // Next offsets as this batch will leave them, keyed by topic name and partition.
        let mut next: HashMap<(*const TopicState, i32), (Arc<TopicState>, i64)> = HashMap::new();
        let mut deliveries: Vec<Vec<Delivery>> = Vec::with_capacity(reqs.len());
        for req in &reqs {
            let mut d = Vec::with_capacity(req.appends.len());
            for a in &req.appends {
                let slot = next
                    .entry((Arc::as_ptr(&a.topic), a.partition))
                    .or_insert_with(|| {
                        let o = a.topic.next_offsets[a.partition as usize].load(Ordering::Acquire);
                        (a.topic.clone(), o)
                    });
                let offset = slot.1;
                slot.1 += 1;
                let ts = a.record.timestamp_ms.unwrap_or(now);
                batch.insert(
                    &a.topic.ks,
                    codec::record_key(a.partition, offset).to_vec(),
                    codec::encode(&a.record, ts),
                );
                d.push(Delivery {
                    partition: a.partition,
                    offset,
                });
            }
            for (group, o) in &req.offsets {
                batch.insert(
                    &self.meta,
                    meta_offset_key(group, &o.topic, o.partition),
                    o.offset.to_be_bytes().to_vec(),
                );
            }
            deliveries.push(d);
        }
        for ((_, p), (t, o)) in &next {
            batch.insert(
                &self.meta,
                meta_hw_key(&t.config.name, *p),
                o.to_be_bytes().to_vec(),
            );
        }
        let result = batch.commit().and_then(|()| {
            if self.fsync {
                self.db.persist(PersistMode::SyncData)
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => {
                for ((_, p), (t, o)) in next {
                    t.next_offsets[p as usize].store(o, Ordering::Release);
                }
                self.changed.send_modify(|v| *v += 1);
                for (req, d) in reqs.into_iter().zip(deliveries) {
                    let _ = req.reply.send(Ok(d));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedded log commit failed");
                let msg = e.to_string();
                for req in reqs {
                    let _ = req.reply.send(Err(LogError::Store(msg.clone())));
                }
            }
        }
    }
}

/// A consumer-group member reading from the embedded store.
pub struct EmbeddedConsumer {
    log: EmbeddedLog,
    group: String,
    topics: Vec<Arc<TopicState>>,
    member: u64,
    generation: u64,
    /// (topic, partition, next offset to read)
    assignment: Vec<(Arc<TopicState>, i32, i64)>,
    cursor: usize,
    start: StartFrom,
    changed: watch::Receiver<u64>,
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        if let Ok(mut groups) = self.log.inner.groups.lock()
            && let Some(g) = groups.get_mut(&self.group)
        {
            g.members.remove(&self.member);
            g.generation += 1;
        }
        self.log.inner.changed.send_modify(|v| *v += 1);
    }
}

impl EmbeddedConsumer {
    /// The consumer group this member belongs to.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The partitions this member owns now.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.assignment
            .iter()
            .map(|(t, p, _)| (t.config.name.clone(), *p))
            .collect()
    }

    /// Recomputes this member's partitions when the group changed (a member joined or left).
    fn rebalance_if_needed(&mut self) -> Result<()> {
        let (generation, members) = {
            let groups = self.log.inner.groups.lock().map_err(lock_err)?;
            match groups.get(&self.group) {
                Some(g) => (g.generation, g.members.clone()),
                None => return Ok(()),
            }
        };
        if generation == self.generation {
            return Ok(());
        }
        let mut assignment = Vec::new();
        for t in &self.topics {
            let subscribed: Vec<u64> = members
                .iter()
                .filter(|(_, ts)| ts.iter().any(|n| *n == t.config.name))
                .map(|(m, _)| *m)
                .collect();
            let Some(me) = subscribed.iter().position(|m| *m == self.member) else {
                continue;
            };
            for p in 0..t.partition_count() {
                if p as usize % subscribed.len() != me {
                    continue;
                }
                // Keep our position on partitions we already owned; others start from the commit.
                let pos = match self
                    .assignment
                    .iter()
                    .find(|(ot, op, _)| Arc::ptr_eq(ot, t) && *op == p)
                {
                    Some((_, _, pos)) => *pos,
                    None => match self.log.committed(&self.group, &t.config.name, p)? {
                        Some(o) => o,
                        None => match self.start {
                            StartFrom::Earliest => 0,
                            StartFrom::Latest => t.next_offsets[p as usize].load(Ordering::Acquire),
                        },
                    },
                };
                assignment.push((t.clone(), p, pos));
            }
        }
        tracing::debug!(group = %self.group, member = self.member, partitions = assignment.len(), "embedded consumer rebalanced");
        self.assignment = assignment;
        self.generation = generation;
        Ok(())
    }

    /// Reads what is available now, up to `max` records, round-robin over owned partitions.
    fn read_available(&mut self, max: usize) -> Result<Vec<ConsumedRecord>> {
        let mut out = Vec::new();
        let n = self.assignment.len();
        for i in 0..n {
            if out.len() >= max {
                break;
            }
            let idx = (self.cursor + i) % n;
            let (t, p, pos) = &mut self.assignment[idx];
            let high = t.next_offsets[*p as usize].load(Ordering::Acquire);
            if *pos >= high {
                continue;
            }
            let want = max - out.len();
            let range = codec::record_key(*p, *pos)..codec::record_key(*p, high);
            for kv in t.ks.range(range).take(want) {
                let (k, v) = kv.into_inner()?;
                let Some((_, offset)) = codec::parse_record_key(&k) else {
                    continue;
                };
                *pos = offset + 1;
                let record = match codec::decode(Bytes::from(v.to_vec())) {
                    Ok(r) => r,
                    Err(reason) => {
                        // Damaged on disk: nothing can read it again, so say so and move on
                        // rather than stall the partition (and drop the records read before it).
                        let e = LogError::Corrupt {
                            topic: t.config.name.clone(),
                            partition: *p,
                            offset,
                            reason,
                        };
                        tracing::error!(error = %e, "skipping a damaged record");
                        metrics::counter!("automata_log_corrupt_records_total", "topic" => t.config.name.clone()).increment(1);
                        continue;
                    }
                };
                out.push(ConsumedRecord {
                    topic: t.config.name.clone(),
                    partition: *p,
                    offset,
                    record,
                });
            }
            // Everything below the high watermark was read (the rest was compacted away).
            if out.len() < max {
                *pos = (*pos).max(high);
            }
        }
        if n > 0 {
            self.cursor = (self.cursor + 1) % n;
        }
        for (t, p, pos) in &self.assignment {
            let high = t.next_offsets[*p as usize].load(Ordering::Acquire);
            metrics::gauge!("automata_consumer_lag_records", "group" => self.group.clone(), "topic" => t.config.name.clone(), "partition" => p.to_string())
                .set((high - pos).max(0) as f64);
        }
        if !out.is_empty() {
            metrics::counter!("automata_records_consumed_total", "topic" => out[0].topic.clone(), "backend" => "embedded").increment(out.len() as u64);
        }
        Ok(out)
    }

    /// Waits up to `wait` for records and returns up to `max` of them (empty on timeout).
    pub async fn recv_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<ConsumedRecord>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            self.changed.borrow_and_update();
            self.rebalance_if_needed()?;
            let got = self.read_available(max.max(1))?;
            if !got.is_empty() {
                return Ok(got);
            }
            match tokio::time::timeout_at(deadline, self.changed.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(LogError::Closed),
                Err(_) => return Ok(Vec::new()),
            }
        }
    }

    /// Commits offsets (each the next offset to read) for this member's group.
    pub async fn commit(&self, offsets: &[TopicPartitionOffset]) -> Result<()> {
        let offsets = offsets
            .iter()
            .map(|o| (self.group.clone(), o.clone()))
            .collect();
        self.log.submit(Vec::new(), offsets).await.map(|_| ())
    }

    /// Moves this member's read position on a partition it owns (e.g. to replay).
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<()> {
        self.rebalance_if_needed()?;
        for (t, p, pos) in &mut self.assignment {
            if t.config.name == topic && *p == partition {
                *pos = offset;
                return Ok(());
            }
        }
        Err(LogError::UnknownPartition {
            topic: topic.to_string(),
            partition,
        })
    }

    /// Lag of each owned partition: high watermark minus position.
    pub fn lag(&self) -> Vec<(String, i32, i64)> {
        self.assignment
            .iter()
            .map(|(t, p, pos)| {
                let high = t.next_offsets[*p as usize].load(Ordering::Acquire);
                (t.config.name.clone(), *p, (high - pos).max(0))
            })
            .collect()
    }
}

/// Lets maintenance reach the store without keeping it alive.
type WeakInner = Weak<Inner>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_damaged_record_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).expect("open");
        log.ensure_topics(&[TopicConfig::new("t", 1)])
            .expect("topic");
        let recs = (0..5).map(|i| Record::new("k", format!("{i}"))).collect();
        log.send_batch("t", recs).await.expect("send");
        let t = log.topic("t").expect("topic");
        t.ks.insert(codec::record_key(0, 2).to_vec(), b"\x01garbage".to_vec())
            .expect("damage");
        let mut c = log
            .consumer("g", &["t"], StartFrom::Earliest)
            .expect("consumer");
        let got = c
            .recv_batch(10, Duration::from_secs(1))
            .await
            .expect("recv");
        let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![0, 1, 3, 4]);
    }
}
