//! The out-of-band inventory collector: sweeps every registered BMC over Redfish on an interval
//! and publishes one inventory snapshot per server found behind it.
//!
//! BMCs are swept concurrently (a fleet-wide cap) and each client keeps its own per-BMC request
//! limit, timeouts and retries, so one slow or dead BMC costs its own timeout and nothing else.
//! Credentials come from the encrypted registry at connect time and never leave this task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use automata_bmc::redfish::inventory;
use automata_bmc::registry::{BmcEntry, BmcRegistry, BmcStatus, StatusBoard};
use automata_bmc::{ClientOptions, Credentials, RedfishClient};
use automata_log::{MessageLog, Record};
use automata_schemas::SchemaIds;
use automata_schemas::catalog::{INVENTORY_SNAPSHOTS, topic};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::ProducerError;

const NAME: &str = "redfish-inventory";

/// Tuning of the out-of-band inventory collector.
#[derive(Debug, Clone)]
pub struct BmcCollectorConfig {
    /// Time between sweeps.
    pub every: Duration,
    /// BMCs collected at once across the fleet.
    pub fleet_concurrency: usize,
    /// Per-BMC client behaviour (its TLS policy comes from the registry entry).
    pub client: ClientOptions,
}

impl Default for BmcCollectorConfig {
    fn default() -> Self {
        BmcCollectorConfig {
            every: Duration::from_secs(600),
            fleet_concurrency: 128,
            client: ClientOptions::default(),
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SweepReport {
    /// BMCs attempted.
    pub bmcs: usize,
    /// BMCs that answered.
    pub ok: usize,
    /// Snapshots published.
    pub snapshots: usize,
    /// Components in them.
    pub components: usize,
    /// HTTP requests sent.
    pub requests: u64,
    /// Wall time, ms.
    pub elapsed_ms: u64,
}

/// Collects one BMC: a client per call, the session closed at the end.
pub async fn collect_one(
    entry: &BmcEntry,
    creds: Credentials,
    opts: &ClientOptions,
) -> Result<inventory::BmcInventory, automata_bmc::BmcError> {
    let mut o = opts.clone();
    o.tls = entry.tls.clone();
    let client = RedfishClient::new(&entry.address, creds, o)?;
    let r = inventory::collect(&client, &entry.address).await;
    client.logout().await;
    r
}

/// One sweep over `bmcs`, publishing to `log`; updates `board` per BMC.
pub async fn sweep(
    log: &MessageLog,
    ids: &SchemaIds,
    bmcs: Vec<(BmcEntry, Credentials)>,
    cfg: &BmcCollectorConfig,
    board: &StatusBoard,
) -> Result<SweepReport, ProducerError> {
    let spec = topic(INVENTORY_SNAPSHOTS).ok_or(ProducerError::NoSchema(INVENTORY_SNAPSHOTS))?;
    let schema_id = ids
        .get(INVENTORY_SNAPSHOTS)
        .ok_or(ProducerError::NoSchema(INVENTORY_SNAPSHOTS))?;
    let started = Instant::now();
    let mut report = SweepReport {
        bmcs: bmcs.len(),
        ..Default::default()
    };
    let mut results = futures::stream::iter(bmcs.into_iter().map(|(entry, creds)| async move {
        let t = Instant::now();
        let r = collect_one(&entry, creds, &cfg.client).await;
        (entry, r, t.elapsed())
    }))
    .buffer_unordered(cfg.fleet_concurrency.max(1));
    while let Some((entry, r, took)) = results.next().await {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut status = BmcStatus {
            last_attempt: Some(now.clone()),
            duration_ms: Some(took.as_millis() as u64),
            ..Default::default()
        };
        match r {
            Ok(inv) => {
                report.ok += 1;
                report.requests += inv.requests;
                let mut records = Vec::with_capacity(inv.snapshots.len());
                for s in &inv.snapshots {
                    report.components += s.components.len();
                    let bytes = automata_schemas::encode(spec, schema_id, s).map_err(|source| {
                        ProducerError::Encode {
                            collector: NAME,
                            source,
                        }
                    })?;
                    records.push(
                        Record::new(s.server_id.clone(), bytes).with_timestamp(s.collected_at),
                    );
                }
                report.snapshots += records.len();
                status.servers = inv.snapshots.iter().map(|s| s.server_id.clone()).collect();
                status.vendor = Some(format!("{:?}", inv.vendor).to_lowercase());
                status.requests = Some(inv.requests);
                match log.send_batch(INVENTORY_SNAPSHOTS, records).await {
                    Ok(_) => status.last_success = Some(now),
                    Err(e) => {
                        tracing::warn!(bmc = %entry.name, error = %e, "cannot publish the inventory; next sweep retries");
                        status.last_error = Some(format!("publishing: {e}"));
                    }
                }
                metrics::counter!("automata_collector_inventories_total", "collector" => NAME)
                    .increment(inv.snapshots.len() as u64);
            }
            Err(e) => {
                metrics::counter!("automata_collector_errors_total", "collector" => NAME)
                    .increment(1);
                tracing::warn!(bmc = %entry.name, error = %e, "BMC inventory failed");
                status.last_error = Some(e.to_string());
            }
        }
        let mut b = board.write().unwrap_or_else(|e| e.into_inner());
        let prev = b.remove(&entry.name).unwrap_or_default();
        if status.last_success.is_none() {
            status.last_success = prev.last_success;
            if status.servers.is_empty() {
                status.servers = prev.servers;
            }
        }
        b.insert(entry.name, status);
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Sweeps the registry every `cfg.every` until `shutdown`; a sweep starts at once when `kick`
/// is notified (a BMC was just added).
pub async fn run(
    log: MessageLog,
    ids: SchemaIds,
    registry: Arc<BmcRegistry>,
    board: StatusBoard,
    kick: Arc<tokio::sync::Notify>,
    cfg: BmcCollectorConfig,
    shutdown: CancellationToken,
) -> Result<(), ProducerError> {
    loop {
        match registry.list_with_credentials() {
            Ok(bmcs) if bmcs.is_empty() => {}
            Ok(bmcs) => {
                let r = sweep(&log, &ids, bmcs, &cfg, &board).await?;
                tracing::info!(
                    bmcs = r.bmcs,
                    ok = r.ok,
                    snapshots = r.snapshots,
                    elapsed_ms = r.elapsed_ms,
                    "BMC inventory sweep done"
                );
            }
            Err(e) => tracing::error!(error = %e, "cannot read the BMC registry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(cfg.every) => {}
            _ = kick.notified() => {}
        }
    }
}
