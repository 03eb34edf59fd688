//! Schema registration at start-up: our own registry on the `_schemas` topic, or an external one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use automata_log::{MessageLog, Record, StartFrom};
use automata_schemas::SchemaIds;
use automata_schemas::catalog::{SCHEMAS, topics};
use automata_schemas::registry::{RegistryLog, SchemaRegistry};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// The schema ids this process writes with, and the registry it serves (if it runs its own).
pub struct Schemas {
    ids: SchemaIds,
    local: Option<SchemaRegistry>,
}

impl Schemas {
    /// Topic -> schema id.
    pub fn ids(&self) -> SchemaIds {
        self.ids.clone()
    }

    /// The registry to serve on the API; `None` when an external registry is configured.
    pub fn local_registry(&self) -> Option<SchemaRegistry> {
        self.local.clone()
    }
}

/// Appends registry records to the compacted `_schemas` topic.
struct TopicRegistryLog {
    log: MessageLog,
}

#[async_trait::async_trait]
impl RegistryLog for TopicRegistryLog {
    async fn append(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), String> {
        self.log
            .send(SCHEMAS, Record::new(key, value))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Registers every topic's schema and returns the ids to write with.
pub async fn start(cfg: &Config, log: &MessageLog, shutdown: CancellationToken) -> Result<Schemas> {
    if let Some(url) = &cfg.registry.url {
        let ids = register_external(url).await?;
        return Ok(Schemas {
            ids: SchemaIds::new(ids),
            local: None,
        });
    }
    let registry = SchemaRegistry::new(Arc::new(TopicRegistryLog { log: log.clone() }));
    // Replay what is there, then keep tailing: other processes may register too.
    let group = format!("schema-registry-{}", uuid::Uuid::new_v4().simple());
    let mut consumer = log.consumer(&group, &[SCHEMAS], StartFrom::Earliest)?;
    let marks = log.watermarks(SCHEMAS).await?;
    let mut want: i64 = marks.iter().map(|m| m.high - m.low).sum();
    while want > 0 {
        let batch = consumer.recv_batch(1000, Duration::from_secs(3)).await?;
        if batch.is_empty() {
            break; // compaction left gaps: what is there has been read
        }
        want -= batch.len() as i64;
        for r in batch {
            if let Some(k) = r.record.key.as_deref() {
                registry.apply(k, r.record.value.as_deref());
            }
        }
    }
    let ids = registry
        .register_catalog()
        .await
        .context("registering the catalog's schemas in _schemas")?;
    let tail = registry.clone();
    tokio::spawn(async move {
        loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => return,
                b = consumer.recv_batch(1000, Duration::from_secs(5)) => b,
            };
            match batch {
                Ok(batch) => {
                    for r in batch {
                        if let Some(k) = r.record.key.as_deref() {
                            tail.apply(k, r.record.value.as_deref());
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "schema registry lost the _schemas topic; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    });
    Ok(Schemas {
        ids: SchemaIds::new(ids),
        local: Some(registry),
    })
}

/// Registers the catalog with an external Confluent-compatible registry.
async fn register_external(url: &str) -> Result<HashMap<String, u32>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let mut ids = HashMap::new();
    for t in topics() {
        let Some(schema) = t.schema_json else {
            continue;
        };
        let endpoint = format!(
            "{}/subjects/{}/versions",
            url.trim_end_matches('/'),
            crate::client::path_segment(&t.subject())
        );
        let resp = http
            .post(&endpoint)
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .json(&serde_json::json!({ "schema": schema }))
            .send()
            .await
            .with_context(|| format!("cannot reach the schema registry at {url}"))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "the schema registry refused {}: {status} {body}",
                t.subject()
            );
        }
        let id = body["id"]
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .with_context(|| format!("the schema registry answered without an id: {body}"))?;
        ids.insert(t.name.to_string(), id);
    }
    Ok(ids)
}
