//! The Kafka backend, through rdkafka (librdkafka).
//!
//! Producer: idempotent, `acks=all`, Java-compatible murmur2 partitioning. Back-pressure comes
//! from a semaphore of in-flight deliveries, released when each delivery future resolves, so the
//! librdkafka queue never fills and we never spin on `QueueFull`. While the cluster is away,
//! librdkafka keeps the queued records and retries them until `delivery_timeout_ms`: that is the
//! bounded buffer that rides out a broker restart; a record is acknowledged only once the broker
//! has it. Consumers commit manually and read with `isolation.level=read_committed`, so they never
//! see records of aborted transactions. Consume-transform-produce processors use a transactional
//! producer and send the consumer's offsets (last processed + 1) into the transaction.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{Header as KHeader, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::Semaphore;

use crate::config::{KafkaConfig, StartFrom, TopicConfig, validate_topic_name};
use crate::error::{LogError, Result};
use crate::record::{ConsumedRecord, Delivery, Header, Record, TopicPartitionOffset};

const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
const TX_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether an error is the cluster settling (leaders being elected), worth a retry.
fn is_transient(e: &rdkafka::error::KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::CoordinatorLoadInProgress
        )
    )
}

/// A connection to a Kafka cluster; clones share one producer.
#[derive(Clone)]
pub struct KafkaLog {
    config: Arc<KafkaConfig>,
    producer: FutureProducer,
    in_flight: Arc<Semaphore>,
}

fn base_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    c.set("client.id", "metal-automata");
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c
}

fn producer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = base_config(cfg);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("batch.size", "262144")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", cfg.delivery_timeout_ms.to_string())
        .set(
            "queue.buffering.max.messages",
            (cfg.max_in_flight + 1024).to_string(),
        );
    c
}

fn kerr(e: rdkafka::error::KafkaError) -> LogError {
    e.into()
}

fn to_headers(headers: &[Header]) -> Option<OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut h = OwnedHeaders::new_with_capacity(headers.len());
    for x in headers {
        h = h.insert(KHeader {
            key: &x.name,
            value: Some(&x.value[..]),
        });
    }
    Some(h)
}

fn to_record<'a>(topic: &'a str, r: &'a Record) -> FutureRecord<'a, [u8], [u8]> {
    let mut fr: FutureRecord<'a, [u8], [u8]> = FutureRecord::to(topic);
    if let Some(k) = &r.key {
        fr = fr.key(&k[..]);
    }
    if let Some(v) = &r.value {
        fr = fr.payload(&v[..]);
    }
    if let Some(ts) = r.timestamp_ms {
        fr = fr.timestamp(ts);
    }
    if let Some(h) = to_headers(&r.headers) {
        fr = fr.headers(h);
    }
    fr
}

impl KafkaLog {
    /// Connects to the cluster (lazily: librdkafka connects on first use).
    pub fn connect(cfg: KafkaConfig) -> Result<Self> {
        if cfg.brokers.trim().is_empty() {
            return Err(LogError::Config("kafka.brokers is empty".into()));
        }
        let producer: FutureProducer = producer_config(&cfg).create().map_err(kerr)?;
        let permits = cfg.max_in_flight.max(1);
        Ok(KafkaLog {
            config: Arc::new(cfg),
            producer,
            in_flight: Arc::new(Semaphore::new(permits)),
        })
    }

    /// The bootstrap servers, for status output.
    pub fn brokers(&self) -> &str {
        &self.config.brokers
    }

    /// Creates missing topics with the right cleanup policy; adds partitions when asked for more.
    pub async fn ensure_topics(&self, topics: &[TopicConfig]) -> Result<()> {
        for t in topics {
            validate_topic_name(&t.name)?;
        }
        let admin: AdminClient<DefaultClientContext> =
            base_config(&self.config).create().map_err(kerr)?;
        let retention: Vec<String> = topics
            .iter()
            .map(|t| t.retention_ms.unwrap_or(-1).to_string())
            .collect();
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .zip(&retention)
            .map(|(t, ret)| {
                NewTopic::new(
                    &t.name,
                    t.partitions as i32,
                    TopicReplication::Fixed(self.config.replication_factor),
                )
                .set(
                    "cleanup.policy",
                    if t.compacted { "compact" } else { "delete" },
                )
                .set("retention.ms", ret)
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        let results = admin.create_topics(&new, &opts).await.map_err(kerr)?;
        let mut grow = Vec::new();
        let mut created = Vec::new();
        for (res, t) in results.into_iter().zip(topics) {
            match res {
                Ok(_) => {
                    tracing::info!(topic = %t.name, partitions = t.partitions, compacted = t.compacted, "created kafka topic");
                    created.push(t.name.clone());
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => grow.push(t),
                Err((name, code)) => {
                    return Err(LogError::Kafka(format!("create topic {name}: {code}")));
                }
            }
        }
        for t in grow {
            let have = self.partition_count(&t.name).await?;
            if (have as u32) < t.partitions {
                let np = NewPartitions::new(&t.name, t.partitions as usize);
                admin.create_partitions([&np], &opts).await.map_err(kerr)?;
                created.push(t.name.clone());
            }
        }
        self.wait_for_leaders(created).await
    }

    /// Waits until every partition of `topics` has a leader: a topic just created answers
    /// `NotLeaderForPartition` to reads and offset queries until its leaders are elected.
    async fn wait_for_leaders(&self, topics: Vec<String>) -> Result<()> {
        if topics.is_empty() {
            return Ok(());
        }
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + ADMIN_TIMEOUT;
            loop {
                let md = p
                    .client()
                    .fetch_metadata(None, ADMIN_TIMEOUT)
                    .map_err(kerr)?;
                let waiting: Vec<&String> = topics
                    .iter()
                    .filter(|name| {
                        !md.topics().iter().any(|t| {
                            t.name() == name.as_str()
                                && t.error().is_none()
                                && !t.partitions().is_empty()
                                && t.partitions()
                                    .iter()
                                    .all(|p| p.leader() >= 0 && p.error().is_none())
                        })
                    })
                    .collect();
                if waiting.is_empty() {
                    return Ok(());
                }
                if std::time::Instant::now() >= deadline {
                    return Err(LogError::Kafka(format!(
                        "topics without partition leaders after {} s: {waiting:?}",
                        ADMIN_TIMEOUT.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .await
        .map_err(|e| LogError::Kafka(e.to_string()))?
    }

    async fn partition_count(&self, topic: &str) -> Result<i32> {
        let p = self.producer.clone();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || {
            let md = p
                .client()
                .fetch_metadata(Some(&topic), ADMIN_TIMEOUT)
                .map_err(kerr)?;
            md.topics()
                .iter()
                .find(|t| t.name() == topic)
                .map(|t| t.partitions().len() as i32)
                .ok_or(LogError::UnknownTopic(topic))
        })
        .await
        .map_err(|e| LogError::Kafka(e.to_string()))?
    }

    /// Low and high watermarks of each partition of a topic.
    pub async fn watermarks(&self, topic: &str) -> Result<Vec<(i32, i64, i64)>> {
        let n = self.partition_count(topic).await?;
        let p = self.producer.clone();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || {
            (0..n)
                .map(|i| {
                    // Leadership can still be settling right after a topic is created or a
                    // broker restarts: retry what the broker says is transient.
                    let deadline = std::time::Instant::now() + ADMIN_TIMEOUT;
                    loop {
                        match p.client().fetch_watermarks(&topic, i, ADMIN_TIMEOUT) {
                            Ok((lo, hi)) => return Ok((i, lo, hi)),
                            Err(e)
                                if is_transient(&e) && std::time::Instant::now() < deadline =>
                            {
                                tracing::debug!(topic, partition = i, error = %e, "watermarks not ready; retrying");
                                std::thread::sleep(Duration::from_millis(200));
                            }
                            Err(e) => return Err(kerr(e)),
                        }
                    }
                })
                .collect()
        })
        .await
        .map_err(|e| LogError::Kafka(e.to_string()))?
    }

    /// The committed offset of a group on a partition, if any.
    pub async fn committed(&self, group: &str, topic: &str, partition: i32) -> Result<Option<i64>> {
        let mut c = base_config(&self.config);
        c.set("group.id", format!("{}{group}", self.config.group_prefix));
        let consumer: BaseConsumer = c.create().map_err(kerr)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        tokio::task::spawn_blocking(move || {
            let r = consumer
                .committed_offsets(tpl, ADMIN_TIMEOUT)
                .map_err(kerr)?;
            Ok(r.elements().first().and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            }))
        })
        .await
        .map_err(|e| LogError::Kafka(e.to_string()))?
    }

    /// Sends one record; resolves once the cluster acknowledged it (acks=all).
    pub async fn send(&self, topic: &str, record: &Record) -> Result<Delivery> {
        self.send_batch(topic, std::slice::from_ref(record))
            .await?
            .pop()
            .ok_or(LogError::Closed)
    }

    async fn enqueue(
        &self,
        topic: &str,
        record: &Record,
    ) -> Result<rdkafka::producer::DeliveryFuture> {
        loop {
            match self.producer.send_result(to_record(topic, record)) {
                Ok(f) => return Ok(f),
                // Only reachable when another client shares the queue: wait for deliveries.
                Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(kerr(e)),
            }
        }
    }

    /// Sends many records, pipelined; resolves when all are acknowledged.
    ///
    /// Records are enqueued one after another in this task, so records with the same key keep
    /// their order (the idempotent producer keeps it on the wire); only the waiting is concurrent.
    pub async fn send_batch(&self, topic: &str, records: &[Record]) -> Result<Vec<Delivery>> {
        let mut pending = Vec::with_capacity(records.len());
        let mut bytes = 0usize;
        for r in records {
            let permit = self
                .in_flight
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| LogError::Closed)?;
            bytes += r.size();
            let fut = self.enqueue(topic, r).await?;
            pending.push(async move {
                let d = await_delivery(topic, fut).await;
                drop(permit);
                d
            });
        }
        let r = futures::future::try_join_all(pending).await;
        crate::record_produce_metrics("kafka", topic, records.len(), bytes, r.is_ok());
        r
    }

    /// Waits until everything queued is delivered.
    pub async fn flush(&self, timeout: Duration) -> Result<()> {
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || p.flush(timeout).map_err(kerr))
            .await
            .map_err(|e| LogError::Kafka(e.to_string()))?
    }

    /// Opens a consumer-group member on `topics` with manual commits and `read_committed`.
    pub fn consumer(
        &self,
        group: &str,
        topics: &[&str],
        start: StartFrom,
    ) -> Result<KafkaConsumer> {
        let group = format!("{}{group}", self.config.group_prefix);
        let mut c = base_config(&self.config);
        c.set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set(
                "auto.offset.reset",
                match start {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            )
            .set("statistics.interval.ms", "5000")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", "10000")
            .set("fetch.wait.max.ms", "50");
        let ctx = LogContext {
            group: group.to_string(),
        };
        let consumer: StreamConsumer<LogContext> = c.create_with_context(ctx).map_err(kerr)?;
        consumer.subscribe(topics).map_err(kerr)?;
        Ok(KafkaConsumer {
            consumer: Arc::new(consumer),
            group: group.to_string(),
        })
    }

    /// Reads offset ranges `[from, to)` of several partitions with one group-less consumer
    /// (committed records only), for reading a tail without joining a group. Stops at each
    /// range's end, at the partition's end, after `max` records per range, or at `wait`; with
    /// the records, how many ranges `wait` cut short.
    pub async fn read_ranges(
        &self,
        ranges: &[crate::ReadRange],
        max: usize,
        wait: Duration,
    ) -> Result<(Vec<ConsumedRecord>, usize)> {
        let ranges: Vec<crate::ReadRange> =
            ranges.iter().filter(|r| r.from < r.to).cloned().collect();
        if ranges.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let mut c = base_config(&self.config);
        c.set("group.id", "metal-automata-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "50");
        tokio::task::spawn_blocking(move || -> Result<(Vec<ConsumedRecord>, usize)> {
            let consumer: BaseConsumer = c.create().map_err(kerr)?;
            let mut tpl = TopicPartitionList::new();
            for r in &ranges {
                tpl.add_partition_offset(&r.topic, r.partition, Offset::Offset(r.from))
                    .map_err(kerr)?;
            }
            consumer.assign(&tpl).map_err(kerr)?;
            let mut open: std::collections::HashMap<(String, i32), (i64, usize)> = ranges
                .iter()
                .map(|r| ((r.topic.clone(), r.partition), (r.to, 0)))
                .collect();
            let deadline = std::time::Instant::now() + wait;
            let mut out = Vec::new();
            while !open.is_empty() {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                match consumer.poll(left) {
                    None => break,
                    Some(Ok(m)) => {
                        let key = (m.topic().to_string(), m.partition());
                        let Some((to, n)) = open.get_mut(&key) else {
                            continue;
                        };
                        if m.offset() < *to && *n < max {
                            out.push(to_consumed(&m));
                            *n += 1;
                        }
                        if m.offset() + 1 >= *to || *n >= max {
                            open.remove(&key);
                        }
                    }
                    Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                        open.retain(|(_, q), _| *q != p);
                    }
                    Some(Err(e)) => return Err(kerr(e)),
                }
            }
            Ok((out, open.len()))
        })
        .await
        .map_err(|e| LogError::Kafka(e.to_string()))?
    }

    /// A transactional producer for exactly-once consume-transform-produce.
    ///
    /// `transactional_id` must be stable per processor instance: a restarted instance fences its
    /// predecessor, whose commits then fail with [`LogError::Fenced`].
    pub async fn transactional_producer(&self, transactional_id: &str) -> Result<KafkaTxProducer> {
        let mut c = producer_config(&self.config);
        // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
        c.set("transactional.id", transactional_id)
            .set("transaction.timeout.ms", "60000")
            .set("message.timeout.ms", "60000");
        let producer: FutureProducer = c.create().map_err(kerr)?;
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.init_transactions(TX_TIMEOUT).map_err(kerr))
            .await
            .map_err(|e| LogError::Kafka(e.to_string()))??;
        Ok(KafkaTxProducer { producer })
    }
}

async fn await_delivery(topic: &str, fut: rdkafka::producer::DeliveryFuture) -> Result<Delivery> {
    match fut.await {
        Ok(Ok(d)) => Ok(Delivery {
            partition: d.partition,
            offset: d.offset,
        }),
        Ok(Err((e, _))) => Err(LogError::Kafka(format!("delivery to {topic} failed: {e}"))),
        Err(_) => Err(LogError::Closed),
    }
}

/// Logs rebalances and publishes consumer lag from librdkafka's statistics.
pub struct LogContext {
    group: String,
}

impl ClientContext for LogContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (p, part) in &t.partitions {
                if *p < 0 || part.consumer_lag < 0 {
                    continue;
                }
                metrics::gauge!("automata_consumer_lag_records", "group" => self.group.clone(), "topic" => topic.clone(), "partition" => p.to_string())
                    .set(part.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for LogContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Our processors commit each batch before polling again, so when librdkafka revokes
        // partitions here (inside poll) no processed-but-uncommitted work is in flight.
        match rebalance {
            Rebalance::Revoke(tpl) => {
                tracing::info!(group = %self.group, partitions = tpl.count(), "partitions revoked")
            }
            Rebalance::Assign(tpl) => {
                tracing::info!(group = %self.group, partitions = tpl.count(), "partitions assigned")
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.group, error = %e, "rebalance error")
            }
        }
    }
}

/// A consumer-group member on Kafka.
pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer<LogContext>>,
    group: String,
}

fn to_consumed(m: &rdkafka::message::BorrowedMessage<'_>) -> ConsumedRecord {
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| Header {
                    name: h.key.to_string(),
                    value: Bytes::copy_from_slice(h.value.unwrap_or_default()),
                })
                .collect()
        })
        .unwrap_or_default();
    ConsumedRecord {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        record: Record {
            key: m.key().map(Bytes::copy_from_slice),
            value: m.payload().map(Bytes::copy_from_slice),
            headers,
            timestamp_ms: m.timestamp().to_millis(),
        },
    }
}

fn tpl_of(offsets: &[TopicPartitionOffset]) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for o in offsets {
        tpl.add_partition_offset(&o.topic, o.partition, Offset::Offset(o.offset))
            .map_err(kerr)?;
    }
    Ok(tpl)
}

impl KafkaConsumer {
    /// The consumer group this member belongs to.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Waits up to `wait` for records and returns up to `max` of them (empty on timeout).
    pub async fn recv_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<ConsumedRecord>> {
        let mut out = Vec::new();
        let first = match tokio::time::timeout(wait, self.consumer.recv()).await {
            Err(_) => return Ok(out),
            Ok(r) => r,
        };
        out.push(to_consumed(&first.map_err(kerr)?));
        while out.len() < max {
            match self.consumer.recv().now_or_never() {
                Some(Ok(m)) => out.push(to_consumed(&m)),
                Some(Err(e)) => return Err(kerr(e)),
                None => break,
            }
        }
        metrics::counter!("automata_records_consumed_total", "topic" => out[0].topic.clone(), "backend" => "kafka").increment(out.len() as u64);
        Ok(out)
    }

    /// Commits offsets (each the next offset to read), synchronously with the group coordinator.
    pub async fn commit(&self, offsets: &[TopicPartitionOffset]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let tpl = tpl_of(offsets)?;
        let c = self.consumer.clone();
        tokio::task::spawn_blocking(move || c.commit(&tpl, CommitMode::Sync).map_err(kerr))
            .await
            .map_err(|e| LogError::Kafka(e.to_string()))?
    }

    /// Moves the read position of an assigned partition.
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<()> {
        self.consumer
            .seek(
                topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(10),
            )
            .map_err(kerr)
    }

    /// The partitions this member owns now.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.consumer
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A transactional producer bound to one processor instance.
pub struct KafkaTxProducer {
    producer: FutureProducer,
}

impl KafkaTxProducer {
    /// Appends outputs and commits the consumer's offsets in one Kafka transaction.
    pub async fn commit(
        &self,
        consumer: &KafkaConsumer,
        outputs: Vec<(String, Record)>,
        offsets: Vec<TopicPartitionOffset>,
    ) -> Result<()> {
        let cgm = consumer
            .consumer
            .group_metadata()
            .ok_or_else(|| LogError::Kafka("consumer has no group metadata".into()))?;
        let tpl = tpl_of(&offsets)?;
        let p = self.producer.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<()> {
            p.begin_transaction().map_err(kerr)?;
            let mut futs = Vec::with_capacity(outputs.len());
            let run = (|| -> Result<()> {
                for (topic, r) in &outputs {
                    match p.send_result(to_record(topic, r)) {
                        Ok(f) => futs.push(f),
                        Err((e, _)) => return Err(kerr(e)),
                    }
                }
                // A commit of outputs alone (a processor's reaction to a global table) has no
                // input offsets to move.
                if tpl.count() > 0 {
                    p.send_offsets_to_transaction(&tpl, &cgm, TX_TIMEOUT)
                        .map_err(kerr)?;
                }
                p.commit_transaction(TX_TIMEOUT).map_err(kerr)
            })();
            if let Err(e) = run {
                if !matches!(e, LogError::Fenced(_)) {
                    let _ = p.abort_transaction(TX_TIMEOUT);
                }
                return Err(e);
            }
            Ok(())
        })
        .await
        .map_err(|e| LogError::Kafka(e.to_string()))?;
        if result.is_ok() {
            metrics::counter!("automata_transaction_commits_total", "backend" => "kafka")
                .increment(1);
        } else {
            metrics::counter!("automata_transaction_aborts_total", "backend" => "kafka")
                .increment(1);
        }
        result
    }

    /// Appends records inside a transaction and then aborts it (used by tests to prove
    /// `read_committed` consumers never see them).
    pub async fn abort_after_send(&self, outputs: Vec<(String, Record)>) -> Result<()> {
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            p.begin_transaction().map_err(kerr)?;
            for (topic, r) in &outputs {
                if let Err((e, _)) = p.send_result(to_record(topic, r)) {
                    let _ = p.abort_transaction(TX_TIMEOUT);
                    return Err(kerr(e));
                }
            }
            p.flush(TX_TIMEOUT).map_err(kerr)?;
            p.abort_transaction(TX_TIMEOUT).map_err(kerr)
        })
        .await
        .map_err(|e| LogError::Kafka(e.to_string()))?
    }
}
