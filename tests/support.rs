//! Shared helpers for the integration tests: where the real Kafka broker is, and fresh logs.

use std::path::Path;
use std::time::Duration;

use automata_log::{Backend, EmbeddedConfig, KafkaConfig, LogConfig, MessageLog};

/// Env var naming the test broker (`host:port`), set by `scripts/test.sh`.
pub const KAFKA_ENV: &str = "MA_TEST_KAFKA";

/// The test broker, if one is running. Under CI a missing broker is a failure, never a skip.
pub fn kafka_brokers() -> Option<String> {
    match std::env::var(KAFKA_ENV) {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "{KAFKA_ENV} is not set under CI: the Kafka tests must run (use scripts/test.sh)"
            );
            eprintln!("skipping Kafka case: {KAFKA_ENV} is not set (scripts/test.sh sets it)");
            None
        }
    }
}

/// A fresh embedded log configuration in `dir`, without background maintenance.
pub fn embedded_config(dir: &Path) -> LogConfig {
    LogConfig {
        backend: Backend::Embedded,
        embedded: EmbeddedConfig {
            dir: Some(dir.to_path_buf()),
            maintenance_interval_secs: 0,
            ..EmbeddedConfig::default()
        },
        kafka: KafkaConfig::default(),
    }
}

/// A Kafka log configuration for the test broker, failing fast when it is away.
pub fn kafka_config(brokers: &str) -> LogConfig {
    LogConfig {
        backend: Backend::Kafka,
        embedded: EmbeddedConfig::default(),
        kafka: KafkaConfig {
            brokers: brokers.to_string(),
            replication_factor: 1,
            delivery_timeout_ms: 120_000,
            ..KafkaConfig::default()
        },
    }
}

/// Opens a log, panicking with the reason (tests only).
pub fn open(cfg: &LogConfig, dir: &Path) -> MessageLog {
    match MessageLog::open(cfg, dir) {
        Ok(l) => l,
        Err(e) => panic!("cannot open log: {e}"),
    }
}

/// A unique topic name for one test run, so Kafka tests never see each other's records.
pub fn unique(name: &str) -> String {
    format!("{name}.{}", uuid::Uuid::new_v4().simple())
}

/// Polls `f` until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
