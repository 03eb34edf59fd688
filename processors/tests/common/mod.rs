//! Setup shared by the processor tests.

use automata_log::{EmbeddedConfig, LogConfig, MessageLog};
use automata_schemas::catalog::topics;

/// An embedded log with every topic, in a directory dropped with the guard; no background
/// maintenance, so a test sees exactly what it sent.
pub async fn open_log() -> (tempfile::TempDir, MessageLog) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        embedded: EmbeddedConfig {
            maintenance_interval_secs: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    let log = MessageLog::open(&cfg, dir.path()).expect("open");
    let specs: Vec<_> = topics().iter().map(|t| t.log_config()).collect();
    log.ensure_topics(&specs).await.expect("topics");
    (dir, log)
}
