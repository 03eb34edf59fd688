//! A broker restart loses nothing: sends made while the broker is down are buffered and
//! retried, and every acknowledged record is readable afterwards.

use std::process::Command;
use std::time::Duration;

use automata_log::{Record, StartFrom, TopicConfig};

fn kafka_script(action: &str) {
    let script = std::env::var("MA_TEST_KAFKA_SCRIPT").expect("MA_TEST_KAFKA_SCRIPT");
    let status = Command::new("bash")
        .arg(&script)
        .arg(action)
        .status()
        .expect("run kafka script");
    assert!(status.success(), "kafka.sh {action} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_during_a_broker_restart_are_not_lost() {
    let Some(brokers) = automata_tests::kafka_brokers() else {
        return;
    };
    if std::env::var("MA_TEST_KAFKA_SCRIPT").is_err() {
        eprintln!("skipping: MA_TEST_KAFKA_SCRIPT not set");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log = automata_tests::open(&automata_tests::kafka_config(&brokers), dir.path());
    let topic = automata_tests::unique("restart");
    log.ensure_topics(&[TopicConfig::new(&topic, 3)])
        .await
        .expect("topic");
    let before: Vec<Record> = (0..500)
        .map(|i| Record::new(format!("k{i}"), format!("{i}")))
        .collect();
    log.send_batch(&topic, before).await.expect("send before");

    kafka_script("stop");
    // While the broker is down, sends wait in the producer's bounded buffer.
    let l2 = log.clone();
    let t2 = topic.clone();
    let during = tokio::spawn(async move {
        let recs: Vec<Record> = (500..1000)
            .map(|i| Record::new(format!("k{i}"), format!("{i}")))
            .collect();
        l2.send_batch(&t2, recs).await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !during.is_finished(),
        "sends cannot be acknowledged while the broker is down"
    );
    kafka_script("start");
    let r = tokio::time::timeout(Duration::from_secs(120), during)
        .await
        .expect("sends finish after restart");
    r.expect("join").expect("buffered sends delivered");

    let mut c = log
        .consumer(&automata_tests::unique("g"), &[&topic], StartFrom::Earliest)
        .expect("consumer");
    let mut values = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while values.len() < 1000 && tokio::time::Instant::now() < deadline {
        for r in c
            .recv_batch(1000, Duration::from_millis(500))
            .await
            .expect("recv")
        {
            values.insert(
                String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default()).into_owned(),
            );
        }
    }
    assert_eq!(
        values.len(),
        1000,
        "every acknowledged record is there after the restart"
    );
}
