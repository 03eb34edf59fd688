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
    if entry.protocol == automata_bmc::Protocol::Ipmi {
        let o = automata_bmc::ipmi::IpmiOptions {
            timeout: opts.timeout.min(Duration::from_secs(5)),
            retries: opts.retries,
        };
        let snap = automata_bmc::ipmi::collect(&entry.address, &creds, &o).await?;
        return Ok(inventory::BmcInventory {
            snapshots: vec![snap],
            vendor: automata_bmc::redfish::oem::Vendor::Generic,
            requests: 0,
        });
    }
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

/// One BMC's sensor client, kept between polls: its session and where its chassis lead.
struct SensorTarget {
    entry: BmcEntry,
    client: Arc<RedfishClient>,
    topology: Option<automata_bmc::redfish::telemetry::Topology>,
    polls: u32,
}

/// What one sensor sweep did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TelemetrySweep {
    /// BMCs polled.
    pub bmcs: usize,
    /// BMCs that answered.
    pub ok: usize,
    /// Readings published.
    pub readings: usize,
    /// Wall time, ms.
    pub elapsed_ms: u64,
}

/// Polls every registered BMC's sensors every `every` and publishes the readings to
/// `telemetry.readings`, keyed by server. Sessions and each BMC's chassis topology are kept
/// between polls (the topology is re-read every 30 polls and after a failure).
pub struct SensorPoller {
    targets: std::collections::HashMap<String, SensorTarget>,
    cfg: BmcCollectorConfig,
}

impl SensorPoller {
    /// A poller with the collector's client settings.
    pub fn new(cfg: BmcCollectorConfig) -> Self {
        SensorPoller {
            targets: Default::default(),
            cfg,
        }
    }

    fn sync(&mut self, bmcs: Vec<(BmcEntry, Credentials)>) {
        let names: std::collections::HashSet<String> =
            bmcs.iter().map(|(e, _)| e.name.clone()).collect();
        self.targets.retain(|n, _| names.contains(n));
        for (entry, creds) in bmcs {
            let same = self
                .targets
                .get(&entry.name)
                .is_some_and(|t| t.entry == entry);
            if same {
                continue;
            }
            let mut o = self.cfg.client.clone();
            o.tls = entry.tls.clone();
            match RedfishClient::new(&entry.address, creds, o) {
                Ok(c) => {
                    self.targets.insert(
                        entry.name.clone(),
                        SensorTarget {
                            entry,
                            client: Arc::new(c),
                            topology: None,
                            polls: 0,
                        },
                    );
                }
                Err(e) => tracing::warn!(bmc = %entry.name, error = %e, "cannot build a client"),
            }
        }
    }

    /// One poll of every BMC in `bmcs`; readings go to `log`.
    pub async fn sweep(
        &mut self,
        log: &MessageLog,
        ids: &SchemaIds,
        bmcs: Vec<(BmcEntry, Credentials)>,
    ) -> Result<TelemetrySweep, ProducerError> {
        use automata_bmc::redfish::telemetry;
        use automata_schemas::catalog::TELEMETRY_READINGS;
        let spec = topic(TELEMETRY_READINGS).ok_or(ProducerError::NoSchema(TELEMETRY_READINGS))?;
        let schema_id = ids
            .get(TELEMETRY_READINGS)
            .ok_or(ProducerError::NoSchema(TELEMETRY_READINGS))?;
        // IPMI BMCs have no Redfish sensors (SDR readings come with the IPMI sensor collector).
        self.sync(
            bmcs.into_iter()
                .filter(|(e, _)| e.protocol == automata_bmc::Protocol::Redfish)
                .collect(),
        );
        let started = Instant::now();
        let mut report = TelemetrySweep {
            bmcs: self.targets.len(),
            ..Default::default()
        };
        let work: Vec<_> = self
            .targets
            .iter_mut()
            .map(|(name, t)| {
                let name = name.clone();
                let client = t.client.clone();
                let address = t.entry.address.clone();
                let topo = if t.polls % 30 == 0 {
                    None
                } else {
                    t.topology.clone()
                };
                async move {
                    let topo = match topo {
                        Some(t) => t,
                        None => match telemetry::topology(&client, &address).await {
                            Ok(t) => t,
                            Err(e) => return (name, None, Err(e.to_string())),
                        },
                    };
                    let (readings, errors) = telemetry::poll(&client, &topo).await;
                    (name, Some(topo), Ok((readings, errors)))
                }
            })
            .collect();
        let mut results =
            futures::stream::iter(work).buffer_unordered(self.cfg.fleet_concurrency.max(1));
        let mut batch = Vec::new();
        let mut outcomes = Vec::new();
        while let Some((name, topo, r)) = results.next().await {
            match r {
                Ok((readings, errors)) => {
                    if readings.is_empty() && !errors.is_empty() {
                        tracing::warn!(bmc = %name, errors = ?errors, "no sensor could be read");
                        outcomes.push((name, None));
                        continue;
                    }
                    report.ok += 1;
                    for r in &readings {
                        let bytes =
                            automata_schemas::encode(spec, schema_id, r).map_err(|source| {
                                ProducerError::Encode {
                                    collector: "redfish-sensors",
                                    source,
                                }
                            })?;
                        batch.push(
                            Record::new(r.server_id.clone(), bytes).with_timestamp(r.timestamp),
                        );
                    }
                    outcomes.push((name, topo));
                }
                Err(e) => {
                    tracing::warn!(bmc = %name, error = %e, "sensor poll failed");
                    outcomes.push((name, None));
                }
            }
        }
        drop(results);
        for (name, topo) in outcomes {
            if let Some(t) = self.targets.get_mut(&name) {
                t.polls = if topo.is_some() { t.polls + 1 } else { 0 };
                t.topology = topo;
            }
        }
        report.readings = batch.len();
        if !batch.is_empty() {
            let n = batch.len() as u64;
            match log.send_batch(TELEMETRY_READINGS, batch).await {
                Ok(_) => metrics::counter!("automata_collector_readings_total", "collector" => "redfish-sensors").increment(n),
                Err(e) => tracing::warn!(error = %e, "cannot publish BMC readings; the next poll reads them again"),
            }
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }
}

/// Polls every registered BMC's sensors every `every` until `shutdown`.
pub async fn run_sensors(
    log: MessageLog,
    ids: SchemaIds,
    registry: Arc<BmcRegistry>,
    every: Duration,
    cfg: BmcCollectorConfig,
    shutdown: CancellationToken,
) -> Result<(), ProducerError> {
    let mut poller = SensorPoller::new(cfg);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        match registry.list_with_credentials() {
            Ok(bmcs) if bmcs.is_empty() => {}
            Ok(bmcs) => {
                let r = poller.sweep(&log, &ids, bmcs).await?;
                tracing::debug!(
                    bmcs = r.bmcs,
                    ok = r.ok,
                    readings = r.readings,
                    elapsed_ms = r.elapsed_ms,
                    "sensor sweep done"
                );
            }
            Err(e) => tracing::error!(error = %e, "cannot read the BMC registry"),
        }
    }
}
