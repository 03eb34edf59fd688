//! The embedded log survives `kill -9` without losing an acknowledged record.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use automata_log::StartFrom;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_log-crash-writer"))
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout");
    let mut last_acked = None;
    for line in BufReader::new(stdout).lines() {
        let n: u64 = line.expect("line").trim().parse().expect("number");
        last_acked = Some(n);
        if n >= 20_000 {
            break;
        }
    }
    // SIGKILL: no destructor, no flush, no chance to tidy up.
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    let last_acked = last_acked.expect("writer acknowledged something");

    let log = automata_tests::open(&automata_tests::embedded_config(dir.path()), dir.path());
    let mut c = log
        .consumer("check", &["crash"], StartFrom::Earliest)
        .expect("consumer");
    let mut seen = BTreeSet::new();
    loop {
        let batch = c
            .recv_batch(10_000, Duration::from_millis(500))
            .await
            .expect("recv");
        if batch.is_empty() {
            break;
        }
        for r in batch {
            let v: u64 = String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default())
                .parse()
                .expect("number");
            seen.insert(v);
        }
    }
    let missing: Vec<u64> = (0..=last_acked)
        .filter(|v| !seen.contains(v))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but lost after kill -9: {missing:?}"
    );
    // Offsets keep increasing after recovery: a new append never reuses one.
    let d = log
        .send("crash", automata_log::Record::new("k0", "after"))
        .await
        .expect("send");
    let marks = log.watermarks("crash").await.expect("watermarks");
    assert!(
        marks
            .iter()
            .any(|m| m.partition == d.partition && m.high == d.offset + 1)
    );
}
