//! `metal-automata agent`: the in-band agent. It publishes this server's inventory when it changes
//! (and at least hourly), its sensors, hardware error counters and kernel hardware errors every
//! telemetry interval, and enrolls its TPM once at start, to the service's HTTP API or, with
//! `--direct`, straight to the message log.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use automata_agent::{TelemetrySample, TelemetryState};
use automata_producers::findings::{LiveKeys, SecureBootCheck, SecureBootOutcome};
use automata_schemas::catalog::{
    FIRMWARE_FINDINGS, FIRMWARE_SECUREBOOT, INVENTORY_SNAPSHOTS, TELEMETRY_LOGS,
    TELEMETRY_READINGS, topic,
};
use automata_schemas::types::InventorySnapshot;
use serde::Serialize;
use serde_json::Value;

use crate::client::ApiClient;
use crate::output::Output;

/// `agent`.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Collect the inventory once, print it, and exit.
    #[arg(long)]
    pub once: bool,
    /// Collect telemetry (sensors, error counters, kernel hardware errors) once, print, exit.
    #[arg(long, conflicts_with = "once")]
    pub telemetry_once: bool,
    /// Seconds between inventory collections (a snapshot is sent when something changed, and
    /// at least every hour).
    #[arg(long, default_value_t = 300)]
    pub interval: u64,
    /// Seconds between telemetry collections (0: none).
    #[arg(long, default_value_t = 60)]
    pub telemetry_interval: u64,
    /// Publish straight to the message log from the config (Kafka) instead of the service's
    /// HTTP ingest endpoint.
    #[arg(long)]
    pub direct: bool,
    /// Root of the file system to read (for containers that mount the host's /sys and /proc).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Never run external tools (smartctl).
    #[arg(long)]
    pub no_external_tools: bool,
    /// Do not enroll the TPM at start (by default it is enrolled when one is present).
    #[arg(long)]
    pub no_tpm: bool,
    /// Where the agent keeps its telemetry cursors (kernel log position, error-counter
    /// baselines), so a restart does not report old events again.
    #[arg(long, default_value = "/var/lib/metal-automata/agent")]
    pub state_dir: PathBuf,
}

/// Where the agent's records go.
enum Sink {
    Http(ApiClient),
    Log(automata_log::MessageLog, automata_schemas::SchemaIds),
}

impl Sink {
    async fn inventory(&self, s: &InventorySnapshot) -> Result<()> {
        match self {
            Sink::Http(api) => {
                api.post("/api/v1/ingest/inventory", &serde_json::to_value(s)?)
                    .await?;
            }
            Sink::Log(log, ids) => {
                let rec = encode(ids, INVENTORY_SNAPSHOTS, s, &s.server_id, s.collected_at)?;
                log.send(INVENTORY_SNAPSHOTS, rec).await?;
                log.flush(Duration::from_secs(10)).await.ok();
            }
        }
        Ok(())
    }

    async fn telemetry(&self, t: &TelemetrySample) -> Result<()> {
        if t.readings.is_empty() && t.logs.is_empty() {
            return Ok(());
        }
        match self {
            Sink::Http(api) => {
                let body = serde_json::json!({"readings": t.readings, "logs": t.logs});
                api.post("/api/v1/ingest/telemetry", &body).await?;
            }
            Sink::Log(log, ids) => {
                let readings = t
                    .readings
                    .iter()
                    .map(|r| encode(ids, TELEMETRY_READINGS, r, &r.server_id, r.timestamp))
                    .collect::<Result<Vec<_>>>()?;
                let logs = t
                    .logs
                    .iter()
                    .map(|l| encode(ids, TELEMETRY_LOGS, l, &l.server_id, l.observed_at))
                    .collect::<Result<Vec<_>>>()?;
                log.send_batch(TELEMETRY_READINGS, readings).await?;
                log.send_batch(TELEMETRY_LOGS, logs).await?;
                log.flush(Duration::from_secs(10)).await.ok();
            }
        }
        Ok(())
    }
}

impl Sink {
    /// Publishes what changed in this machine's Secure Boot keys: findings, then the summary.
    async fn secure_boot(&self, o: &SecureBootOutcome) -> Result<()> {
        let snapshots: Vec<_> = o.snapshot.iter().cloned().collect();
        if o.findings.is_empty() && snapshots.is_empty() {
            return Ok(());
        }
        match self {
            Sink::Http(api) => {
                let body = serde_json::json!({"findings": o.findings, "secure_boot": snapshots});
                api.post("/api/v1/firmware/events", &body).await?;
            }
            Sink::Log(log, ids) => {
                let findings = o
                    .findings
                    .iter()
                    .map(|f| encode(ids, FIRMWARE_FINDINGS, f, &f.target, f.first_seen))
                    .collect::<Result<Vec<_>>>()?;
                let snaps = snapshots
                    .iter()
                    .map(|s| encode(ids, FIRMWARE_SECUREBOOT, s, &s.server_id, s.observed_at))
                    .collect::<Result<Vec<_>>>()?;
                log.send_batch(FIRMWARE_FINDINGS, findings).await?;
                log.send_batch(FIRMWARE_SECUREBOOT, snaps).await?;
                log.flush(Duration::from_secs(10)).await.ok();
            }
        }
        Ok(())
    }
}

/// Reads this machine's Secure Boot keys from efivarfs and judges them: what to publish
/// (nothing on a machine without UEFI, or when nothing changed).
fn check_efivars(
    check: &SecureBootCheck,
    root: &std::path::Path,
    server_id: &str,
) -> Option<SecureBootOutcome> {
    let efi = match automata_agent::efivars::read(root) {
        Ok(Some(efi)) => efi,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the Secure Boot variables");
            return None;
        }
    };
    let (keys, notes) = LiveKeys::from_efivars(&efi);
    for n in notes {
        tracing::warn!(note = %n, "a Secure Boot variable did not parse");
    }
    let now = chrono::Utc::now().timestamp_millis();
    Some(check.check_keys(server_id, &keys, now))
}

fn encode<T: Serialize>(
    ids: &automata_schemas::SchemaIds,
    name: &str,
    value: &T,
    key: &str,
    at: i64,
) -> Result<automata_log::Record> {
    let spec = topic(name).with_context(|| format!("no topic {name}"))?;
    let id = ids
        .get(name)
        .with_context(|| format!("no schema id for {name}"))?;
    let bytes = automata_schemas::encode(spec, id, value)?;
    Ok(automata_log::Record::new(key.to_string(), bytes).with_timestamp(at))
}

/// The telemetry cursors saved across restarts; a missing or unreadable file starts afresh.
fn load_state(path: &std::path::Path) -> TelemetryState {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_state(path: &std::path::Path, state: &TelemetryState) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(state)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Runs the agent.
pub async fn run(
    cfg: crate::config::Config,
    api: Result<ApiClient>,
    a: AgentArgs,
    out: &Output,
) -> Result<()> {
    let opts = automata_agent::Options {
        root: a.root.clone(),
        run_external_tools: !a.no_external_tools,
    };
    if a.once {
        let r = tokio::task::spawn_blocking(move || automata_agent::collect(&opts)).await?;
        return out.agent_report(&r);
    }
    if a.telemetry_once {
        let t = tokio::task::spawn_blocking(move || {
            automata_agent::collect_telemetry(&opts, &mut TelemetryState::default())
        })
        .await?;
        return out.json(&serde_json::json!({
            "readings": t.readings, "logs": t.logs, "errors": t.errors,
        }));
    }
    // TPM enrollment: at start, and again with backoff (1 min doubling to 1 h) while the
    // service cannot be reached or the TPM cannot be read.
    let tpm_api = match (a.no_tpm, a.direct, &api) {
        (false, false, Ok(api)) => Some(api.clone()),
        _ => None,
    };
    let mut tpm_next = tpm_api.as_ref().map(|_| Instant::now());
    let mut tpm_backoff = Duration::from_secs(60);
    let sb_check = SecureBootCheck::default();
    let sink = if a.direct {
        let data = cfg.data_dir();
        let log =
            automata_log::MessageLog::open(&cfg.log, &data).context("opening the message log")?;
        let shutdown = tokio_util::sync::CancellationToken::new();
        let schemas = crate::registry::start(&cfg, &log, shutdown).await?;
        Sink::Log(log, schemas.ids())
    } else {
        Sink::Http(api?)
    };
    let state_path = a.state_dir.join("telemetry-state.json");
    let mut state = load_state(&state_path);
    let mut last: Option<(Value, Instant)> = None;
    let mut next_inventory = Instant::now();
    let telemetry_every =
        (a.telemetry_interval > 0).then(|| Duration::from_secs(a.telemetry_interval.max(5)));
    let mut next_telemetry = Instant::now();
    loop {
        let now = Instant::now();
        if let (Some(api), Some(at)) = (&tpm_api, tpm_next)
            && now >= at
        {
            match crate::tpm::enroll_if_present(api, &opts.root).await {
                Ok(Some(r)) => {
                    tracing::info!(status = %r.status, ek = %r.ek_fingerprint, reason = %r.reason, "TPM enrollment");
                    tpm_next = None;
                }
                Ok(None) => {
                    tracing::info!("no TPM: nothing to enroll");
                    tpm_next = None;
                }
                Err(e) => {
                    eprintln!(
                        "warning: TPM enrollment failed ({e:#}); retrying in {}",
                        humantime::format_duration(tpm_backoff)
                    );
                    tpm_next = Some(now + tpm_backoff);
                    tpm_backoff = (tpm_backoff * 2).min(Duration::from_secs(3600));
                }
            }
        }
        if now >= next_inventory {
            next_inventory = now + Duration::from_secs(a.interval.max(5));
            let o = opts.clone();
            let r = tokio::task::spawn_blocking(move || automata_agent::collect(&o)).await?;
            // Compare without the timestamp: send on change, and at least hourly.
            let mut fingerprint = serde_json::to_value(&r.snapshot)?;
            fingerprint["collected_at"] = Value::Null;
            let due = last
                .as_ref()
                .is_none_or(|(f, t)| *f != fingerprint || t.elapsed() > Duration::from_secs(3600));
            if due {
                match sink.inventory(&r.snapshot).await {
                    Ok(()) => {
                        tracing::info!(server_id = %r.snapshot.server_id, components = r.snapshot.components.len(), "inventory published");
                        last = Some((fingerprint, Instant::now()));
                    }
                    Err(e) => eprintln!(
                        "warning: cannot publish the inventory ({e:#}); retrying next interval"
                    ),
                }
            }
            // Secure Boot keys, in band: published when they (or their findings) change.
            let server_id = r.snapshot.server_id.clone();
            if let Some(o) = check_efivars(&sb_check, &opts.root, &server_id)
                && let Err(e) = sink.secure_boot(&o).await
            {
                eprintln!(
                    "warning: cannot publish the Secure Boot state ({e:#}); retrying next interval"
                );
                sb_check.forget(&server_id);
            }
        }
        if let Some(every) = telemetry_every.filter(|_| now >= next_telemetry) {
            next_telemetry = now + every;
            let (o, mut st) = (opts.clone(), state.clone());
            let (t, st) = tokio::task::spawn_blocking(move || {
                let t = automata_agent::collect_telemetry(&o, &mut st);
                (t, st)
            })
            .await?;
            for e in &t.errors {
                tracing::debug!(error = %e, "telemetry: a source could not be read");
            }
            match sink.telemetry(&t).await {
                // Only a published sample moves the cursors: a failed one is read again.
                Ok(()) => {
                    state = st;
                    if let Err(e) = save_state(&state_path, &state) {
                        tracing::warn!(error = %e, path = %state_path.display(), "cannot save the telemetry cursors");
                    }
                    tracing::debug!(
                        readings = t.readings.len(),
                        logs = t.logs.len(),
                        "telemetry published"
                    );
                }
                Err(e)
                    if e.downcast_ref::<crate::client::ApiRefused>()
                        .is_some_and(|r| r.is_permanent()) =>
                {
                    // The service will never take this sample: drop it rather than block
                    // every later one behind it.
                    tracing::error!(error = %e, readings = t.readings.len(), logs = t.logs.len(), "the service refused this telemetry sample for good; dropped");
                    state = st;
                    if let Err(e) = save_state(&state_path, &state) {
                        tracing::warn!(error = %e, path = %state_path.display(), "cannot save the telemetry cursors");
                    }
                }
                Err(e) => eprintln!("warning: cannot publish telemetry ({e:#}); retrying"),
            }
        }
        let mut wake =
            telemetry_every.map_or(next_inventory, |_| next_inventory.min(next_telemetry));
        if let Some(at) = tpm_next {
            wake = wake.min(at);
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}
