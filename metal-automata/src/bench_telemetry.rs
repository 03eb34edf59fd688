//! `metal-automata bench telemetry`: the time of a full sensor sweep over N simulated BMCs, cold
//! (sessions and chassis topology read first) and warm, with the readings written to an embedded
//! log as the collector does.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use automata_bmc::registry::BmcEntry;
use automata_bmc::{Credentials, TlsPolicy};
use automata_schemas::SchemaIds;
use automata_schemas::catalog::{TELEMETRY_READINGS, topic};
use serde::Serialize;

/// `bench telemetry` options.
#[derive(Debug, clap::Args)]
pub struct TelemetryBenchArgs {
    /// Simulated BMCs.
    #[arg(long, default_value_t = 1000)]
    pub servers: usize,
    /// BMCs polled at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Warm sweeps to time after the first.
    #[arg(long, default_value_t = 3)]
    pub sweeps: usize,
    /// The first simulated BMC's address; the others take the next loopback IPs.
    #[arg(long, default_value = "127.5.0.1:8000")]
    pub listen: std::net::SocketAddr,
}

/// One sweep's figures.
#[derive(Debug, Serialize)]
pub struct SweepFigure {
    /// cold (first) or warm.
    pub kind: &'static str,
    /// Wall time, s.
    pub secs: f64,
    /// BMCs that answered.
    pub ok: usize,
    /// Readings published.
    pub readings: usize,
    /// Readings per second.
    pub readings_per_sec: f64,
}

/// What `bench telemetry` measured.
#[derive(Debug, Serialize)]
pub struct TelemetryBench {
    /// BMCs.
    pub bmcs: usize,
    /// Each sweep.
    pub sweeps: Vec<SweepFigure>,
}

/// Runs the bench.
pub async fn run(a: TelemetryBenchArgs, table: bool) -> Result<TelemetryBench> {
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let sim = crate::simulate::SimulateArgs {
        servers: a.servers,
        seed: 1,
        mockups: None,
        listen: a.listen,
        port_per_server: false,
        control: "127.0.0.1:0".parse()?,
        username: "admin".into(),
        password_file: None,
        power_delay: Duration::from_secs(3),
        update_time: Duration::from_secs(10),
        fault_rates: Vec::new(),
        faults: None,
        out: tmp.path().join("sim"),
        page_size: 0,
    };
    let (mut cfg, _) = crate::simulate::config(&sim)?;
    cfg.ground_truth = None;
    let password = cfg.credentials.password.clone();
    let fleet = automata_simulator::Fleet::start(cfg).await?;

    let mut lc = automata_log::LogConfig {
        backend: automata_log::Backend::Embedded,
        ..Default::default()
    };
    lc.embedded.dir = Some(tmp.path().join("log"));
    let log = automata_log::MessageLog::open(&lc, tmp.path())?;
    let spec = topic(TELEMETRY_READINGS).context("no telemetry topic")?;
    log.ensure_topics(&[spec.log_config()]).await?;
    let ids = SchemaIds::new(HashMap::from([(TELEMETRY_READINGS.to_string(), 1)]));

    let bmcs: Vec<(BmcEntry, Credentials)> = fleet
        .endpoints
        .iter()
        .map(|e| {
            (
                BmcEntry {
                    name: e.name.clone(),
                    address: e.address.clone(),
                    username: "admin".into(),
                    protocol: automata_bmc::Protocol::Redfish,
                    tls: TlsPolicy::Verify,
                    added_at: String::new(),
                    labels: Default::default(),
                },
                Credentials::new("admin", password.clone()),
            )
        })
        .collect();
    let cfg = automata_producers::bmc::BmcCollectorConfig {
        fleet_concurrency: a.concurrency.max(1),
        ..Default::default()
    };
    let mut poller = automata_producers::bmc::SensorPoller::new(cfg);
    let mut sweeps = Vec::new();
    let bar = crate::bench::progress_bar(table, (a.sweeps + 1) as u64, "sensor sweeps");
    for i in 0..=a.sweeps {
        let r = poller.sweep(&log, &ids, bmcs.clone()).await?;
        let secs = r.elapsed_ms as f64 / 1000.0;
        sweeps.push(SweepFigure {
            kind: if i == 0 { "cold" } else { "warm" },
            secs,
            ok: r.ok,
            readings: r.readings,
            readings_per_sec: r.readings as f64 / secs.max(0.001),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    fleet.stop().await;
    Ok(TelemetryBench {
        bmcs: a.servers,
        sweeps,
    })
}
