//! Test helper: appends records to an embedded log and prints each acknowledged offset, so
//! `log_kill9` can `kill -9` it mid-stream and check that nothing acknowledged was lost.

use std::io::Write;

use automata_log::{Record, TopicConfig};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: log-crash-writer <dir>");
    let dir = std::path::PathBuf::from(dir);
    let log = automata_tests::open(&automata_tests::embedded_config(&dir), &dir);
    log.ensure_topics(&[TopicConfig::new("crash", 3)])
        .await
        .expect("topic");
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let recs: Vec<Record> = (0..50)
            .map(|j| Record::new(format!("k{}", j % 5), format!("{}", i * 50 + j)))
            .collect();
        log.send_batch("crash", recs).await.expect("send");
        // Only now, after the acknowledgement, do we claim these records.
        writeln!(out, "{}", i * 50 + 49).expect("stdout");
        out.flush().expect("flush");
    }
}
