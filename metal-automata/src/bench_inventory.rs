//! `metal-automata bench inventory`: the in-band agent's collection time and peak RSS beside
//! `lshw -json`'s on this machine, and the out-of-band collector's time to inventory N simulated
//! BMCs.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result};
use automata_bmc::registry::BmcEntry;
use automata_bmc::{ClientOptions, Credentials, TlsPolicy};
use futures::StreamExt;
use serde::Serialize;

/// `bench inventory` options.
#[derive(Debug, clap::Args)]
pub struct InventoryBenchArgs {
    /// Simulated BMCs to inventory out of band (0 skips that part).
    #[arg(long, default_value_t = 1000)]
    pub servers: usize,
    /// BMCs collected at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// The first simulated BMC's address; the others take the next loopback IPs.
    #[arg(long, default_value = "127.4.0.1:8000")]
    pub listen: std::net::SocketAddr,
    /// Agent collections to time (the median is reported).
    #[arg(long, default_value_t = 20)]
    pub agent_runs: usize,
    /// Internal: run a command and print its peak RSS in KiB.
    #[arg(long, hide = true, num_args = 1.., allow_hyphen_values = true)]
    pub rss_of: Option<Vec<String>>,
}

/// What `bench inventory` measured.
#[derive(Debug, Serialize)]
pub struct InventoryBench {
    /// Agent: median collection time, ms.
    pub agent_ms: f64,
    /// Agent: peak RSS of `metal-automata agent --once`, MiB.
    pub agent_rss_mib: Option<f64>,
    /// Components the agent found.
    pub agent_components: usize,
    /// `lshw -json`: median wall time, ms (None when lshw is not installed).
    pub lshw_ms: Option<f64>,
    /// `lshw -json`: peak RSS, MiB.
    pub lshw_rss_mib: Option<f64>,
    /// lshw time / agent time.
    pub speedup_vs_lshw: Option<f64>,
    /// Out of band: BMCs inventoried.
    pub bmcs: usize,
    /// Out of band: BMCs that failed.
    pub bmc_failures: usize,
    /// Out of band: wall time of the whole sweep, s.
    pub sweep_secs: f64,
    /// Out of band: Redfish requests sent.
    pub requests: u64,
    /// Out of band: components found.
    pub components: usize,
}

/// The hidden `--rss-of` mode: runs the command, waits, prints the children's peak RSS (KiB).
pub fn rss_of(cmd: &[String]) -> Result<()> {
    let (prog, args) = cmd.split_first().context("--rss-of needs a command")?;
    let status = std::process::Command::new(prog)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {prog}"))?;
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .context("getrusage")?;
    println!("{} {}", usage.max_rss(), status.code().unwrap_or(-1));
    Ok(())
}

/// Peak RSS of a command, MiB, measured in a fresh process of our own (so that only that
/// command is a child).
fn peak_rss(cmd: &[&str]) -> Option<f64> {
    let me = std::env::current_exe().ok()?;
    let out = std::process::Command::new(me)
        .args(["bench", "inventory", "--rss-of"])
        .args(cmd)
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let kib: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(kib / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin"])
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

/// Runs the bench.
pub async fn run(a: InventoryBenchArgs, table: bool) -> Result<InventoryBench> {
    // The agent, in process: the collection itself.
    let opts = automata_agent::Options::default();
    let mut times = Vec::new();
    let mut components = 0;
    for _ in 0..a.agent_runs.max(1) {
        let o = opts.clone();
        let r = tokio::task::spawn_blocking(move || automata_agent::collect(&o)).await?;
        times.push(r.elapsed.as_secs_f64() * 1000.0);
        components = r.snapshot.components.len();
    }
    let agent_ms = median(times);
    let me = std::env::current_exe().context("locating this binary")?;
    let me = me.to_string_lossy().to_string();
    let agent_rss_mib = peak_rss(&[&me, "agent", "--once", "--output", "json"]);
    let (lshw_ms, lshw_rss_mib) = match find_in_path("lshw") {
        Some(lshw) => {
            let lshw = lshw.to_string_lossy().to_string();
            let mut t = Vec::new();
            for _ in 0..3 {
                let s = Instant::now();
                std::process::Command::new(&lshw)
                    .arg("-json")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .context("running lshw")?;
                t.push(s.elapsed().as_secs_f64() * 1000.0);
            }
            (Some(median(t)), peak_rss(&[&lshw, "-json"]))
        }
        None => {
            eprintln!("lshw is not installed: no comparison (apt-get install lshw)");
            (None, None)
        }
    };

    let mut bench = InventoryBench {
        agent_ms,
        agent_rss_mib,
        agent_components: components,
        speedup_vs_lshw: lshw_ms.map(|l| l / agent_ms.max(0.001)),
        lshw_ms,
        lshw_rss_mib,
        bmcs: a.servers,
        bmc_failures: 0,
        sweep_secs: 0.0,
        requests: 0,
        components: 0,
    };
    if a.servers == 0 {
        return Ok(bench);
    }
    let tmp = tempfile::tempdir().context("temporary directory for the simulated fleet")?;
    let sim = crate::simulate::SimulateArgs::local(a.servers, a.listen, tmp.path().to_path_buf());
    let (mut cfg, _) = crate::simulate::config(&sim)?;
    cfg.ground_truth = None;
    let password = cfg.credentials.password.clone();
    let fleet = automata_simulator::Fleet::start(cfg).await?;
    let bar = crate::bench::progress_bar(table, a.servers as u64, "inventorying BMCs");
    let client = ClientOptions {
        tls: TlsPolicy::Verify,
        ..Default::default()
    };
    let started = Instant::now();
    let mut results = futures::stream::iter(fleet.endpoints.iter().map(|e| {
        let entry = BmcEntry {
            name: e.name.clone(),
            address: e.address.clone(),
            username: "admin".into(),
            protocol: automata_bmc::Protocol::Redfish,
            tls: TlsPolicy::Verify,
            added_at: String::new(),
            labels: Default::default(),
        };
        let creds = Credentials::new("admin", password.clone());
        let client = client.clone();
        async move { automata_producers::bmc::collect_one(&entry, creds, &client).await }
    }))
    .buffer_unordered(a.concurrency.max(1));
    while let Some(r) = results.next().await {
        match r {
            Ok(inv) => {
                bench.requests += inv.requests;
                bench.components += inv
                    .snapshots
                    .iter()
                    .map(|s| s.components.len())
                    .sum::<usize>();
            }
            Err(e) => {
                bench.bmc_failures += 1;
                tracing::warn!(error = %e, "BMC failed");
            }
        }
        bar.inc(1);
    }
    bench.sweep_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    drop(results);
    fleet.stop().await;
    Ok(bench)
}
