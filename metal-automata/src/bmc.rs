//! `metal-automata bmc …`: register BMCs, read one directly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use automata_bmc::redfish::inventory;
use automata_bmc::{ClientOptions, Credentials, RedfishClient, TlsPolicy};
use serde_json::{Value, json};

use crate::client::{ApiClient, path_segment};
use crate::output::Output;

/// How the certificate of a BMC is checked, as the CLI takes it.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// Pin the BMC's certificate by its SHA-256 fingerprint (as `openssl x509 -fingerprint
    /// -sha256` prints it); `bmc fingerprint <address>` reads it.
    #[arg(long, value_name = "SHA256")]
    pub pin: Option<String>,
    /// Read the certificate the BMC presents now and pin it (trust on first use; the
    /// fingerprint is printed so it can be checked).
    #[arg(long, conflicts_with_all = ["pin", "ca_file", "insecure"])]
    pub pin_now: bool,
    /// Verify against this CA (PEM) instead of the system roots.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Do not check this BMC's certificate at all.
    #[arg(long)]
    pub insecure: bool,
}

/// `bmc add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// `host`, `host:port` or a URL (https unless `http://` is written out).
    pub address: String,
    /// BMC account.
    #[arg(long, short = 'u')]
    pub username: String,
    /// A file holding the password (its trailing newline is ignored); `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    pub password_file: PathBuf,
    /// A name for it (default: host[:port]).
    #[arg(long)]
    pub name: Option<String>,
    /// Labels, `key=value` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Allow plain http to a BMC off loopback (the password travels in clear).
    #[arg(long)]
    pub allow_plain_http: bool,
    /// How to reach it: Redfish, or IPMI 2.0 over LAN for BMCs without Redfish.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Redfish)]
    pub protocol: ProtocolArg,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// `--protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolArg {
    /// Redfish over HTTPS.
    Redfish,
    /// IPMI 2.0 over LAN (RMCP+, UDP 623).
    Ipmi,
}

/// `bmc inventory`: read one BMC now, without the service.
#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    /// `host`, `host:port` or a URL.
    pub address: String,
    /// BMC account.
    #[arg(long, short = 'u')]
    pub username: String,
    /// A file holding the password; `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    pub password_file: PathBuf,
    /// Seconds per request.
    #[arg(long, default_value_t = 15)]
    pub timeout: u64,
    /// How to reach it (sensors: Redfish only).
    #[arg(long, value_enum, default_value_t = ProtocolArg::Redfish)]
    pub protocol: ProtocolArg,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// `bmc import`: register every BMC of a fleet file (`simulate` writes one).
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The fleet file: `{"bmcs": [{"name", "address"}…], "username", "password_file"}`.
    pub file: PathBuf,
}

fn read_password(path: &Path) -> Result<String> {
    let raw = if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading the password from stdin")?;
        s
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the password file {}", path.display()))?
    };
    let p = raw.trim_end_matches(['\n', '\r']).to_string();
    if p.is_empty() {
        bail!("the password file {} is empty", path.display());
    }
    Ok(p)
}

async fn tls_policy(address: &str, t: &TlsArgs, quiet: bool) -> Result<TlsPolicy> {
    Ok(if let Some(fp) = &t.pin {
        TlsPolicy::pin(fp)?
    } else if t.pin_now {
        let url = automata_bmc::redfish::parse_address(address)?;
        let fp = automata_bmc::tls::probe_fingerprint(&url, Duration::from_secs(10)).await?;
        if !quiet {
            eprintln!("pinning the certificate {url} presents now: sha256 {fp}");
        }
        TlsPolicy::Pin { sha256: fp }
    } else if let Some(ca) = &t.ca_file {
        TlsPolicy::Ca {
            pem: std::fs::read_to_string(ca)
                .with_context(|| format!("cannot read {}", ca.display()))?,
        }
    } else if t.insecure {
        TlsPolicy::Insecure
    } else {
        TlsPolicy::Verify
    })
}

/// `bmc add`.
pub async fn add(api: &ApiClient, a: AddArgs, out: &Output) -> Result<()> {
    let password = read_password(&a.password_file)?;
    let tls = if a.protocol == ProtocolArg::Ipmi {
        TlsPolicy::Verify
    } else {
        tls_policy(&a.address, &a.tls, !out.is_table()).await?
    };
    let mut labels = BTreeMap::new();
    for l in &a.labels {
        let (k, v) = l
            .split_once('=')
            .with_context(|| format!("label {l:?} is not key=value"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    let mut body = json!({
        "address": a.address,
        "username": a.username,
        "password": password,
        "name": a.name,
        "labels": labels,
        "allow_plain_http": a.allow_plain_http,
        "protocol": if a.protocol == ProtocolArg::Ipmi { "ipmi" } else { "redfish" },
    });
    match tls {
        TlsPolicy::Pin { sha256 } => body["pin_sha256"] = json!(sha256),
        TlsPolicy::Ca { pem } => body["ca_pem"] = json!(pem),
        TlsPolicy::Insecure => body["insecure"] = json!(true),
        TlsPolicy::Verify => {}
    }
    let v = api.post("/api/v1/bmcs", &body).await?;
    out.bmc_added(&v)
}

/// `bmc import`.
pub async fn import(api: &ApiClient, a: ImportArgs, out: &Output) -> Result<()> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let fleet: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", a.file.display()))?;
    let username = fleet
        .get("username")
        .and_then(Value::as_str)
        .context("the fleet file has no username")?;
    let pw_file = fleet
        .get("password_file")
        .and_then(Value::as_str)
        .context("the fleet file has no password_file")?;
    let password = read_password(Path::new(pw_file))?;
    let bmcs = fleet
        .get("bmcs")
        .and_then(Value::as_array)
        .context("the fleet file has no bmcs")?;
    let bar = out.progress(bmcs.len() as u64, "registering BMCs");
    let mut added = Vec::new();
    for b in bmcs {
        let address = b
            .get("address")
            .and_then(Value::as_str)
            .context("a BMC without an address")?;
        let body = json!({
            "address": address,
            "username": username,
            "password": password,
            "name": b.get("name"),
        });
        added.push(api.post("/api/v1/bmcs", &body).await?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    out.bmcs_imported(&added)
}

/// `bmc list`.
pub async fn list(api: &ApiClient, out: &Output) -> Result<()> {
    out.bmcs(&api.get("/api/v1/bmcs").await?)
}

/// `bmc remove`.
pub async fn remove(api: &ApiClient, name: &str, out: &Output) -> Result<()> {
    api.delete(&format!("/api/v1/bmcs/{}", path_segment(name)))
        .await?;
    out.done(
        &json!({"removed": name}),
        &format!("removed BMC {name} and its stored password"),
    )
}

/// `bmc collect`.
pub async fn collect(api: &ApiClient, out: &Output) -> Result<()> {
    api.post("/api/v1/bmcs/collect", &json!({})).await.ok();
    out.done(
        &json!({"collecting": true}),
        "a sweep of every BMC has started; `bmc list` shows its outcome",
    )
}

/// `bmc fingerprint`.
pub async fn fingerprint(address: &str, out: &Output) -> Result<()> {
    let url = automata_bmc::redfish::parse_address(address)?;
    let fp = automata_bmc::tls::probe_fingerprint(&url, Duration::from_secs(10)).await?;
    out.done(
        &json!({"address": url.as_str(), "sha256": fp}),
        &format!("sha256:{fp}"),
    )
}

/// `bmc inventory`: one BMC, read now.
pub async fn inventory_now(a: InventoryArgs, out: &Output) -> Result<()> {
    let password = read_password(&a.password_file)?;
    if a.protocol == ProtocolArg::Ipmi {
        let opts = automata_bmc::ipmi::IpmiOptions {
            timeout: Duration::from_secs(a.timeout.clamp(1, 10)),
            ..Default::default()
        };
        let t = Instant::now();
        let snap =
            automata_bmc::ipmi::collect(&a.address, &Credentials::new(a.username, password), &opts)
                .await
                .with_context(|| format!("IPMI inventory of {}", a.address))?;
        let inv = inventory::BmcInventory::ipmi(snap);
        return out.bmc_inventory(&inv, t.elapsed());
    }
    let opts = ClientOptions {
        timeout: Duration::from_secs(a.timeout.max(1)),
        tls: tls_policy(&a.address, &a.tls, !out.is_table()).await?,
        ..Default::default()
    };
    let client = RedfishClient::new(&a.address, Credentials::new(a.username, password), opts)?;
    let t = Instant::now();
    let r = inventory::collect(&client, &a.address).await;
    client.logout().await;
    let inv = r.with_context(|| format!("inventory of {}", a.address))?;
    out.bmc_inventory(&inv, t.elapsed())
}

/// `bmc sensors`: one BMC's sensor readings, now.
pub async fn sensors_now(a: InventoryArgs, out: &Output) -> Result<()> {
    use automata_bmc::redfish::telemetry;
    let password = read_password(&a.password_file)?;
    let opts = ClientOptions {
        timeout: Duration::from_secs(a.timeout.max(1)),
        tls: tls_policy(&a.address, &a.tls, !out.is_table()).await?,
        ..Default::default()
    };
    let client = RedfishClient::new(&a.address, Credentials::new(a.username, password), opts)?;
    let t = Instant::now();
    let topo = telemetry::topology(&client, &a.address).await;
    let r = match topo {
        Ok(topo) => Ok(telemetry::poll(&client, &topo).await),
        Err(e) => Err(e),
    };
    client.logout().await;
    let (readings, errors) = r.with_context(|| format!("sensors of {}", a.address))?;
    out.sensors(&readings, &errors, t.elapsed())
}
