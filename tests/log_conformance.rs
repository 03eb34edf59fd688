//! One conformance suite for both message-log backends.
//!
//! Every property runs twice: on the embedded store and on a real Apache Kafka broker
//! (`MA_TEST_KAFKA`, started by `scripts/test.sh`; under CI it must be there).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use automata_log::partitioner::partition_for_key;
use automata_log::{
    ConsumedRecord, LogConsumer, MessageLog, Record, StartFrom, TopicConfig, offsets_to_commit,
};
use automata_tests::{embedded_config, eventually, kafka_brokers, kafka_config, open, unique};
use tempfile::TempDir;

/// A backend under test: how to open it, and how to "restart" it.
struct Harness {
    dir: TempDir,
    kafka: Option<String>,
}

impl Harness {
    fn embedded() -> Self {
        Harness {
            dir: tempfile::tempdir().expect("tempdir"),
            kafka: None,
        }
    }

    fn kafka() -> Option<Self> {
        Some(Harness {
            dir: tempfile::tempdir().expect("tempdir"),
            kafka: Some(kafka_brokers()?),
        })
    }

    fn open(&self) -> MessageLog {
        let cfg = match &self.kafka {
            Some(b) => kafka_config(b),
            None => embedded_config(&self.dir.path().join("log")),
        };
        open(&cfg, self.dir.path())
    }

    fn is_kafka(&self) -> bool {
        self.kafka.is_some()
    }

    async fn topic(&self, log: &MessageLog, name: &str, partitions: u32) -> String {
        let t = unique(name);
        log.ensure_topics(&[TopicConfig::new(&t, partitions)])
            .await
            .expect("create topic");
        t
    }
}

/// Reads until `n` records arrived (or panics after a generous timeout).
async fn read_n(c: &mut LogConsumer, n: usize) -> Vec<ConsumedRecord> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while out.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} records arrived",
            out.len()
        );
        let batch = c
            .recv_batch(n - out.len(), Duration::from_millis(500))
            .await
            .expect("recv");
        out.extend(batch);
    }
    out
}

/// Reads whatever arrives within `quiet` of silence.
async fn read_until_quiet(c: &mut LogConsumer, quiet: Duration) -> Vec<ConsumedRecord> {
    let mut out = Vec::new();
    loop {
        let batch = c.recv_batch(10_000, quiet).await.expect("recv");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

fn value_str(r: &ConsumedRecord) -> String {
    String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default()).into_owned()
}

fn key_str(r: &ConsumedRecord) -> String {
    String::from_utf8_lossy(r.record.key.as_deref().unwrap_or_default()).into_owned()
}

async fn order_per_key(h: Harness) {
    let log = h.open();
    let topic = h.topic(&log, "conf.order", 4).await;
    let keys = ["server-a", "server-b", "server-c", "server-d", "server-e"];
    let mut records = Vec::new();
    for i in 0..400 {
        for k in keys {
            records.push(Record::new(k, format!("{i}")).with_header("seq", i.to_string()));
        }
    }
    let deliveries = log.send_batch(&topic, records).await.expect("send");
    assert_eq!(deliveries.len(), 2000);
    let mut c = log
        .consumer(&unique("g"), &[&topic], StartFrom::Earliest)
        .expect("consumer");
    let got = read_n(&mut c, 2000).await;
    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    for r in &got {
        let k = key_str(r);
        // The same key-to-partition rule on both backends (Kafka's murmur2).
        assert_eq!(
            r.partition,
            partition_for_key(k.as_bytes(), 4),
            "partition of {k}"
        );
        assert_eq!(
            r.record.header("seq").map(|v| v.to_vec()),
            Some(value_str(r).into_bytes())
        );
        seen.entry(k)
            .or_default()
            .push(value_str(r).parse().expect("int"));
    }
    for k in keys {
        let v = &seen[k];
        assert_eq!(v, &(0..400).collect::<Vec<i64>>(), "order of {k}");
    }
}

async fn no_loss_across_restart(h: Harness) {
    let log = h.open();
    let topic = h.topic(&log, "conf.restart", 3).await;
    let mut acked = BTreeSet::new();
    for chunk in 0..10 {
        let recs: Vec<Record> = (0..100)
            .map(|i| Record::new(format!("k{}", i % 7), format!("{}", chunk * 100 + i)))
            .collect();
        log.send_batch(&topic, recs).await.expect("send");
        acked.extend((chunk * 100)..(chunk * 100 + 100));
    }
    drop(log);
    let log = h.open();
    let mut c = log
        .consumer(&unique("g"), &[&topic], StartFrom::Earliest)
        .expect("consumer");
    let got = read_n(&mut c, 1000).await;
    let values: BTreeSet<i32> = got
        .iter()
        .map(|r| value_str(r).parse().expect("int"))
        .collect();
    let want: BTreeSet<i32> = acked.into_iter().collect();
    assert_eq!(values, want);
}

async fn redelivery_after_crash_before_commit(h: Harness) {
    let log = h.open();
    let topic = h.topic(&log, "conf.redeliver", 1).await;
    let recs: Vec<Record> = (0..100).map(|i| Record::new("k", format!("{i}"))).collect();
    log.send_batch(&topic, recs).await.expect("send");
    let group = unique("g");
    {
        let mut c = log
            .consumer(&group, &[&topic], StartFrom::Earliest)
            .expect("consumer");
        let got = read_n(&mut c, 100).await;
        // Processed all 100, but committed only the first 40 before "crashing".
        c.commit(&offsets_to_commit(&got[..40]))
            .await
            .expect("commit");
    }
    let log = if h.is_kafka() {
        log
    } else {
        drop(log);
        h.open()
    };
    let mut c = log
        .consumer(&group, &[&topic], StartFrom::Earliest)
        .expect("consumer");
    let got = read_n(&mut c, 60).await;
    assert_eq!(
        value_str(&got[0]),
        "40",
        "redelivery starts at the committed offset"
    );
    assert_eq!(value_str(&got[59]), "99");
    let more = read_until_quiet(&mut c, Duration::from_millis(700)).await;
    assert!(more.is_empty(), "nothing beyond the log's end: {more:?}");
}

async fn group_resumes_from_committed_offset(h: Harness) {
    let log = h.open();
    let topic = h.topic(&log, "conf.resume", 2).await;
    let recs: Vec<Record> = (0..50)
        .map(|i| Record::new(format!("k{i}"), format!("{i}")))
        .collect();
    log.send_batch(&topic, recs).await.expect("send");
    let group = unique("g");
    {
        let mut c = log
            .consumer(&group, &[&topic], StartFrom::Earliest)
            .expect("consumer");
        let got = read_n(&mut c, 50).await;
        c.commit(&offsets_to_commit(&got)).await.expect("commit");
    }
    let recs: Vec<Record> = (50..80)
        .map(|i| Record::new(format!("k{i}"), format!("{i}")))
        .collect();
    log.send_batch(&topic, recs).await.expect("send");
    let mut c = log
        .consumer(&group, &[&topic], StartFrom::Earliest)
        .expect("consumer");
    let got = read_n(&mut c, 30).await;
    let values: BTreeSet<i32> = got
        .iter()
        .map(|r| value_str(r).parse().expect("int"))
        .collect();
    assert_eq!(values, (50..80).collect());
    // A different group starts from the beginning.
    let mut other = log
        .consumer(&unique("g2"), &[&topic], StartFrom::Earliest)
        .expect("consumer");
    assert_eq!(read_n(&mut other, 80).await.len(), 80);
}

async fn compaction_keeps_latest_per_key(h: Harness) {
    let log = h.open();
    let topic = unique("conf.compact");
    if let Some(brokers) = &h.kafka {
        create_eager_compacted_topic(brokers, &topic).await;
    } else {
        log.ensure_topics(&[TopicConfig::new(&topic, 2).compacted()])
            .await
            .expect("create");
    }
    for round in 0..5 {
        let recs: Vec<Record> = (0..20)
            .map(|k| Record::new(format!("server-{k}"), format!("v{round}")))
            .collect();
        log.send_batch(&topic, recs).await.expect("send");
    }
    log.send(&topic, Record::tombstone("server-0"))
        .await
        .expect("tombstone");
    let expected_latest: BTreeMap<String, Option<String>> = (0..20)
        .map(|k| {
            let v = if k == 0 { None } else { Some("v4".to_string()) };
            (format!("server-{k}"), v)
        })
        .collect();
    let read_all = |log: MessageLog, topic: String| async move {
        let mut c = log
            .consumer(&unique("g"), &[&topic], StartFrom::Earliest)
            .expect("consumer");
        read_until_quiet(&mut c, Duration::from_millis(1500)).await
    };
    if let MessageLog::Embedded(e) = &log {
        let rep = e.run_maintenance().expect("maintenance");
        assert_eq!(
            rep.compacted, 81,
            "4 old versions of 20 keys, and server-0's last value under its tombstone"
        );
        let got = read_all(log.clone(), topic.clone()).await;
        assert_eq!(got.len(), 20, "one record per key, the tombstone kept");
        let latest: BTreeMap<String, Option<String>> = got
            .iter()
            .map(|r| (key_str(r), r.record.value.as_ref().map(|_| value_str(r))))
            .collect();
        assert_eq!(latest, expected_latest);
    } else {
        // Kafka's cleaner compacts closed segments on its own schedule: roll the segment by
        // writing after segment.ms, then wait until the old versions are gone.
        tokio::time::sleep(Duration::from_millis(300)).await;
        // One record per partition, so every partition's active segment rolls.
        for p in 0..2 {
            let key = (0..)
                .map(|i| format!("roll-{i}"))
                .find(|k| partition_for_key(k.as_bytes(), 2) == p)
                .expect("a key for each partition");
            log.send(&topic, Record::new(key, "x")).await.expect("roll");
        }
        let l = log.clone();
        let t = topic.clone();
        eventually(Duration::from_secs(90), "kafka log cleaner", move || {
            let (l, t) = (l.clone(), t.clone());
            async move {
                let got = read_all(l, t).await;
                let old = got
                    .iter()
                    .filter(|r| value_str(r).starts_with('v') && value_str(r) != "v4")
                    .count();
                (old == 0).then_some(got)
            }
        })
        .await;
    }
    // Latest value per key is what a state rebuild sees, on both backends.
    let got = read_all(log, topic).await;
    let mut latest: BTreeMap<String, Option<String>> = BTreeMap::new();
    for r in got {
        if !key_str(&r).starts_with("roll") {
            latest.insert(key_str(&r), r.record.value.as_ref().map(|_| value_str(&r)));
        }
    }
    assert_eq!(latest, expected_latest);
}

async fn create_eager_compacted_topic(brokers: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin");
    let t = NewTopic::new(topic, 2, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "200")
        .set("min.cleanable.dirty.ratio", "0.001")
        .set("min.compaction.lag.ms", "0")
        .set("delete.retention.ms", "86400000");
    let r = admin
        .create_topics(&[t], &AdminOptions::new())
        .await
        .expect("create");
    for x in r {
        x.expect("topic created");
    }
}

/// The conformance processor's transformation: one output per input, keyed the same.
fn transform(batch: &[ConsumedRecord], output: &str) -> Vec<(String, Record)> {
    batch
        .iter()
        .map(|r| {
            let key = r.record.key.clone().unwrap_or_default();
            (
                output.to_string(),
                Record::new(key, format!("out-{}", value_str(r))),
            )
        })
        .collect()
}

/// A consume-transform-produce processor that "crashes" mid-way still yields every input
/// exactly once in its output.
async fn exactly_once_consume_transform_produce(h: Harness) {
    let log = h.open();
    let input = h.topic(&log, "conf.eos.in", 3).await;
    let output = h.topic(&log, "conf.eos.out", 3).await;
    let n = 600;
    let recs: Vec<Record> = (0..n)
        .map(|i| Record::new(format!("k{}", i % 11), format!("{i}")))
        .collect();
    log.send_batch(&input, recs).await.expect("send");
    let group = unique("eos");
    let txid = unique("tx");

    // Run 1: commit some batches, then process a batch and die before committing it.
    {
        let tx = log
            .transactional_producer(&txid)
            .await
            .expect("tx producer");
        let mut c = log
            .consumer(&group, &[&input], StartFrom::Earliest)
            .expect("consumer");
        let mut committed = 0;
        while committed < 200 {
            let batch = c
                .recv_batch(50, Duration::from_secs(2))
                .await
                .expect("recv");
            if batch.is_empty() {
                continue;
            }
            let outputs = transform(&batch, &output);
            tx.commit(&c, outputs, offsets_to_commit(&batch))
                .await
                .expect("commit");
            committed += batch.len();
        }
        // The uncommitted batch: read, transformed, never committed.
        let _lost = c
            .recv_batch(50, Duration::from_secs(2))
            .await
            .expect("recv");
    }
    // Run 2: a new instance with the same transactional id finishes the job.
    {
        let tx = log
            .transactional_producer(&txid)
            .await
            .expect("tx producer");
        let mut c = log
            .consumer(&group, &[&input], StartFrom::Earliest)
            .expect("consumer");
        loop {
            let batch = c
                .recv_batch(100, Duration::from_secs(3))
                .await
                .expect("recv");
            if batch.is_empty() {
                break;
            }
            let outputs = transform(&batch, &output);
            tx.commit(&c, outputs, offsets_to_commit(&batch))
                .await
                .expect("commit");
        }
    }
    let mut c = log
        .consumer(&unique("check"), &[&output], StartFrom::Earliest)
        .expect("consumer");
    let got = read_until_quiet(&mut c, Duration::from_secs(2)).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &got {
        *counts.entry(value_str(r)).or_default() += 1;
    }
    assert_eq!(counts.len(), n, "every input produced an output");
    assert!(
        counts.values().all(|c| *c == 1),
        "no duplicates: {:?}",
        counts
            .iter()
            .filter(|(_, c)| **c > 1)
            .take(5)
            .collect::<Vec<_>>()
    );
}

/// Two members of one group split the partitions; when one leaves the other takes over.
async fn group_members_share_partitions(h: Harness) {
    let log = h.open();
    let topic = h.topic(&log, "conf.members", 4).await;
    let group = unique("g");
    let mut a = log
        .consumer(&group, &[&topic], StartFrom::Earliest)
        .expect("a");
    let mut b = log
        .consumer(&group, &[&topic], StartFrom::Earliest)
        .expect("b");
    // Let the group settle (Kafka rebalances in the background of polls) before producing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while a.assignment().is_empty() || b.assignment().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "group never settled"
        );
        a.recv_batch(1, Duration::from_millis(100))
            .await
            .expect("a");
        b.recv_batch(1, Duration::from_millis(100))
            .await
            .expect("b");
    }
    let recs: Vec<Record> = (0..200)
        .map(|i| Record::new(format!("k{i}"), format!("{i}")))
        .collect();
    log.send_batch(&topic, recs).await.expect("send");
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got_a.len() + got_b.len() < 200 && tokio::time::Instant::now() < deadline {
        got_a.extend(
            a.recv_batch(100, Duration::from_millis(200))
                .await
                .expect("a"),
        );
        got_b.extend(
            b.recv_batch(100, Duration::from_millis(200))
                .await
                .expect("b"),
        );
    }
    assert_eq!(got_a.len() + got_b.len(), 200);
    let pa: BTreeSet<i32> = got_a.iter().map(|r| r.partition).collect();
    let pb: BTreeSet<i32> = got_b.iter().map(|r| r.partition).collect();
    assert!(
        pa.is_disjoint(&pb),
        "members own disjoint partitions: {pa:?} {pb:?}"
    );
    assert!(!pa.is_empty() && !pb.is_empty(), "both members got work");
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name(super::Harness::embedded()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn kafka() {
                if let Some(h) = super::Harness::kafka() {
                    super::$name(h).await
                }
            }
        }
    )*};
}

conformance!(
    order_per_key,
    no_loss_across_restart,
    redelivery_after_crash_before_commit,
    group_resumes_from_committed_offset,
    compaction_keeps_latest_per_key,
    exactly_once_consume_transform_produce,
    group_members_share_partitions,
);

/// Kafka only: records of an aborted transaction never reach a `read_committed` consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_aborted_transactions_are_invisible() {
    let Some(h) = Harness::kafka() else { return };
    let log = h.open();
    let topic = h.topic(&log, "conf.abort", 1).await;
    let MessageLog::Kafka(k) = &log else {
        unreachable!()
    };
    let tx = k.transactional_producer(&unique("tx")).await.expect("tx");
    tx.abort_after_send(vec![(topic.clone(), Record::new("k", "aborted"))])
        .await
        .expect("abort");
    log.send(&topic, Record::new("k", "committed"))
        .await
        .expect("send");
    let mut c = log
        .consumer(&unique("g"), &[&topic], StartFrom::Earliest)
        .expect("consumer");
    let got = read_until_quiet(&mut c, Duration::from_secs(2)).await;
    let values: Vec<String> = got.iter().map(value_str).collect();
    assert_eq!(values, vec!["committed".to_string()]);
}

/// Embedded only (Kafka's broker applies retention on its own schedule): records past a topic's
/// retention are deleted from the head of each partition, newer ones stay readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_retention_expires_old_records() {
    let h = Harness::embedded();
    let log = h.open();
    let topic = unique("conf.retention");
    log.ensure_topics(&[TopicConfig::new(&topic, 2).retention_ms(60_000)])
        .await
        .expect("create");
    let now = automata_log::now_ms();
    let old: Vec<Record> = (0..30)
        .map(|i| Record::new(format!("k{i}"), "old").with_timestamp(now - 3_600_000))
        .collect();
    let new: Vec<Record> = (0..20)
        .map(|i| Record::new(format!("k{i}"), "new"))
        .collect();
    log.send_batch(&topic, old).await.expect("send");
    log.send_batch(&topic, new).await.expect("send");
    let MessageLog::Embedded(e) = &log else {
        unreachable!()
    };
    let rep = e.run_maintenance().expect("maintenance");
    assert_eq!(rep.expired, 30);
    let mut c = log
        .consumer(&unique("g"), &[&topic], StartFrom::Earliest)
        .expect("consumer");
    let got = read_until_quiet(&mut c, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 20);
    assert!(got.iter().all(|r| value_str(r) == "new"));
    // Offsets are not reused after expiry: the low watermark moved, the high one did not.
    let marks = log.watermarks(&topic).await.expect("watermarks");
    assert_eq!(marks.iter().map(|m| m.high).sum::<i64>(), 50);
    assert_eq!(marks.iter().map(|m| m.high - m.low).sum::<i64>(), 20);
}
