//! The out-of-band collectors: the inventory sweep (every registered BMC over Redfish or IPMI,
//! one inventory snapshot per server found behind it) and the sensor and log poller
//! ([`SensorPoller`]: readings to `telemetry.readings`, log entries to `telemetry.logs`).
//!
//! BMCs are swept concurrently (a fleet-wide cap) and each client keeps its own per-BMC request
//! limit, timeouts and retries, so one slow or dead BMC costs its own timeout and nothing else;
//! the poller also caps each BMC's share of a sweep (its budget). Credentials come from the
//! encrypted registry at connect time and never leave this task.
//!
//! ## Logs and events
//! Each BMC's logs are polled on the sensor cadence (or every `every_sweeps` sweeps): Redfish
//! LogServices through a discovery kept between polls (redone every `rediscover_every` polls and
//! after a failure) and a [`LogCursor`](automata_bmc::redfish::logs::LogCursor) per log; the
//! IPMI SEL after the last record id, in the same RMCP+ session as the sensors. Cursors move on
//! only after the entries were appended to the log and persist in one file ([`cursors`]): each
//! entry is published once, at-least-once across a crash between the append and the file write.
//! A first poll of a BMC publishes at most the newest `max_entries` per log (the health processor
//! treats entries older than its hold as history).
//!
//! Where a Redfish BMC offers Server-Sent Events, one task per BMC follows the stream through
//! the BMC's one client (so sensors, logs and events share its request limit) and publishes
//! entries as they arrive; while it is connected the BMC's logs are polled only every
//! `sse_every_sweeps` sweeps. When the stream gives up, polling returns to the normal cadence
//! and the stream is tried again after `sse_retry`. The same fault may then arrive twice, once
//! as an event (`redfish:events`) and once from its LogService: both carry the same
//! OriginOfCondition, so the health processor files both under one component or sensor subject
//! and the second changes nothing.

pub mod cursors;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use automata_bmc::ipmi::sdr::SdrRepository;
use automata_bmc::ipmi::{self, IpmiOptions, IpmiSession};
use automata_bmc::redfish::events::{self as rf_events, SseError, SseMessage, SseOptions};
use automata_bmc::redfish::inventory;
use automata_bmc::redfish::logs::{self as rf_logs, LogOptions, LogServiceInfo};
use automata_bmc::redfish::telemetry::{self, Topology};
use automata_bmc::registry::{BmcEntry, BmcRegistry, BmcStatus, StatusBoard};
use automata_bmc::{ClientOptions, Credentials, RedfishClient};
use automata_log::{MessageLog, Record};
use automata_schemas::SchemaIds;
use automata_schemas::catalog::{
    FIRMWARE_FINDINGS, FIRMWARE_SECUREBOOT, INVENTORY_SNAPSHOTS, TELEMETRY_LOGS,
    TELEMETRY_READINGS, TopicSpec, topic,
};
use automata_schemas::types::{HardwareLogEntry, TelemetryReading};
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::ProducerError;
use crate::findings::{SecureBootCheck, SecureBootOutcome};
use cursors::BmcCursors;

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
    /// The Secure Boot rules run on every system's Redfish keys, and what they last published.
    pub secure_boot: Arc<SecureBootCheck>,
}

impl Default for BmcCollectorConfig {
    fn default() -> Self {
        BmcCollectorConfig {
            every: Duration::from_secs(600),
            fleet_concurrency: 128,
            client: ClientOptions::default(),
            secure_boot: Arc::default(),
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
    /// Secure Boot finding changes published (`firmware.findings`).
    pub secure_boot_findings: usize,
    /// Wall time, ms.
    pub elapsed_ms: u64,
}

/// Publishes a server's Secure Boot outcome: findings to `firmware.findings` first, then the
/// summary to `firmware.secureboot` (so the summary never names findings not yet published).
async fn publish_secure_boot(
    log: &MessageLog,
    ids: &SchemaIds,
    outcome: SecureBootOutcome,
) -> Result<(), ProducerError> {
    fn encoded<T: serde::Serialize>(
        ids: &SchemaIds,
        name: &'static str,
        items: &[T],
        key: impl Fn(&T) -> String,
    ) -> Result<Vec<Record>, ProducerError> {
        let spec = topic(name).ok_or(ProducerError::NoSchema(name))?;
        let id = ids.get(name).ok_or(ProducerError::NoSchema(name))?;
        items
            .iter()
            .map(|v| {
                automata_schemas::encode(spec, id, v)
                    .map(|b| Record::new(key(v), b))
                    .map_err(|source| ProducerError::Encode {
                        collector: NAME,
                        source,
                    })
            })
            .collect()
    }
    let log_err = |source| ProducerError::Log {
        collector: NAME,
        source,
    };
    if !outcome.findings.is_empty() {
        let records = encoded(ids, FIRMWARE_FINDINGS, &outcome.findings, |f| {
            f.target.clone()
        })?;
        log.send_batch(FIRMWARE_FINDINGS, records)
            .await
            .map_err(log_err)?;
    }
    if let Some(s) = outcome.snapshot {
        let records = encoded(ids, FIRMWARE_SECUREBOOT, &[s], |s| s.server_id.clone())?;
        log.send_batch(FIRMWARE_SECUREBOOT, records)
            .await
            .map_err(log_err)?;
    }
    Ok(())
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
        return Ok(inventory::BmcInventory::ipmi(snap));
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
                for (server, sb) in &inv.secure_boot {
                    let now_ms = chrono::Utc::now().timestamp_millis();
                    let outcome = cfg.secure_boot.check(server, sb, now_ms);
                    report.secure_boot_findings += outcome.findings.len();
                    if let Err(e) = publish_secure_boot(log, ids, outcome).await {
                        tracing::warn!(bmc = %entry.name, error = %e, "cannot publish the Secure Boot state; the next sweep retries");
                        cfg.secure_boot.forget(server);
                    }
                }
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

// ---------------------------------------------------------------------------------------------
// Sensors and logs

/// How BMC logs and events are collected alongside the sensors (issue 5, "Events").
#[derive(Debug, Clone)]
pub struct LogCollectorConfig {
    /// Collect logs at all (off: sensors only, as the telemetry bench wants).
    pub enabled: bool,
    /// Poll each BMC's logs every this many sensor sweeps (1: every sweep).
    pub every_sweeps: u32,
    /// While a BMC's event stream is connected, poll its logs only every this many sweeps.
    pub sse_every_sweeps: u32,
    /// Re-discover a Redfish BMC's LogServices every this many log polls (and after a failure).
    pub rediscover_every: u32,
    /// Where cursors persist across restarts (None: in memory only, so a restart re-reads up to
    /// `logs.max_entries` newest entries per log).
    pub cursor_file: Option<PathBuf>,
    /// Follow Redfish event streams (SSE) where a BMC offers one.
    pub sse: bool,
    /// After an event stream gave up, wait this long before trying it again.
    pub sse_retry: Duration,
    /// Limits of each Redfish log poll (and of a first IPMI SEL read).
    pub logs: LogOptions,
    /// Limits and patience of each event stream.
    pub sse_options: SseOptions,
}

impl Default for LogCollectorConfig {
    fn default() -> Self {
        LogCollectorConfig {
            enabled: true,
            every_sweeps: 1,
            sse_every_sweeps: 10,
            rediscover_every: 60,
            cursor_file: None,
            sse: true,
            sse_retry: Duration::from_secs(600),
            logs: LogOptions::default(),
            sse_options: SseOptions::default(),
        }
    }
}

impl LogCollectorConfig {
    /// No log collection: the sensor poller of old.
    pub fn disabled() -> Self {
        LogCollectorConfig {
            enabled: false,
            sse: false,
            ..Default::default()
        }
    }

    /// Logs and events with cursors persisted in `path` (`<data>/bmc/log-cursors.json`).
    pub fn persisted(path: impl Into<PathBuf>) -> Self {
        LogCollectorConfig {
            cursor_file: Some(path.into()),
            ..Default::default()
        }
    }
}

/// A running event stream of one BMC: cancelled when dropped (the BMC left the registry, or the
/// poller stopped).
struct SseTask {
    cancel: CancellationToken,
    connected: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<Result<(), SseError>>,
}

impl Drop for SseTask {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A Redfish BMC's log services, and which server each one's entries belong to.
#[derive(Debug, Clone)]
struct Discovered {
    /// (server id, services), one group per server.
    groups: Vec<(String, Vec<LogServiceInfo>)>,
    /// The server the BMC's own logs and events are filed under (its first system).
    primary: String,
}

/// A Redfish BMC: one client shared by sensors, logs and events (so they share its limits).
struct RedfishLink {
    client: Arc<RedfishClient>,
    topology: Option<Topology>,
    polls: u32,
    logs: Option<Discovered>,
    log_polls: u32,
    sse: Option<SseTask>,
    sse_after: Option<Instant>,
}

/// An IPMI BMC: its credentials, the server id its inventory is filed under, and its SDR.
struct IpmiLink {
    creds: Credentials,
    server_id: Option<String>,
    /// Polls since the server id was learned (a fallback `ipmi:<address>` id is re-checked
    /// every 30, in case the GUID was only unreadable for a moment).
    id_polls: u32,
    sdr: Option<SdrRepository>,
}

enum Link {
    Redfish(Box<RedfishLink>),
    Ipmi(Box<IpmiLink>),
}

/// One BMC kept between polls: its link state and its committed log cursors.
struct SensorTarget {
    entry: BmcEntry,
    link: Link,
    cursors: BmcCursors,
    since_logs: u32,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TelemetrySweep {
    /// BMCs polled.
    pub bmcs: usize,
    /// BMCs that answered.
    pub ok: usize,
    /// Readings published.
    pub readings: usize,
    /// Log entries published (polled; event-stream entries are published as they arrive).
    pub log_entries: usize,
    /// Wall time, ms.
    pub elapsed_ms: u64,
}

/// The outcome of polling one BMC in one sweep.
struct PollOut {
    name: String,
    /// Readings, or why the BMC could not be polled at all.
    readings: Result<Vec<TelemetryReading>, String>,
    /// New log entries and the cursors that account for them (to commit once appended).
    logs: Option<(Vec<HardwareLogEntry>, BmcCursors)>,
}

/// Polls every registered BMC's sensors (Redfish and IPMI) and, unless disabled, its logs, and
/// publishes readings to `telemetry.readings` and log entries to `telemetry.logs`, keyed by
/// server. Sessions, each Redfish BMC's chassis topology and log services, and each IPMI BMC's
/// SDR and server id are kept between polls; log cursors persist in a file (see
/// [`cursors`]); Redfish event streams run as tasks of their own.
///
/// IPMI server ids: readings and SEL entries must land under the id the inventory collector
/// files the BMC's snapshot under. That id comes from [`automata_bmc::ipmi::to_snapshot`] (the
/// system GUID, or `ipmi:<address>` without a usable one), so the poller learns it the same way:
/// one [`automata_bmc::ipmi::collect`] on the first poll of a BMC, kept until a poll fails (the
/// BMC may have been replaced; a fallback `ipmi:<address>` id is also re-checked every 30 polls),
/// instead of trusting a status board that `run_sensors` does not get and that is empty until
/// the first inventory sweep.
pub struct SensorPoller {
    targets: HashMap<String, SensorTarget>,
    cfg: BmcCollectorConfig,
    logs: LogCollectorConfig,
    /// Cursors read from the file for BMCs not (yet) polled.
    loaded: BTreeMap<String, BmcCursors>,
    /// Cursors changed since the file was written.
    dirty: bool,
    budget: Duration,
}

impl SensorPoller {
    /// A sensors-only poller with the collector's client settings (no logs, no event streams).
    pub fn new(cfg: BmcCollectorConfig) -> Self {
        Self::with_logs(cfg, LogCollectorConfig::disabled())
    }

    /// A poller that also collects logs and events; cursors are loaded from `logs.cursor_file`
    /// (a damaged file is reported and replaced: at worst the newest entries are published again).
    pub fn with_logs(cfg: BmcCollectorConfig, logs: LogCollectorConfig) -> Self {
        let loaded = match &logs.cursor_file {
            Some(p) if logs.enabled => cursors::load(p).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "log cursors lost: the newest entries of each log are read again");
                BTreeMap::new()
            }),
            _ => BTreeMap::new(),
        };
        let budget = bmc_budget(&cfg.client);
        SensorPoller {
            targets: HashMap::new(),
            cfg,
            logs,
            loaded,
            dirty: false,
            budget,
        }
    }

    /// Caps the time one BMC may take in one sweep (default: four times the client's patience
    /// for one request, at least 30 s); a BMC past it is counted failed for that sweep.
    pub fn set_bmc_budget(&mut self, budget: Duration) {
        self.budget = budget.max(Duration::from_millis(1));
    }

    /// Whether the event stream of BMC `name` is connected now (for tests and status).
    pub fn sse_connected(&self, name: &str) -> bool {
        self.targets.get(name).is_some_and(|t| match &t.link {
            Link::Redfish(r) => r
                .sse
                .as_ref()
                .is_some_and(|s| s.connected.load(Ordering::Relaxed)),
            Link::Ipmi(_) => false,
        })
    }

    fn ipmi_options(&self) -> IpmiOptions {
        ipmi_options(&self.cfg.client)
    }

    fn sync(&mut self, bmcs: Vec<(BmcEntry, Credentials)>) {
        let names: HashSet<String> = bmcs.iter().map(|(e, _)| e.name.clone()).collect();
        self.targets.retain(|n, _| names.contains(n));
        self.loaded.retain(|n, _| names.contains(n));
        for (entry, creds) in bmcs {
            if let Some(t) = self.targets.get_mut(&entry.name)
                && t.entry == entry
            {
                // A password changed in the registry reaches IPMI at once (Redfish clients keep
                // theirs until the entry changes, as before).
                if let Link::Ipmi(i) = &mut t.link {
                    i.creds = creds;
                }
                continue;
            }
            let old = self.targets.remove(&entry.name);
            let cursors = old
                .map(|t| t.cursors)
                .or_else(|| self.loaded.remove(&entry.name))
                .filter(|c| c.address == entry.address)
                .unwrap_or_else(|| BmcCursors {
                    address: entry.address.clone(),
                    ..Default::default()
                });
            let link = match entry.protocol {
                automata_bmc::Protocol::Ipmi => Link::Ipmi(Box::new(IpmiLink {
                    creds,
                    server_id: None,
                    id_polls: 0,
                    sdr: None,
                })),
                automata_bmc::Protocol::Redfish => {
                    let mut o = self.cfg.client.clone();
                    o.tls = entry.tls.clone();
                    match RedfishClient::new(&entry.address, creds, o) {
                        Ok(c) => Link::Redfish(Box::new(RedfishLink {
                            client: Arc::new(c),
                            topology: None,
                            polls: 0,
                            logs: None,
                            log_polls: 0,
                            sse: None,
                            sse_after: None,
                        })),
                        Err(e) => {
                            tracing::warn!(bmc = %entry.name, error = %e, "cannot build a client");
                            self.loaded.insert(entry.name.clone(), cursors);
                            continue;
                        }
                    }
                }
            };
            self.targets.insert(
                entry.name.clone(),
                SensorTarget {
                    entry,
                    link,
                    cursors,
                    since_logs: u32::MAX,
                },
            );
        }
    }

    /// One poll of every BMC in `bmcs`; readings and log entries go to `log`.
    pub async fn sweep(
        &mut self,
        log: &MessageLog,
        ids: &SchemaIds,
        bmcs: Vec<(BmcEntry, Credentials)>,
    ) -> Result<TelemetrySweep, ProducerError> {
        let spec = topic(TELEMETRY_READINGS).ok_or(ProducerError::NoSchema(TELEMETRY_READINGS))?;
        let schema_id = ids
            .get(TELEMETRY_READINGS)
            .ok_or(ProducerError::NoSchema(TELEMETRY_READINGS))?;
        let log_schema = if self.logs.enabled {
            let s = topic(TELEMETRY_LOGS).ok_or(ProducerError::NoSchema(TELEMETRY_LOGS))?;
            let id = ids
                .get(TELEMETRY_LOGS)
                .ok_or(ProducerError::NoSchema(TELEMETRY_LOGS))?;
            Some((s, id))
        } else {
            None
        };
        self.sync(bmcs);
        self.reap_sse();
        let started = Instant::now();
        let mut report = TelemetrySweep {
            bmcs: self.targets.len(),
            ..Default::default()
        };
        let ipmi_opts = self.ipmi_options();
        let SensorPoller {
            targets,
            cfg,
            logs: lcfg,
            budget,
            ..
        } = &mut *self;
        let (lcfg, budget) = (&*lcfg, *budget);
        let ipmi_opts = &ipmi_opts;
        let work: Vec<_> = targets
            .iter_mut()
            .map(|(name, t)| {
                let streaming = matches!(&t.link, Link::Redfish(r) if r.sse.as_ref().is_some_and(|s| s.connected.load(Ordering::Relaxed)));
                let every = if streaming {
                    lcfg.sse_every_sweeps
                } else {
                    lcfg.every_sweeps
                };
                t.since_logs = t.since_logs.saturating_add(1);
                let logs_due = lcfg.enabled && t.since_logs >= every.max(1);
                if logs_due {
                    t.since_logs = 0;
                }
                let name = name.clone();
                async move {
                    let address = t.entry.address.clone();
                    // IPMI polls stop themselves at the budget and still close their session
                    // (BMCs hold only a few): the outer limit leaves them time for that.
                    let deadline = tokio::time::Instant::now() + budget;
                    let polled = tokio::time::timeout(budget + IPMI_CLOSE_GRACE, async {
                        match &mut t.link {
                            Link::Redfish(r) => {
                                poll_redfish(r, &address, &t.cursors, logs_due, lcfg).await
                            }
                            Link::Ipmi(i) => {
                                poll_ipmi(
                                    i, &address, ipmi_opts, &t.cursors, logs_due, lcfg, deadline,
                                )
                                .await
                            }
                        }
                    })
                    .await;
                    let (readings, logs) = match polled {
                        Ok(x) => x,
                        Err(_) => {
                            // Cut off mid-poll: forget what may be half-read.
                            match &mut t.link {
                                Link::Redfish(r) => {
                                    r.topology = None;
                                    r.polls = 0;
                                }
                                Link::Ipmi(i) => i.server_id = None,
                            }
                            (
                                Err(format!(
                                    "no answer within the budget of {:.0} s",
                                    budget.as_secs_f64()
                                )),
                                None,
                            )
                        }
                    };
                    PollOut {
                        name,
                        readings,
                        logs,
                    }
                }
            })
            .collect();
        let mut results =
            futures::stream::iter(work).buffer_unordered(cfg.fleet_concurrency.max(1));
        let mut batch = Vec::new();
        let mut log_batch = Vec::new();
        let mut pending = Vec::new();
        while let Some(out) = results.next().await {
            match out.readings {
                Ok(readings) => {
                    report.ok += 1;
                    for r in &readings {
                        let bytes =
                            automata_schemas::encode(spec, schema_id, r).map_err(|source| {
                                ProducerError::Encode {
                                    collector: "bmc-sensors",
                                    source,
                                }
                            })?;
                        batch.push(
                            Record::new(r.server_id.clone(), bytes).with_timestamp(r.timestamp),
                        );
                    }
                }
                Err(e) => tracing::warn!(bmc = %out.name, error = %e, "sensor poll failed"),
            }
            if let (Some((entries, cursors)), Some((lspec, lid))) = (out.logs, log_schema) {
                for e in &entries {
                    log_batch.push(encode_entry(lspec, lid, e)?);
                }
                pending.push((out.name, cursors));
            }
        }
        drop(results);
        report.readings = batch.len();
        if !batch.is_empty() {
            let n = batch.len() as u64;
            match log.send_batch(TELEMETRY_READINGS, batch).await {
                Ok(_) => metrics::counter!("automata_collector_readings_total", "collector" => "redfish-sensors").increment(n),
                Err(e) => tracing::warn!(error = %e, "cannot publish BMC readings; the next poll reads them again"),
            }
        }
        let appended = if log_batch.is_empty() {
            true
        } else {
            let n = log_batch.len();
            match log.send_batch(TELEMETRY_LOGS, log_batch).await {
                Ok(_) => {
                    report.log_entries = n;
                    metrics::counter!("automata_collector_log_entries_total", "collector" => "bmc-logs").increment(n as u64);
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot publish BMC log entries; the next poll reads them again");
                    false
                }
            }
        };
        if appended {
            // Only now may the cursors move on: an entry is never skipped, and a crash before
            // the file is written re-reads it (at-least-once at worst).
            for (name, c) in pending {
                if let Some(t) = self.targets.get_mut(&name)
                    && t.cursors != c
                {
                    t.cursors = c;
                    self.dirty = true;
                }
            }
            self.save_cursors();
        }
        if let Some((lspec, lid)) = log_schema {
            self.start_sse(log, lspec, lid);
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Writes the cursor file if anything moved (a failure is retried after the next sweep).
    fn save_cursors(&mut self) {
        let Some(path) = &self.logs.cursor_file else {
            return;
        };
        if !self.dirty {
            return;
        }
        let mut all = self.loaded.clone();
        for (n, t) in &self.targets {
            all.insert(n.clone(), t.cursors.clone());
        }
        match cursors::save(path, &all) {
            Ok(()) => self.dirty = false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot save log cursors; retried after the next sweep")
            }
        }
    }

    /// Collects event streams that ended: an error means polling at the normal cadence until
    /// `sse_retry` has passed.
    fn reap_sse(&mut self) {
        let retry = self.logs.sse_retry;
        for (name, t) in &mut self.targets {
            let Link::Redfish(r) = &mut t.link else {
                continue;
            };
            if !r.sse.as_ref().is_some_and(|s| s.handle.is_finished()) {
                continue;
            }
            let Some(mut task) = r.sse.take() else {
                continue;
            };
            let wait = match (&mut task.handle).now_or_never() {
                Some(Ok(Err(SseError::NotOffered))) => {
                    tracing::debug!(bmc = %name, "no event stream offered: logs are polled");
                    retry.saturating_mul(6)
                }
                Some(Ok(Err(e))) => {
                    tracing::info!(bmc = %name, error = %e, "event stream given up: logs are polled until it is tried again");
                    retry
                }
                Some(Ok(Ok(()))) => retry,
                Some(Err(e)) => {
                    tracing::warn!(bmc = %name, error = %e, "event stream task failed");
                    retry
                }
                None => retry,
            };
            r.sse_after = Some(Instant::now() + wait);
        }
    }

    /// Starts an event stream for each Redfish BMC whose logs are known and that has none.
    fn start_sse(&mut self, log: &MessageLog, spec: &'static TopicSpec, schema_id: u32) {
        if !self.logs.sse {
            return;
        }
        let now = Instant::now();
        for (name, t) in &mut self.targets {
            let Link::Redfish(r) = &mut t.link else {
                continue;
            };
            if r.sse.is_some() || r.sse_after.is_some_and(|a| now < a) {
                continue;
            }
            let Some(d) = &r.logs else { continue };
            let cancel = CancellationToken::new();
            let connected = Arc::new(AtomicBool::new(false));
            let handle = tokio::spawn(follow_events(
                r.client.clone(),
                name.clone(),
                d.primary.clone(),
                log.clone(),
                (spec, schema_id),
                cancel.clone(),
                connected.clone(),
                self.logs.sse_options.clone(),
            ));
            r.sse = Some(SseTask {
                cancel,
                connected,
                handle,
            });
        }
    }
}

/// How long one BMC may take in one sweep by default.
fn bmc_budget(client: &ClientOptions) -> Duration {
    client
        .timeout
        .saturating_mul(client.retries.saturating_add(1))
        .saturating_mul(4)
        .max(Duration::from_secs(30))
}

/// The IPMI patience the inventory collector uses too.
fn ipmi_options(client: &ClientOptions) -> IpmiOptions {
    IpmiOptions {
        timeout: client.timeout.min(Duration::from_secs(5)),
        retries: client.retries,
    }
}

fn encode_entry(
    spec: &TopicSpec,
    schema_id: u32,
    e: &HardwareLogEntry,
) -> Result<Record, ProducerError> {
    let bytes =
        automata_schemas::encode(spec, schema_id, e).map_err(|source| ProducerError::Encode {
            collector: "bmc-logs",
            source,
        })?;
    Ok(Record::new(e.server_id.clone(), bytes).with_timestamp(e.observed_at))
}

/// One sweep of a Redfish BMC: sensors through the cached topology, then (when due) its logs
/// through the cached discovery, on a copy of the cursors.
async fn poll_redfish(
    r: &mut RedfishLink,
    address: &str,
    committed: &BmcCursors,
    logs_due: bool,
    lcfg: &LogCollectorConfig,
) -> (
    Result<Vec<TelemetryReading>, String>,
    Option<(Vec<HardwareLogEntry>, BmcCursors)>,
) {
    let topo = match r.topology.take().filter(|_| !r.polls.is_multiple_of(30)) {
        Some(t) => t,
        None => match telemetry::topology(&r.client, address).await {
            Ok(t) => t,
            Err(e) => {
                r.polls = 0;
                return (Err(e.to_string()), None);
            }
        },
    };
    let (readings, errors) = telemetry::poll(&r.client, &topo).await;
    let readings = if readings.is_empty() && !errors.is_empty() {
        r.polls = 0;
        Err(format!("no sensor could be read: {errors:?}"))
    } else {
        r.polls += 1;
        r.topology = Some(topo);
        Ok(readings)
    };
    if !logs_due || readings.is_err() {
        return (readings, None);
    }
    if r.logs.is_none() || r.log_polls >= lcfg.rediscover_every.max(1) {
        match discover(&r.client, address, &lcfg.logs).await {
            Ok((d, errors)) => {
                if !errors.is_empty() {
                    tracing::debug!(address, errors = ?errors, "some log services could not be listed");
                }
                r.logs = Some(d);
                r.log_polls = 0;
            }
            Err(e) => {
                tracing::warn!(address, error = %e, "cannot discover the BMC's logs");
                r.logs = None;
                return (readings, None);
            }
        }
    }
    let Some(d) = &r.logs else {
        return (readings, None);
    };
    r.log_polls += 1;
    let mut pending = committed.clone();
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (sid, services) in &d.groups {
        let p = rf_logs::poll_services(&r.client, sid, services, &mut pending.redfish, &lcfg.logs)
            .await;
        entries.extend(p.entries);
        errors.extend(p.errors);
    }
    if !errors.is_empty() {
        tracing::warn!(address, errors = ?errors, "some logs could not be read; rediscovering next time");
        r.logs = None;
    }
    (readings, Some((entries, pending)))
}

/// Discovers a Redfish BMC's log services and files each under the server of the system it
/// hangs off (Managers' and Chassis' logs under the BMC's first system).
async fn discover(
    client: &RedfishClient,
    address: &str,
    opts: &LogOptions,
) -> Result<(Discovered, Vec<String>), automata_bmc::BmcError> {
    use automata_bmc::redfish::{SERVICE_ROOT, odata_id};
    let (services, errors) = rf_logs::discover(client, opts).await?;
    let root = client.get(SERVICE_ROOT).await?;
    let mut systems: Vec<(String, String)> = Vec::new();
    if let Some(u) = root.get("Systems").and_then(odata_id) {
        for s in client.members(&u).await? {
            if let Some(id) = odata_id(&s) {
                systems.push((id, inventory::server_id(&s, address).0));
            }
        }
    }
    systems.sort();
    let primary = systems
        .first()
        .map(|(_, s)| s.clone())
        .unwrap_or_else(|| format!("bmc:{address}"));
    let mut groups: Vec<(String, Vec<LogServiceInfo>)> = Vec::new();
    for s in services {
        let sid = systems
            .iter()
            .find(|(uri, _)| {
                s.uri
                    .strip_prefix(uri.trim_end_matches('/'))
                    .is_some_and(|rest| rest.starts_with('/'))
            })
            .map(|(_, sid)| sid.clone())
            .unwrap_or_else(|| primary.clone());
        match groups.iter_mut().find(|(g, _)| *g == sid) {
            Some((_, v)) => v.push(s),
            None => groups.push((sid, vec![s])),
        }
    }
    Ok((Discovered { groups, primary }, errors))
}

/// One sweep of an IPMI BMC in one RMCP+ session: the SDR (read once, re-read when the BMC
/// changed it), every threshold sensor and DCMI power, then (when due) the SEL after the cursor.
async fn poll_ipmi(
    i: &mut IpmiLink,
    address: &str,
    opts: &IpmiOptions,
    committed: &BmcCursors,
    logs_due: bool,
    lcfg: &LogCollectorConfig,
    deadline: tokio::time::Instant,
) -> (
    Result<Vec<TelemetryReading>, String>,
    Option<(Vec<HardwareLogEntry>, BmcCursors)>,
) {
    i.id_polls = i.id_polls.saturating_add(1);
    let stale = i
        .server_id
        .as_deref()
        .is_some_and(|s| s.starts_with("ipmi:") && i.id_polls >= 30);
    let sid = match &i.server_id {
        Some(s) if !stale => s.clone(),
        _ => match ipmi::collect(address, &i.creds, opts).await {
            Ok(snap) => {
                i.server_id = Some(snap.server_id.clone());
                i.id_polls = 0;
                snap.server_id
            }
            Err(e) => return (Err(e.to_string()), None),
        },
    };
    let mut s = match IpmiSession::open(address, &i.creds, opts).await {
        Ok(s) => s,
        Err(e) => {
            i.server_id = None;
            return (Err(e.to_string()), None);
        }
    };
    let work = async {
        let repo = match i.sdr.take() {
            Some(r) => Ok(r),
            None => s.read_sdr().await,
        };
        let readings = match repo {
            Ok(mut repo) => {
                let r = s.poll_sensors(&mut repo, &sid).await;
                i.sdr = Some(repo);
                r.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let logs = if logs_due && readings.is_ok() {
            read_sel_entries(&mut s, address, &sid, committed, i.sdr.as_ref(), lcfg).await
        } else {
            None
        };
        (readings, logs)
    };
    let (readings, logs) = match tokio::time::timeout_at(deadline, work).await {
        Ok(x) => x,
        // Out of budget mid-poll: what was half-read is dropped (the SDR is read again).
        Err(_) => (Err("no answer within the poll budget".to_string()), None),
    };
    if readings.is_err() {
        i.server_id = None;
    }
    match tokio::time::timeout(IPMI_CLOSE_GRACE, s.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(address, error = %e, "Close Session failed"),
        Err(_) => tracing::debug!(address, "Close Session unanswered"),
    }
    (readings, logs)
}

/// How long a poll cut at its budget may still take to close its IPMI session.
const IPMI_CLOSE_GRACE: Duration = Duration::from_secs(3);

/// New SEL entries since the committed cursor (a first read keeps the newest `max_entries`),
/// with the cursor to commit once they are published.
async fn read_sel_entries(
    s: &mut IpmiSession,
    address: &str,
    sid: &str,
    committed: &BmcCursors,
    sdr: Option<&SdrRepository>,
    lcfg: &LogCollectorConfig,
) -> Option<(Vec<HardwareLogEntry>, BmcCursors)> {
    let mut pending = committed.clone();
    let after = if pending.sel_read {
        pending.sel_last
    } else {
        None
    };
    match s.read_sel(sid, after, sdr).await {
        Ok((mut entries, last)) => {
            if !pending.sel_read && entries.len() > lcfg.logs.max_entries {
                // A first read takes the newest entries only, as Redfish logs do.
                let skip = entries.len() - lcfg.logs.max_entries;
                entries.drain(..skip);
            }
            pending.sel_read = true;
            pending.sel_last = last;
            Some((entries, pending))
        }
        Err(e) => {
            tracing::warn!(address, error = %e, "cannot read the SEL");
            None
        }
    }
}

/// One BMC's event stream: entries are published as they arrive; `connected` says whether the
/// stream is open (polling slows down meanwhile). Returns `run_sse`'s verdict.
#[allow(clippy::too_many_arguments)]
async fn follow_events(
    client: Arc<RedfishClient>,
    bmc: String,
    server_id: String,
    log: MessageLog,
    (spec, schema_id): (&'static TopicSpec, u32),
    cancel: CancellationToken,
    connected: Arc<AtomicBool>,
    opts: SseOptions,
) -> Result<(), SseError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SseMessage>(256);
    let run = rf_events::run_sse(&client, &server_id, tx, cancel.clone(), &opts);
    let publish = async {
        while let Some(m) = rx.recv().await {
            let mut entries = Vec::new();
            let handle = |m: SseMessage, entries: &mut Vec<HardwareLogEntry>| match m {
                SseMessage::Connected => {
                    tracing::info!(bmc = %bmc, "event stream connected");
                    connected.store(true, Ordering::Relaxed);
                }
                SseMessage::Entry(e) => entries.push(e),
                SseMessage::Problem(p) => {
                    if p.ends_with("reconnecting") {
                        connected.store(false, Ordering::Relaxed);
                    }
                    tracing::debug!(bmc = %bmc, problem = %p, "event stream");
                }
            };
            handle(m, &mut entries);
            while let Ok(m) = rx.try_recv() {
                handle(m, &mut entries);
            }
            if entries.is_empty() {
                continue;
            }
            let mut records = Vec::with_capacity(entries.len());
            for e in &entries {
                match encode_entry(spec, schema_id, e) {
                    Ok(r) => records.push(r),
                    Err(e) => tracing::error!(bmc = %bmc, error = %e, "cannot encode an event"),
                }
            }
            let n = records.len() as u64;
            match log.send_batch(TELEMETRY_LOGS, records).await {
                Ok(_) => metrics::counter!("automata_collector_log_entries_total", "collector" => "bmc-events").increment(n),
                // The same fault is in the BMC's LogService too, which polling still reads.
                Err(e) => tracing::warn!(bmc = %bmc, error = %e, "cannot publish events; the log poll will carry them"),
            }
        }
    };
    let (r, ()) = tokio::join!(run, publish);
    connected.store(false, Ordering::Relaxed);
    r
}

/// Polls every registered BMC's sensors (and logs, without persisted cursors) every `every`
/// until `shutdown`; see [`run_sensors_with`].
pub async fn run_sensors(
    log: MessageLog,
    ids: SchemaIds,
    registry: Arc<BmcRegistry>,
    every: Duration,
    cfg: BmcCollectorConfig,
    shutdown: CancellationToken,
) -> Result<(), ProducerError> {
    run_sensors_with(
        log,
        ids,
        registry,
        every,
        cfg,
        LogCollectorConfig::default(),
        shutdown,
    )
    .await
}

/// Polls every registered BMC's sensors and logs every `every` until `shutdown` (event streams
/// stop with it).
pub async fn run_sensors_with(
    log: MessageLog,
    ids: SchemaIds,
    registry: Arc<BmcRegistry>,
    every: Duration,
    cfg: BmcCollectorConfig,
    logs: LogCollectorConfig,
    shutdown: CancellationToken,
) -> Result<(), ProducerError> {
    let mut poller = SensorPoller::with_logs(cfg, logs);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        match registry.list_with_credentials() {
            // An empty registry still sweeps: BMCs that left it lose their event streams.
            Ok(bmcs) => {
                let r = tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    r = poller.sweep(&log, &ids, bmcs) => r?,
                };
                tracing::debug!(
                    bmcs = r.bmcs,
                    ok = r.ok,
                    readings = r.readings,
                    log_entries = r.log_entries,
                    elapsed_ms = r.elapsed_ms,
                    "sensor sweep done"
                );
            }
            Err(e) => tracing::error!(error = %e, "cannot read the BMC registry"),
        }
    }
}
