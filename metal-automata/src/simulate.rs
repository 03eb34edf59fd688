//! `metal-automata simulate`: a fleet of simulated Redfish BMCs on this machine.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use automata_simulator::faults::{FaultRates, FaultScript};
use automata_simulator::mockup::Mockup;
use automata_simulator::secureboot::SecureBootProfile;
use automata_simulator::{Addressing, Credentials, Endpoint, Fleet, SimConfig};
use serde::Serialize;

/// `simulate` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// How many BMCs.
    #[arg(long, default_value_t = 20)]
    pub servers: usize,
    /// The seed: the same seed gives the same fleet (identities, sensors, random faults).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// DMTF mockups to build servers from: one mockup directory, or a directory of them
    /// (such as DMTF's Redfish-Mockup-Server/public-*). Default: the built-in rack server.
    #[arg(long, env = "METAL_AUTOMATA_MOCKUPS")]
    pub mockups: Option<PathBuf>,
    /// The first BMC's address; each next BMC gets the next IP (or port, with
    /// --port-per-server).
    #[arg(long, default_value = "127.1.0.1:8000")]
    pub listen: SocketAddr,
    /// One port per BMC on the --listen address instead of one address per BMC.
    #[arg(long)]
    pub port_per_server: bool,
    /// The simulator's control API (fault injection, ground truth, request counts).
    #[arg(long, default_value = "127.0.0.1:8099")]
    pub control: SocketAddr,
    /// The user name the BMCs accept.
    #[arg(long, default_value = "admin")]
    pub username: String,
    /// A file holding the password the BMCs accept (default: "simulated", written to
    /// <out>/password).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// How long power changes take.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub power_delay: Duration,
    /// How long flashing a firmware image takes.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub update_time: Duration,
    /// Random faults: kind=rate per server per hour (repeatable; all=rate for every kind).
    #[arg(long = "fault-rate")]
    pub fault_rates: Vec<String>,
    /// A fault script: {"faults": [{"server": 3, "kind": "fan-failure", "at": "90s"}, …]}.
    #[arg(long)]
    pub faults: Option<PathBuf>,
    /// Where to write bmcs.json (the fleet, for `bmc import`), the password file and
    /// ground-truth.jsonl.
    #[arg(long, default_value = "simulated-fleet")]
    pub out: PathBuf,
    /// Serve collections longer than this in pages (`Members@odata.nextLink`), as BMCs do with
    /// long logs; 0 serves them whole.
    #[arg(long, default_value_t = 0)]
    pub page_size: usize,
    /// The Secure Boot keys the systems show over Redfish: mockup (as the mockup has them),
    /// ms-2011 (never rolled over to the 2023 Microsoft CAs), ms-2023, test-pk (a "DO NOT
    /// TRUST" Platform Key) or mixed (per server from the seed).
    #[arg(long, default_value = "mockup", value_parser = parse_secure_boot)]
    pub secure_boot: SecureBootProfile,
}

fn parse_secure_boot(s: &str) -> Result<SecureBootProfile, String> {
    s.parse()
}

impl SimulateArgs {
    /// A fleet of `servers` built-in rack servers from `listen` on, its control API on an
    /// ephemeral port, no faults, files under `out`: what the benches and tests start.
    pub fn local(servers: usize, listen: SocketAddr, out: PathBuf) -> Self {
        SimulateArgs {
            servers,
            seed: 1,
            mockups: None,
            listen,
            port_per_server: false,
            control: SocketAddr::from(([127, 0, 0, 1], 0)),
            username: "admin".into(),
            password_file: None,
            power_delay: Duration::from_secs(3),
            update_time: Duration::from_secs(10),
            fault_rates: Vec::new(),
            faults: None,
            out,
            page_size: 0,
            secure_boot: SecureBootProfile::Mockup,
        }
    }
}

/// `bench simulator` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SimBenchArgs {
    /// How many BMCs.
    #[arg(long, default_value_t = 1000)]
    pub servers: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long to time sustained requests after the sweep.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The first BMC's address; the others take the next IPs (or ports, with
    /// --port-per-server).
    #[arg(long, default_value = "127.3.0.1:8000")]
    pub listen: SocketAddr,
    /// One port per BMC on the --listen address instead of one address per BMC.
    #[arg(long)]
    pub port_per_server: bool,
    /// DMTF mockups to build servers from (default: the built-in rack server).
    #[arg(long)]
    pub mockups: Option<PathBuf>,
}

/// Starts a fleet on loopback and measures it.
pub async fn bench(a: SimBenchArgs, table: bool) -> Result<()> {
    let tmp = tempfile::tempdir().context("temporary directory for the simulator bench")?;
    let args = SimulateArgs {
        mockups: a.mockups.clone(),
        port_per_server: a.port_per_server,
        ..SimulateArgs::local(a.servers, a.listen, tmp.path().to_path_buf())
    };
    let (mut cfg, _) = config(&args)?;
    cfg.ground_truth = None;
    let started = std::time::Instant::now();
    let fleet = Fleet::start(cfg).await?;
    let start_secs = started.elapsed().as_secs_f64();
    let bar = if table {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "sweep {bar:40} {pos}/{len} requests {per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let r =
        automata_simulator::bench::run(&fleet, a.concurrency.max(1), a.duration, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await;
    bar.finish_and_clear();
    fleet.stop().await;
    if table {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
            .set_header(vec!["figure", "value"]);
        t.add_row(vec!["BMCs".to_string(), r.servers.to_string()]);
        t.add_row(vec![
            "fleet start (bind + build)".to_string(),
            format!("{start_secs:.2} s"),
        ]);
        t.add_row(vec![
            "sweep: requests".to_string(),
            r.sweep_requests.to_string(),
        ]);
        t.add_row(vec![
            "sweep: wall time".to_string(),
            format!("{:.2} s", r.sweep_secs),
        ]);
        t.add_row(vec![
            "sweep: errors".to_string(),
            r.sweep_errors.to_string(),
        ]);
        t.add_row(vec![
            format!("sustained requests/s ({} in flight)", r.concurrency),
            format!("{:.0}", r.requests_per_sec),
        ]);
        t.add_row(vec![
            "latency p50 / p99".to_string(),
            format!("{:.2} / {:.2} ms", r.p50_ms, r.p99_ms),
        ]);
        println!("{t}");
        println!("Client and simulator share this machine's cores: the figures are for both.");
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "start_secs": start_secs,
                "result": r,
            }))?
        );
    }
    Ok(())
}

/// What `simulate` prints and writes to `bmcs.json`.
#[derive(Debug, Serialize)]
pub struct FleetFile {
    /// The BMCs.
    pub bmcs: Vec<Endpoint>,
    /// The user name they accept.
    pub username: String,
    /// The file holding the password they accept.
    pub password_file: PathBuf,
    /// The control API.
    pub control: String,
    /// The ground-truth file.
    pub ground_truth: PathBuf,
}

/// Builds the simulator's configuration from the options.
pub fn config(a: &SimulateArgs) -> Result<(SimConfig, PathBuf)> {
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mockups = match &a.mockups {
        Some(dir) => Mockup::load_all(dir)?.into_iter().map(Arc::new).collect(),
        None => vec![Arc::new(Mockup::builtin())],
    };
    let (password, password_file) = match &a.password_file {
        Some(p) => (
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the password file {}", p.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            p.clone(),
        ),
        None => {
            let p = a.out.join("password");
            write_private(&p, "simulated\n")?;
            ("simulated".to_string(), p)
        }
    };
    if password.is_empty() {
        bail!("the password file is empty");
    }
    let script = match &a.faults {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the fault script {}", p.display()))?;
            let s: FaultScript = serde_json::from_str(&text)
                .with_context(|| format!("fault script {}", p.display()))?;
            if let Some(f) = s.faults.iter().find(|f| f.server >= a.servers) {
                bail!(
                    "fault script: server {} is past the fleet's {} servers",
                    f.server,
                    a.servers
                );
            }
            s
        }
        None => FaultScript::default(),
    };
    let addressing = if a.port_per_server {
        Addressing::PortPerServer {
            ip: a.listen.ip(),
            first_port: a.listen.port(),
        }
    } else {
        match a.listen.ip() {
            std::net::IpAddr::V4(first) => Addressing::IpPerServer {
                first,
                port: a.listen.port(),
            },
            std::net::IpAddr::V6(_) => {
                bail!("one address per BMC needs an IPv4 --listen; or use --port-per-server")
            }
        }
    };
    let ground_truth = a.out.join("ground-truth.jsonl");
    Ok((
        SimConfig {
            servers: a.servers,
            seed: a.seed,
            mockups,
            addressing,
            control: a.control,
            credentials: Credentials {
                username: a.username.clone(),
                password,
            },
            power_delay: a.power_delay,
            update_time: a.update_time,
            fault_rates: FaultRates::parse(&a.fault_rates).map_err(anyhow::Error::msg)?,
            script,
            ground_truth: Some(ground_truth),
            page_size: a.page_size,
            secure_boot: a.secure_boot,
            threshold_events: true,
        },
        password_file,
    ))
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Starts the fleet and writes `<out>/bmcs.json`; returns the fleet, the file's content, its
/// path and the password the BMCs accept.
pub async fn start_fleet(a: &SimulateArgs) -> Result<(Fleet, FleetFile, PathBuf, String)> {
    let (cfg, password_file) = config(a)?;
    let ground_truth = cfg.ground_truth.clone().unwrap_or_default();
    let password = cfg.credentials.password.clone();
    let fleet = Fleet::start(cfg).await?;
    let file = FleetFile {
        bmcs: fleet.endpoints.clone(),
        username: a.username.clone(),
        password_file,
        control: format!("http://{}", fleet.control),
        ground_truth,
    };
    let path = a.out.join("bmcs.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&file)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((fleet, file, path, password))
}

/// Starts the fleet, writes `bmcs.json`, and serves until Ctrl-C.
pub async fn run(a: SimulateArgs, table: bool) -> Result<()> {
    let (fleet, file, path, _) = start_fleet(&a).await?;
    if table {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
            .set_header(vec!["bmc", "address", "server id", "serial", "mockup"]);
        for e in file.bmcs.iter().take(10) {
            t.add_row(vec![
                &e.name,
                &e.address,
                &e.server_id,
                &e.serial,
                &e.mockup,
            ]);
        }
        println!("{t}");
        if file.bmcs.len() > 10 {
            println!("… and {} more", file.bmcs.len() - 10);
        }
        println!(
            "{} simulated BMCs (user {}, password in {}).\nFleet file: {}\nControl API: {} (GET /simulator/v1/faults, POST /simulator/v1/faults)\nCtrl-C stops.",
            file.bmcs.len(),
            file.username,
            file.password_file.display(),
            path.display(),
            file.control,
        );
    } else {
        println!("{}", serde_json::to_string_pretty(&file)?);
    }
    shutdown_signal().await;
    fleet.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
