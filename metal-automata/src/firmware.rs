//! `metal-automata firmware …`: scanning blobs offline, the content-addressed store, vendor
//! catalogs and downloads. Apart from `scan`, these are admin commands for the service host:
//! they work on the data directory (or the `[storage]` location) directly, and publish their
//! events through `POST /api/v1/firmware/events` when the service is up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use automata_fwcatalog::{CatalogEntry, CatalogFormat, CatalogSource, SyncOutcome};
use automata_fwscan::advisory::Subject;
use automata_fwscan::{Finding, Limits, RulePack, ScanReport, Severity, TrustedRoot};
use automata_fwstore::{
    DownloadConfig, Downloader, Expected, FetchRequest, FirmwareStore, Manifest, S3Location,
    SignatureState, SignatureStatus, StoreLocation,
};
use automata_processors::firmware_updates::advisory_record;
use automata_query::firmware::FirmwareEvents;
use automata_schemas::types::{
    ComponentKind, FirmwareAdvisory, FirmwareArtifact, FirmwareCatalogEntry, FirmwareCatalogSync,
    FirmwareScanResult, ScanFinding, ScanVerdict,
};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use automata_producers::findings::TargetKind;

use crate::client::ApiClient;
use crate::config::Config;
use crate::output::Output;

/// `firmware` subcommands.
#[derive(Debug, Subcommand)]
pub enum FirmwareCommand {
    /// Scan a firmware file offline (no service needed), or a stored blob by SHA-256: container
    /// tree, Secure Boot variable stores and findings. Exits 0 even with findings; non-zero only
    /// when the file cannot be read. Nothing is stored or published.
    Scan(ScanArgs),
    /// Import a file, or every file under a directory, into the store (air-gapped sites); each
    /// blob is scanned and a critical finding quarantines it. Runs on the service host.
    Import {
        /// File or directory.
        path: PathBuf,
        /// Operator rule pack (JSON, or Microsoft's dbx JSON); default: the built-in pack.
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Stored blobs with their integrity, last scan and quarantine. Runs on the service host.
    Ls,
    /// One stored blob's manifest: provenance, integrity, last scan, quarantine log.
    Show {
        /// Blob SHA-256.
        sha256: String,
    },
    /// Quarantine a blob: it stays stored but is not served or installable.
    Quarantine {
        /// Blob SHA-256.
        sha256: String,
        /// Why (kept in the manifest's quarantine log).
        #[arg(long)]
        reason: String,
    },
    /// Lift a quarantine (audited; the reason is kept in the manifest's quarantine log).
    Release {
        /// Blob SHA-256.
        sha256: String,
        /// Why it is safe to release.
        #[arg(long)]
        reason: String,
    },
    /// Scan stored blobs again (after a rule-pack update).
    Rescan {
        /// Every stored blob.
        #[arg(long, conflicts_with = "sha256")]
        all: bool,
        /// One blob.
        #[arg(required_unless_present = "all")]
        sha256: Option<String>,
        /// Operator rule pack; default: the built-in pack.
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Open findings: every stored blob's last scan, and live servers' Secure Boot keys as
    /// the collectors read them over Redfish (through the service's SQL API).
    Findings {
        /// Only this rule id (e.g. SB-KEK-001).
        #[arg(long)]
        rule: Option<String>,
        /// Only this server (SMBIOS UUID): its live findings, no blobs. (`--server` is the
        /// service's URL, as for every command.)
        #[arg(long = "server-id", value_name = "UUID")]
        server_id: Option<String>,
    },
    /// Vendor catalogs: add, list, sync, remove (snapshots under `<data>/firmware/catalogs/`).
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Download a catalog entry into the store (verified against the catalog's hashes), then
    /// scan it.
    Fetch {
        /// `CATALOG/ENTRY` (see `firmware catalog ls` and the synced snapshot).
        entry: String,
        /// Operator rule pack; default: the built-in pack.
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Which firmware each server could update: its components (latest inventory, through the
    /// service's SQL API) matched against every synced catalog: a newer version (with its
    /// criticality), current, or running a version the catalog no longer lists.
    Updates {
        /// Only this server (SMBIOS UUID).
        #[arg(long = "server-id", value_name = "UUID")]
        server_id: Option<String>,
        /// Also list components that are current.
        #[arg(long)]
        all: bool,
    },
    /// The rule pack: show the active one, or install an operator's (test keys, dbx reference,
    /// Authenticode roots, YARA rules; or Microsoft's `dbx_info_msft_latest.json`), or add and
    /// remove the operator's own YARA rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Delete what crashed writers left: staging objects and blobs without a manifest older
    /// than --older-than, and stale partial downloads.
    Gc {
        /// Only what is older than this (a younger orphan may be a writer at work).
        #[arg(long, default_value = "24h")]
        older_than: humantime::Duration,
        /// List what would go; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The store as a fwupd remote (LVFS format, metadata signed with our key): its
    /// certificate, the remote's `.conf`, what it offers, and an export for static hosting.
    Remote {
        #[command(subcommand)]
        command: crate::firmware_remote::RemoteCommand,
    },
    /// An expiring blob URL for a BMC's `SimpleUpdate` (HMAC token, key `<data>/firmware/blob-url.key`).
    Url {
        /// Blob SHA-256.
        sha256: String,
        /// How long the URL is valid, e.g. 30m or 2h.
        #[arg(long, default_value = "1h")]
        expires_in: humantime::Duration,
        /// The service's base URL as the BMC reaches it (default: --server or the local API).
        #[arg(long)]
        base: Option<String>,
    },
}

/// `firmware scan` options.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The firmware file (image, capsule, variable store, archive, EFI binary), or the SHA-256
    /// of a stored blob.
    pub file: PathBuf,
    /// Operator rule pack (JSON, or Microsoft's dbx JSON); default: the built-in pack.
    #[arg(long)]
    pub rules: Option<PathBuf>,
}

/// `firmware rules` subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// The active pack: version and contents' counts.
    Show,
    /// Install FILE as the active pack (`<data>/firmware/rules.json`): every later import,
    /// rescan, fetch and the collectors' live Secure Boot check use it. A `.yar`/`.yara` file,
    /// or a directory of them, goes to the operator's YARA directory (`<data>/firmware/yara/`)
    /// instead, replacing a file of the same name; every scan adds those rules to the pack.
    /// Nothing is installed unless all the rules compile. Audited.
    Update {
        /// Our pack format (JSON), Microsoft's `dbx_info_msft_latest.json`, a YARA file, or a
        /// directory of YARA files.
        file: PathBuf,
    },
    /// Remove one of the operator's YARA files (`firmware rules show` lists them). Audited.
    Remove {
        /// Its file name, e.g. `lab.yar`.
        name: String,
    },
}

/// `firmware catalog` subcommands.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Register a catalog.
    Add {
        /// A short name: the first half of every entry key.
        name: String,
        /// Its URL.
        url: String,
        /// Its format.
        #[arg(long, value_enum)]
        format: CatalogKind,
        /// LVFS: a PEM CA certificate the jcat's PKCS#7 must chain to (repeatable); without it
        /// the rule pack's package roots (the LVFS CA) are used.
        #[arg(long = "trust-root", value_name = "PEM")]
        trust_roots: Vec<PathBuf>,
        /// LVFS: accept metadata whose jcat has no signature under the roots (the SHA-256 is
        /// still checked, and a signature that fails is still refused).
        #[arg(long)]
        allow_unsigned: bool,
    },
    /// Registered catalogs and their last good snapshot.
    Ls,
    /// Fetch catalogs (conditional GET), keep the last good snapshot, print what changed.
    Sync {
        /// Only this catalog.
        name: Option<String>,
    },
    /// Unregister a catalog and drop its snapshot.
    Rm {
        /// Its name.
        name: String,
    },
}

/// Catalog formats the CLI registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CatalogKind {
    /// Dell `Catalog.xml(.gz)` (UTF-16).
    Dell,
    /// HPE SDR `fwrepodata/fwrepo.json`.
    Hpe,
    /// LVFS `firmware.xml.{zst,gz}` with its `.jcat`.
    Lvfs,
    /// Generic YAML/JSON entries (Supermicro downloads through their `checksum_url`).
    Generic,
    /// A Lenovo UpdateXpress/OneCLI directory (`lnvgy_fw_*.xml`, `*_comp.zip`) over HTTP.
    Lenovo,
}

impl CatalogKind {
    fn format(self, trust_roots: &[PathBuf], allow_unsigned: bool) -> Result<CatalogFormat> {
        if self != CatalogKind::Lvfs && (!trust_roots.is_empty() || allow_unsigned) {
            bail!("--trust-root and --allow-unsigned apply to LVFS catalogs only");
        }
        let roots = trust_roots
            .iter()
            .map(|p| {
                let pem = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                TrustedRoot::from_pem(&pem).with_context(|| format!("trust root {}", p.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(match self {
            CatalogKind::Dell => CatalogFormat::Dell,
            CatalogKind::Hpe => CatalogFormat::HpeSdr { base_url: None },
            CatalogKind::Lvfs => CatalogFormat::Lvfs {
                jcat_url: None,
                firmware_base_url: None,
                require_signature: !allow_unsigned,
                trust_roots: roots,
            },
            CatalogKind::Generic => CatalogFormat::Generic,
            CatalogKind::Lenovo => CatalogFormat::Lenovo,
        })
    }
}

/// `<data>/firmware`: catalogs, the blob URL key, and the store unless `[storage]` says otherwise.
pub fn firmware_dir(cfg: &Config) -> PathBuf {
    cfg.data_dir().join("firmware")
}

/// The local API's base URL (the listen address, loopback when it listens on all addresses).
pub fn local_api_base(cfg: &Config) -> String {
    let mut addr = cfg.api.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

/// Where the store lives: `<data>/firmware` by default, else `<storage.url>/firmware` (local
/// directory or `s3://bucket/prefix`, as history picks its location).
pub fn store_location(cfg: &Config) -> Result<StoreLocation> {
    let Some(url) = cfg.storage.url.as_deref() else {
        return Ok(StoreLocation::Local(firmware_dir(cfg)));
    };
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("storage.url {url}: no bucket");
        }
        let prefix = prefix.trim_matches('/');
        return Ok(StoreLocation::S3(S3Location {
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() {
                "firmware".into()
            } else {
                format!("{prefix}/firmware")
            },
            endpoint: cfg.storage.s3.endpoint.clone(),
            region: cfg.storage.s3.region.clone(),
            allow_http: cfg.storage.s3.allow_http,
        }));
    }
    if url.contains("://") && !url.starts_with("file://") {
        bail!("storage.url {url}: only local directories and s3:// are supported for firmware");
    }
    let local = url.strip_prefix("file://").unwrap_or(url);
    Ok(StoreLocation::Local(PathBuf::from(local).join("firmware")))
}

/// Opens the store for this config.
pub fn open_store(cfg: &Config) -> Result<FirmwareStore> {
    let loc = store_location(cfg)?;
    FirmwareStore::open(&loc).with_context(|| format!("opening the firmware store {loc:?}"))
}

/// The API's firmware route state (store, blob URL key, log, schema ids).
pub fn api_routes(
    cfg: &Config,
    log: automata_log::MessageLog,
    ids: automata_schemas::SchemaIds,
) -> Result<automata_query::firmware::FirmwareRoutes> {
    Ok(automata_query::firmware::FirmwareRoutes {
        store: open_store(cfg)?,
        signer: automata_query::firmware::load_or_create_signer(
            &firmware_dir(cfg).join("blob-url.key"),
        )?,
        log,
        ids,
        remote: crate::firmware_remote::builder(cfg)?,
    })
}

/// Where `firmware rules update` installs the operator's pack.
fn rules_file(cfg: &Config) -> PathBuf {
    firmware_dir(cfg).join("rules.json")
}

/// The operator's YARA directory: its `*.yar`/`*.yara` files are added to whichever pack a
/// scan uses (next to `rules.json`, so a pack update keeps them).
fn yara_dir(cfg: &Config) -> PathBuf {
    firmware_dir(cfg).join("yara")
}

/// The installed pack without the operator's YARA files, or the built-in one: what the
/// collectors' live Secure Boot check and the fleet's advisories use. Its YARA is not compiled
/// here (they run none), so YARA that stopped compiling cannot stop them; scans report it.
pub fn installed_pack(cfg: &Config) -> Result<RulePack> {
    let path = rules_file(cfg);
    if path.is_file() {
        return RulePack::load_data(&path)
            .with_context(|| format!("the installed rule pack {}", path.display()));
    }
    Ok(RulePack::builtin())
}

/// `pack` with the operator's YARA files added (its version tagged when there are any).
fn with_operator_yara(cfg: &Config, pack: RulePack) -> Result<RulePack> {
    let dir = yara_dir(cfg);
    let files = automata_fwscan::yara::read_dir(&dir)?;
    pack.with_operator_yara(files)
        .with_context(|| format!("the operator's YARA rules in {}", dir.display()))
}

/// The pack in force: the operator's installed pack, or the built-in one, with the operator's
/// YARA files.
fn active_rules(cfg: &Config) -> Result<RulePack> {
    with_operator_yara(cfg, installed_pack(cfg)?)
}

fn load_rules(cfg: &Config, path: Option<&Path>) -> Result<RulePack> {
    match path {
        Some(p) => with_operator_yara(
            cfg,
            RulePack::load(p).with_context(|| format!("rule pack {}", p.display()))?,
        ),
        None => active_rules(cfg),
    }
}

fn rules_summary(pack: &RulePack) -> Value {
    json!({
        "version": pack.version,
        "test_keys": pack.test_keys.len(),
        "dbx_images": pack.dbx_reference.images.len(),
        "dbx_certificates": pack.dbx_reference.certificates.len(),
        "authenticode_roots": pack.authenticode_roots.len(),
        "package_roots": pack.package_roots.len(),
        "cert_expiry_warning_days": pack.cert_expiry_warning_days,
        "yara_files": pack.yara.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        "yara_rules": automata_fwscan::yara::check(&pack.yara).unwrap_or(0),
    })
}

/// The YARA files `rules update` was given: one file, or every one in a directory.
fn yara_update_sources(path: &Path) -> Result<Vec<automata_fwscan::yara::YaraSource>> {
    if path.is_dir() {
        let found = automata_fwscan::yara::read_dir(path)?;
        if found.is_empty() {
            bail!("{}: no .yar or .yara file in it", path.display());
        }
        return Ok(found);
    }
    Ok(vec![automata_fwscan::yara::read_file(path)?])
}

/// Installs YARA files into the operator's directory once the active pack with them compiles.
fn install_yara(cfg: &Config, from: &Path, out: &Output) -> Result<()> {
    let new = yara_update_sources(from)?;
    let dir = yara_dir(cfg);
    let mut files = automata_fwscan::yara::read_dir(&dir)?;
    files.retain(|f| !new.iter().any(|n| n.name == f.name));
    files.extend(new.iter().cloned());
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let pack = installed_pack(cfg)?
        .with_operator_yara(files)
        .with_context(|| format!("YARA rules from {}", from.display()))?;
    for s in &new {
        replace_file(&dir.join(&s.name), s.source.as_bytes())?;
    }
    let names: Vec<&str> = new.iter().map(|s| s.name.as_str()).collect();
    tracing::info!(target: "audit", by = %operator(), files = ?names, version = %pack.version, from = %from.display(), "firmware YARA rules installed");
    let mut v = rules_summary(&pack);
    v["installed_yara"] = json!(names);
    out.done(
        &v,
        &format!(
            "YARA rules {} installed in {}; the active pack is now {}; `firmware rescan --all` \
             applies them to stored blobs",
            names.join(", "),
            dir.display(),
            pack.version
        ),
    )
}

/// Removes one of the operator's YARA files.
fn remove_yara(cfg: &Config, name: &str, out: &Output) -> Result<()> {
    let dir = yara_dir(cfg);
    let path = dir.join(name);
    // By path, not by reading the directory: a file that no longer reads or compiles must
    // still be removable.
    let plain = Path::new(name).file_name().is_some_and(|n| n == name);
    if !plain || !automata_fwscan::yara::is_yara_file(&path) || !path.is_file() {
        bail!(
            "no operator YARA file {name:?} in {} (`firmware rules show` lists them)",
            dir.display()
        );
    }
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    tracing::info!(target: "audit", by = %operator(), file = %name, "firmware YARA rule file removed");
    let pack = active_rules(cfg)?;
    out.done(
        &rules_summary(&pack),
        &format!("{name} removed; the active pack is now {}", pack.version),
    )
}

async fn rules_command(
    cfg: &Config,
    api: Option<&ApiClient>,
    cmd: RulesCommand,
    out: &Output,
) -> Result<()> {
    match cmd {
        RulesCommand::Show => {
            let pack = active_rules(cfg)?;
            let installed = rules_file(cfg).is_file();
            let operator_yara = automata_fwscan::yara::read_dir(&yara_dir(cfg))?;
            let mut v = rules_summary(&pack);
            v["installed"] = json!(installed);
            v["operator_yara"] = json!(
                operator_yara
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
            );
            out.done(
                &v,
                &format!(
                    "rule pack {} ({}): {} test keys, {} dbx image hashes, {} dbx certificates, {} Authenticode roots, {} package roots, {} YARA rules in {} ({} file(s) from {})",
                    pack.version,
                    if installed { "installed" } else { "built in" },
                    pack.test_keys.len(),
                    pack.dbx_reference.images.len(),
                    pack.dbx_reference.certificates.len(),
                    pack.authenticode_roots.len(),
                    pack.package_roots.len(),
                    v["yara_rules"],
                    pack.yara
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    operator_yara.len(),
                    yara_dir(cfg).display(),
                ),
            )
        }
        RulesCommand::Remove { name } => remove_yara(cfg, &name, out),
        RulesCommand::Update { file }
            if file.is_dir() || automata_fwscan::yara::is_yara_file(&file) =>
        {
            install_yara(cfg, &file, out)
        }
        RulesCommand::Update { file } => {
            let pack =
                RulePack::load(&file).with_context(|| format!("rule pack {}", file.display()))?;
            // The operator's YARA files stay: refuse a pack they do not compile with.
            with_operator_yara(cfg, pack.clone())?;
            let previous = installed_pack(cfg)?;
            replace_file(&rules_file(cfg), pack.to_json().as_bytes())?;
            tracing::info!(target: "audit", by = %operator(), version = %pack.version, from = %file.display(), "firmware rule pack installed");
            // The fleet's copy of the advisories: the firmware-updates processor matches every
            // server against them, so findings open and resolve without a rescan.
            let fleet = match api {
                Some(api) => publish_advisories(api, &previous, &pack)
                    .await
                    .map_err(|e| format!("{e:#}")),
                None => Err("no service configured".into()),
            };
            let mut v = rules_summary(&pack);
            v["advisories_published"] = json!(fleet.as_ref().ok());
            let fleet_text = match &fleet {
                Ok(n) => format!("{n} advisory record(s) published for the fleet"),
                Err(e) => format!(
                    "advisories not published to the fleet ({e}); `firmware rules update` again \
                     once the service is up"
                ),
            };
            out.done(
                &v,
                &format!(
                    "rule pack {} installed; {fleet_text}; `firmware rescan --all` applies it to \
                     stored blobs, and the collectors use it from their next start",
                    pack.version
                ),
            )
        }
    }
}

async fn gc(
    cfg: &Config,
    older_than: std::time::Duration,
    dry_run: bool,
    out: &Output,
) -> Result<()> {
    let before =
        chrono::Utc::now() - chrono::Duration::from_std(older_than).context("--older-than")?;
    let store = open_store(cfg)?;
    let orphans = store.clean_orphans(before, dry_run).await?;
    let staging = if dry_run {
        0
    } else {
        store.clean_staging(before).await?
    };
    // Partial downloads: `<store>/parts/*.part` (a later fetch of the same URL resumes them, so
    // only stale ones go).
    let mut parts = Vec::new();
    if let Some(root) = store.local_root() {
        let dir = root.join("parts");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let cutoff = std::time::SystemTime::now()
                .checked_sub(older_than)
                .unwrap_or(std::time::UNIX_EPOCH);
            for e in entries.flatten() {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < cutoff);
                if old && e.path().extension().is_some_and(|x| x == "part") {
                    if !dry_run {
                        std::fs::remove_file(e.path())
                            .with_context(|| format!("removing {}", e.path().display()))?;
                    }
                    parts.push(e.path());
                }
            }
        }
    }
    if !dry_run && (!orphans.is_empty() || staging > 0 || !parts.is_empty()) {
        tracing::info!(target: "audit", by = %operator(), orphans = orphans.len(), staging, parts = parts.len(), "firmware store garbage collected");
    }
    let text = if dry_run {
        format!(
            "would delete: {} blob(s) without a manifest, {} partial download(s) (staging is not listed in a dry run)",
            orphans.len(),
            parts.len()
        )
    } else {
        format!(
            "deleted: {} blob(s) without a manifest, {staging} staging object(s), {} partial download(s)",
            orphans.len(),
            parts.len()
        )
    };
    out.done(
        &json!({
            "dry_run": dry_run,
            "orphan_blobs": orphans,
            "staging_objects": staging,
            "partial_downloads": parts,
        }),
        &text,
    )
}

fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(headers.to_vec());
    t
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn short(sha: &str) -> &str {
    sha.get(..16).unwrap_or(sha)
}

/// Where a finding is, in one cell.
fn place(f: &Finding) -> String {
    let mut s = f.evidence.container_path.clone().unwrap_or_default();
    if let Some(o) = f.evidence.offset {
        s.push_str(&format!(" @0x{o:x}"));
    }
    s
}

/// The most telling piece of evidence, in one cell.
fn evidence(f: &Finding) -> String {
    let e = &f.evidence;
    let mut parts = Vec::new();
    if let Some(v) = &e.variable {
        parts.push(v.clone());
    }
    if let Some(s) = &e.cert_subject {
        parts.push(s.clone());
    }
    if let Some(s) = &e.cert_sha1 {
        parts.push(format!("sha1 {s}"));
    }
    if let Some(h) = &e.hash {
        parts.push(format!("hash {h}"));
    }
    if parts.is_empty()
        && let Some(d) = &e.detail
    {
        parts.push(d.clone());
    }
    parts.join("; ")
}

fn findings_table(findings: &[Finding], sha: Option<&str>) -> Table {
    let mut headers = vec!["severity", "rule", "subject", "where", "evidence"];
    if sha.is_some() {
        headers.insert(0, "sha256");
    }
    let mut t = table(&headers);
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.rule_id.cmp(&b.rule_id)));
    for f in sorted {
        let mut row = vec![
            Severity::as_str(f.severity).to_string(),
            f.rule_id.clone(),
            f.subject.clone(),
            place(f),
            evidence(f),
        ];
        if let Some(s) = sha {
            row.insert(0, short(s).to_string());
        }
        t.add_row(row);
    }
    t
}

/// Entry point of `metal-automata firmware`.
pub async fn run(
    cfg: &Config,
    server: Option<&str>,
    api: Option<ApiClient>,
    cmd: FirmwareCommand,
    out: &Output,
) -> Result<()> {
    match cmd {
        FirmwareCommand::Scan(a) => scan_file(cfg, &a, out).await,
        FirmwareCommand::Import { path, rules } => {
            let rules = load_rules(cfg, rules.as_deref())?;
            import(cfg, api.as_ref(), &path, &rules, out).await
        }
        FirmwareCommand::Ls => ls(cfg, out).await,
        FirmwareCommand::Show { sha256 } => show(cfg, &sha256, out).await,
        FirmwareCommand::Quarantine { sha256, reason } => {
            set_quarantine(cfg, api.as_ref(), &sha256, &reason, true, out).await
        }
        FirmwareCommand::Release { sha256, reason } => {
            set_quarantine(cfg, api.as_ref(), &sha256, &reason, false, out).await
        }
        FirmwareCommand::Rescan {
            all: _,
            sha256,
            rules,
        } => {
            let rules = load_rules(cfg, rules.as_deref())?;
            rescan(cfg, api.as_ref(), sha256.as_deref(), &rules, out).await
        }
        FirmwareCommand::Findings { rule, server_id } => {
            findings(
                cfg,
                api.as_ref(),
                rule.as_deref(),
                server_id.as_deref(),
                out,
            )
            .await
        }
        FirmwareCommand::Catalog { command } => match command {
            CatalogCommand::Add {
                name,
                url,
                format,
                trust_roots,
                allow_unsigned,
            } => {
                let format = format.format(&trust_roots, allow_unsigned)?;
                catalog_add(cfg, &name, &url, format, out)
            }
            CatalogCommand::Ls => catalog_ls(cfg, out),
            CatalogCommand::Sync { name } => {
                catalog_sync(cfg, api.as_ref(), name.as_deref(), out).await
            }
            CatalogCommand::Rm { name } => catalog_rm(cfg, &name, out),
        },
        FirmwareCommand::Fetch { entry, rules } => {
            let rules = load_rules(cfg, rules.as_deref())?;
            fetch(cfg, api.as_ref(), &entry, &rules, out).await
        }
        FirmwareCommand::Rules { command } => rules_command(cfg, api.as_ref(), command, out).await,
        FirmwareCommand::Updates { server_id, all } => {
            let api = api
                .context("`firmware updates` reads the inventory from the service: set --server")?;
            updates(cfg, &api, server_id.as_deref(), all, out).await
        }
        FirmwareCommand::Gc {
            older_than,
            dry_run,
        } => gc(cfg, *older_than, dry_run, out).await,
        FirmwareCommand::Remote { command } => {
            crate::firmware_remote::run(cfg, server, command, out).await
        }
        FirmwareCommand::Url {
            sha256,
            expires_in,
            base,
        } => {
            let signer = automata_query::firmware::load_or_create_signer(
                &firmware_dir(cfg).join("blob-url.key"),
            )?;
            let m = manifest_of(&open_store(cfg)?, &sha256).await?;
            if let Some(q) = &m.quarantine {
                bail!(
                    "{} is quarantined ({}); the service will not serve it until `firmware release`",
                    m.sha256,
                    q.reason
                );
            }
            let sha = m.sha256;
            let expires = chrono::Utc::now()
                + chrono::Duration::from_std(*expires_in).context("--expires-in")?;
            let token = signer
                .sign_blob_url(&sha, expires)
                .context("not a SHA-256")?;
            let base = base
                .or_else(|| server.map(str::to_string))
                .unwrap_or_else(|| local_api_base(cfg));
            let url = format!(
                "{}/api/v1/firmware/blobs/{sha}?token={token}",
                base.trim_end_matches('/')
            );
            out.done(
                &json!({"url": url, "expires": expires.to_rfc3339()}),
                &format!("{url}\n(valid until {})", expires.to_rfc3339()),
            )
        }
    }
}

// ---------------------------------------------------------------- scan

async fn scan_file(cfg: &Config, a: &ScanArgs, out: &Output) -> Result<()> {
    let rules = load_rules(cfg, a.rules.as_deref())?;
    let arg = a.file.to_string_lossy();
    let report = if !a.file.exists() && automata_fwstore::validate_sha256(&arg).is_ok() {
        // A stored blob by its digest (the file does not exist here).
        let store = open_store(cfg)?;
        let m = manifest_of(&store, &arg).await?;
        let bytes = read_blob(&store, &m.sha256).await?;
        automata_fwscan::scan(&bytes, &blob_name(&m), &rules, &Limits::default())
    } else {
        automata_fwscan::scan_path(&a.file, &rules, &Limits::default())
            .with_context(|| format!("cannot scan {}", a.file.display()))?
    };
    if !out.is_table() {
        return out.json(&report);
    }
    print_report(&report);
    Ok(())
}

fn print_report(r: &ScanReport) {
    println!("{}  {} bytes  sha256 {}", r.name, r.size, r.sha256);
    println!("rule pack {}", r.rule_pack);
    let nodes = r.nodes();
    let mut by_format: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &nodes {
        *by_format.entry(n.format.as_str()).or_default() += 1;
    }
    let mut t = table(&[
        "top-level container",
        "offset",
        "size",
        "guid / name",
        "contains",
    ]);
    for n in &r.tree {
        let mut inner = 0usize;
        let mut stack: Vec<&automata_fwscan::Node> = n.children.iter().collect();
        while let Some(c) = stack.pop() {
            inner += 1;
            stack.extend(c.children.iter());
        }
        t.add_row(vec![
            n.format.clone(),
            format!("0x{:x}", n.offset),
            n.size.to_string(),
            n.guid
                .clone()
                .or_else(|| n.name.clone())
                .unwrap_or_default(),
            format!("{inner} container(s)"),
        ]);
    }
    println!("{t}");
    let summary: Vec<String> = by_format.iter().map(|(f, n)| format!("{f} {n}")).collect();
    println!("{} container(s): {}", nodes.len(), summary.join(", "));
    for sb in &r.secure_boot {
        let mut t = table(&["variable", "present", "certificates", "sha256", "other"]);
        for v in &sb.variables {
            t.add_row(vec![
                v.name.clone(),
                if v.present { "yes" } else { "no" }.to_string(),
                v.cert_subjects.join("\n"),
                v.sha256_count.to_string(),
                v.other_count.to_string(),
            ]);
        }
        println!("Secure Boot variables in {}:\n{t}", sb.path);
    }
    if r.findings.is_empty() {
        println!("no findings");
    } else {
        println!("{}", findings_table(&r.findings, None));
        let worst = r.max_severity().map(Severity::as_str).unwrap_or("-");
        println!("{} finding(s), worst {worst}", r.findings.len());
    }
    if !r.errors.is_empty() {
        println!(
            "{} structural problem(s) (reported as FW-FMT-00x)",
            r.errors.len()
        );
    }
    for n in &r.notes {
        println!("note: {n}");
    }
}

// ---------------------------------------------------------------- store

/// What a scan leaves in a manifest (`last_scan.result`): enough for `ls`, `show`, `findings`.
#[derive(Debug, Serialize, Deserialize)]
struct ScanSummary {
    name: String,
    max_severity: Option<Severity>,
    containers: usize,
    errors: usize,
    findings: Vec<Finding>,
}

fn summary_of(m: &Manifest) -> Option<ScanSummary> {
    let s = m.last_scan.as_ref()?;
    serde_json::from_value(s.result.clone()).ok()
}

pub(crate) async fn read_blob(store: &FirmwareStore, sha: &str) -> Result<Vec<u8>> {
    let body = store
        .blob_range(sha, automata_fwstore::BlobRange::Full)
        .await
        .with_context(|| format!("reading blob {sha}"))?;
    let mut bytes = Vec::with_capacity(usize::try_from(body.total_size).unwrap_or(0));
    let mut stream = body.stream;
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.with_context(|| format!("reading blob {sha}"))?);
    }
    Ok(bytes)
}

/// Synced catalog entries by key (`catalog/entry`).
type EntryIndex = BTreeMap<String, CatalogEntry>;

/// The synced catalogs' entries by key; an unreadable snapshot is skipped with a warning.
fn entry_index(cfg: &Config) -> EntryIndex {
    match synced_entries(cfg) {
        Ok(v) => v.into_iter().map(|e| (e.key(), e)).collect(),
        Err(e) => {
            eprintln!("catalogs unreadable ({e:#}); advisories are matched without them");
            EntryIndex::new()
        }
    }
}

/// What a stored blob is, by each catalog entry it was fetched for.
fn artifact_subjects(m: &Manifest, entries: &EntryIndex) -> Vec<(String, Subject)> {
    let mut out = Vec::new();
    for src in &m.sources {
        let (Some(cat), Some(id)) = (&src.catalog, &src.entry) else {
            continue;
        };
        let key = format!("{cat}/{id}");
        let Some(e) = entries.get(&key) else { continue };
        if out.iter().any(|(k, _)| k == &key) {
            continue;
        }
        let models = e.applies_to.models.join(", ");
        out.push((
            key,
            Subject {
                vendor: Some(e.vendor.clone()).filter(|v| !v.is_empty()),
                component: Some(e.component_type.clone()).filter(|c| !c.is_empty()),
                name: Some(e.name.clone()).filter(|n| !n.is_empty()),
                model: Some(models).filter(|m| !m.is_empty()),
                version: e.version.clone(),
            },
        ));
    }
    out
}

/// The store's signature record for a scanned package.
fn package_status(pkg: &automata_fwscan::package::PackageSignature) -> SignatureStatus {
    use automata_fwscan::signed::Verdict;
    let state = match pkg.verdict {
        None => SignatureState::Missing,
        Some(Verdict::Valid) => SignatureState::Valid,
        Some(Verdict::Untrusted) => SignatureState::Untrusted,
        Some(Verdict::Invalid) => SignatureState::Invalid,
        Some(Verdict::UnsupportedAlgorithm) => SignatureState::UnsupportedAlgorithm,
    };
    let detail = match (&pkg.signer, &pkg.trusted_root) {
        (Some(s), Some(r)) => format!("{}: {s} under {r}", pkg.format),
        (Some(s), None) => format!("{}: {s}", pkg.format),
        _ => format!("{}: {}", pkg.format, pkg.detail),
    };
    SignatureStatus {
        state,
        detail: Some(detail),
        checked_at: Some(chrono::Utc::now()),
    }
}

/// What one scan of a stored blob did.
#[derive(Debug, Serialize)]
struct Scanned {
    sha256: String,
    name: String,
    max_severity: Option<Severity>,
    rule_ids: Vec<String>,
    quarantined: bool,
    manifest: Manifest,
}

/// Scans a stored blob, records the scan, quarantines on a critical finding (unless an operator
/// released that very finding), and adds its events to `ev`.
async fn scan_stored(
    store: &FirmwareStore,
    sha: &str,
    name: &str,
    rules: &RulePack,
    entries: &EntryIndex,
    ev: &mut FirmwareEvents,
) -> Result<Scanned> {
    let bytes = read_blob(store, sha).await?;
    let mut report = automata_fwscan::scan(&bytes, name, rules, &Limits::default());
    drop(bytes);
    // VULN-*: advisories match what the blob's catalog sources say it is.
    if let Some(m) = store
        .manifest(sha)
        .await
        .with_context(|| format!("reading the manifest of {sha}"))?
    {
        for (key, subject) in artifact_subjects(&m, entries) {
            report
                .findings
                .extend(automata_fwscan::advisory::advisory_findings(
                    &subject,
                    rules,
                    automata_fwscan::Source::Blob,
                    &format!("catalog entry {key}"),
                ));
        }
    }
    let summary = ScanSummary {
        name: name.to_string(),
        max_severity: report.max_severity(),
        containers: report.nodes().len(),
        errors: report.errors.len(),
        findings: report.findings.clone(),
    };
    let mut manifest = store
        .record_scan(
            sha,
            json!({"version": rules.version}),
            serde_json::to_value(&summary)?,
        )
        .await
        .with_context(|| format!("recording the scan of {sha}"))?;
    if let Some(pkg) = &report.package {
        // The package's own signature: a valid one makes the blob `verified-signature`.
        let status = package_status(pkg);
        if manifest.signature.state != status.state || manifest.signature.detail != status.detail {
            manifest = store
                .set_signature(sha, status)
                .await
                .with_context(|| format!("recording the package signature of {sha}"))?;
        }
    }
    if let Some(crit) = report
        .findings
        .iter()
        .find(|f| f.severity == Severity::Critical)
    {
        let reason = format!("critical finding {}", crit.rule_id);
        let released = manifest
            .quarantine_log
            .iter()
            .rposition(|e| e.action == "quarantine" && e.reason == reason)
            .is_some_and(|i| {
                manifest.quarantine_log[i..]
                    .iter()
                    .any(|e| e.action == "release")
            });
        if manifest.quarantine.is_none() && !released {
            manifest = store
                .quarantine(sha, &reason, "scanner")
                .await
                .with_context(|| format!("quarantining {sha}"))?;
            tracing::info!(target: "audit", sha256 = %sha, reason = %reason, "firmware quarantined by the scanner");
        }
    }
    let now = now_ms();
    let max = report
        .max_severity()
        .map(|s| Severity::as_str(s).to_string());
    ev.scans.push(FirmwareScanResult {
        sha256: sha.to_string(),
        scanner: concat!("metal-automata ", env!("CARGO_PKG_VERSION")).to_string(),
        verdict: if report.findings.is_empty() {
            ScanVerdict::Clean
        } else {
            ScanVerdict::Finding
        },
        findings: report
            .findings
            .iter()
            .map(|f| ScanFinding {
                rule: f.rule_id.clone(),
                severity: Severity::as_str(f.severity).into(),
                detail: f.subject.clone(),
            })
            .collect(),
        scanned_at: now,
        rule_pack: rules.version.clone(),
        max_severity: max,
    });
    ev.findings.extend(
        report
            .findings
            .iter()
            .map(|f| automata_producers::findings::finding_record(sha, TargetKind::Blob, f, now)),
    );
    Ok(Scanned {
        sha256: sha.to_string(),
        name: name.to_string(),
        max_severity: report.max_severity(),
        rule_ids: report.rule_ids().into_iter().collect(),
        quarantined: manifest.quarantine.is_some(),
        manifest,
    })
}

fn integrity_name(m: &Manifest) -> String {
    serde_json::to_value(m.integrity)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{:?}", m.integrity))
}

/// A display name: the last source's file name or catalog entry.
fn blob_name(m: &Manifest) -> String {
    let Some(s) = m.sources.last() else {
        return m.sha256.clone();
    };
    if let (Some(c), Some(e)) = (&s.catalog, &s.entry) {
        return format!("{c}/{e}");
    }
    s.url
        .as_deref()
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .unwrap_or(&m.sha256)
        .to_string()
}

fn artifact_event(m: &Manifest, entry: Option<&CatalogEntry>) -> FirmwareArtifact {
    let src = m.sources.last();
    let max_severity = summary_of(m)
        .and_then(|s| s.max_severity)
        .map(|s| Severity::as_str(s).to_string());
    FirmwareArtifact {
        sha256: m.sha256.clone(),
        size: i64::try_from(m.size).unwrap_or(i64::MAX),
        vendor: entry.map(|e| e.vendor.clone()).unwrap_or_default(),
        component: ComponentKind::Other,
        name: entry.map_or_else(|| blob_name(m), |e| e.name.clone()),
        version: entry.map(|e| e.version.clone()).unwrap_or_default(),
        catalog: src
            .and_then(|s| s.catalog.clone())
            .unwrap_or_else(|| "import".into()),
        url: src.and_then(|s| s.url.clone()),
        stored_at: m.created_at.timestamp_millis(),
        storage_path: automata_fwstore::blob_path(&m.sha256).to_string(),
        integrity: integrity_name(m),
        quarantined: m.quarantine.is_some(),
        quarantine_reason: m.quarantine.as_ref().map(|q| q.reason.clone()),
        max_severity,
    }
}

/// Sends events to the service; a service that is down is a warning, not a failure.
async fn publish(api: Option<&ApiClient>, ev: FirmwareEvents) {
    let Some(api) = api else { return };
    let empty = ev.artifacts.is_empty()
        && ev.audit.is_empty()
        && ev.scans.is_empty()
        && ev.findings.is_empty()
        && ev.catalog.is_empty()
        && ev.catalog_removed.is_empty()
        && ev.catalog_syncs.is_empty()
        && ev.updates.is_empty();
    if empty {
        return;
    }
    // Catalogs can hold tens of thousands of entries: keep each request small.
    const CHUNK: usize = 1000;
    let mut batches = vec![FirmwareEvents {
        artifacts: ev.artifacts,
        scans: ev.scans,
        findings: ev.findings,
        audit: ev.audit,
        catalog_syncs: ev.catalog_syncs,
        ..Default::default()
    }];
    for c in ev.updates.chunks(CHUNK) {
        batches.push(FirmwareEvents {
            updates: c.to_vec(),
            ..Default::default()
        });
    }
    for c in ev.catalog.chunks(CHUNK) {
        batches.push(FirmwareEvents {
            catalog: c.to_vec(),
            ..Default::default()
        });
    }
    for c in ev.catalog_removed.chunks(CHUNK) {
        batches.push(FirmwareEvents {
            catalog_removed: c.to_vec(),
            ..Default::default()
        });
    }
    for b in batches {
        let body = match serde_json::to_value(&b) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("warning: events not published: {e}");
                return;
            }
        };
        if let Err(e) = api.post("/api/v1/firmware/events", &body).await {
            eprintln!("warning: events not published (is the service up?): {e:#}");
            return;
        }
    }
}

/// Every regular file under `path` (or `path` itself), sorted.
fn files_under(path: &Path) -> Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

async fn import(
    cfg: &Config,
    api: Option<&ApiClient>,
    path: &Path,
    rules: &RulePack,
    out: &Output,
) -> Result<()> {
    let store = open_store(cfg)?;
    let entries = entry_index(cfg);
    let files = files_under(path)?;
    let bar = out.progress(files.len() as u64, "import");
    let mut ev = FirmwareEvents::default();
    let mut rows = Vec::new();
    let mut failed = 0usize;
    for f in &files {
        bar.set_message(f.display().to_string());
        let name = f
            .file_name()
            .map_or_else(|| f.display().to_string(), |n| n.to_string_lossy().into());
        let r = async {
            let m = store
                .import_file(f, &Expected::default())
                .await
                .with_context(|| format!("importing {}", f.display()))?;
            scan_stored(&store, &m.sha256, &name, rules, &entries, &mut ev).await
        }
        .await;
        match r {
            Ok(s) => {
                ev.artifacts.push(artifact_event(&s.manifest, None));
                rows.push(
                    json!({"file": f, "ok": true, "sha256": s.sha256, "size": s.manifest.size,
                    "integrity": integrity_name(&s.manifest), "max_severity": s.max_severity,
                    "rule_ids": s.rule_ids, "quarantined": s.quarantined,
                    "quarantine_reason": s.manifest.quarantine.as_ref().map(|q| q.reason.clone())}),
                );
            }
            Err(e) => {
                failed += 1;
                rows.push(json!({"file": f, "ok": false, "error": format!("{e:#}")}));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    publish(api, ev).await;
    if out.is_table() {
        let mut t = table(&[
            "file",
            "sha256",
            "size",
            "integrity",
            "worst",
            "findings",
            "quarantined",
        ]);
        for r in &rows {
            let cell = |k: &str| match r.get(k) {
                None | Some(Value::Null) => "-".to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            };
            if r["ok"] == json!(false) {
                t.add_row(vec![cell("file"), format!("error: {}", cell("error"))]);
                continue;
            }
            let rules: Vec<String> = r["rule_ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            t.add_row(vec![
                cell("file"),
                short(&cell("sha256")).to_string(),
                cell("size"),
                cell("integrity"),
                cell("max_severity"),
                rules.join(" "),
                match r.get("quarantine_reason").and_then(Value::as_str) {
                    Some(q) => format!("yes: {q}"),
                    None => "no".into(),
                },
            ]);
        }
        println!("{t}");
        let into = match store_location(cfg)? {
            StoreLocation::Local(p) => p.display().to_string(),
            StoreLocation::S3(s) => format!("s3://{}/{}", s.bucket, s.prefix),
        };
        println!("{} file(s) imported into {into}", rows.len() - failed);
    } else {
        out.json(&json!({"imported": rows}))?;
    }
    if failed > 0 {
        bail!("{failed} of {} file(s) could not be imported", files.len());
    }
    Ok(())
}

async fn manifests(store: &FirmwareStore) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for sha in store.list().await.context("listing the firmware store")? {
        if let Some(m) = store.manifest(&sha).await? {
            out.push(m);
        }
    }
    Ok(out)
}

async fn ls(cfg: &Config, out: &Output) -> Result<()> {
    let store = open_store(cfg)?;
    let all = manifests(&store).await?;
    if !out.is_table() {
        return out.json(&json!({"artifacts": all}));
    }
    let mut t = table(&[
        "sha256",
        "name",
        "size",
        "integrity",
        "last scan",
        "worst",
        "quarantine",
    ]);
    for m in &all {
        let summary = summary_of(m);
        t.add_row(vec![
            m.sha256.clone(),
            blob_name(m),
            m.size.to_string(),
            integrity_name(m),
            m.last_scan.as_ref().map_or("never".into(), |s| {
                s.at.format("%Y-%m-%d %H:%M").to_string()
            }),
            summary
                .and_then(|s| s.max_severity)
                .map_or("-", Severity::as_str)
                .to_string(),
            m.quarantine
                .as_ref()
                .map_or("-".into(), |q| format!("{} ({})", q.reason, q.by)),
        ]);
    }
    println!("{t}");
    println!("{} blob(s)", all.len());
    Ok(())
}

async fn manifest_of(store: &FirmwareStore, sha: &str) -> Result<Manifest> {
    let sha = sha.to_ascii_lowercase();
    store
        .manifest(&sha)
        .await
        .with_context(|| format!("reading the manifest of {sha}"))?
        .with_context(|| format!("no blob {sha} in the store (see `firmware ls`)"))
}

async fn show(cfg: &Config, sha: &str, out: &Output) -> Result<()> {
    let store = open_store(cfg)?;
    let m = manifest_of(&store, sha).await?;
    if !out.is_table() {
        return out.json(&m);
    }
    let mut t = table(&["field", "value"]);
    t.add_row(vec!["sha256".to_string(), m.sha256.clone()]);
    t.add_row(vec!["size".to_string(), m.size.to_string()]);
    t.add_row(vec!["stored".to_string(), m.created_at.to_rfc3339()]);
    t.add_row(vec!["integrity".to_string(), integrity_name(&m)]);
    t.add_row(vec![
        "signature".to_string(),
        serde_json::to_string(&m.signature)?,
    ]);
    t.add_row(vec![
        "quarantine".to_string(),
        m.quarantine.as_ref().map_or("-".into(), |q| {
            format!("{} (by {}, {})", q.reason, q.by, q.at.to_rfc3339())
        }),
    ]);
    for s in &m.sources {
        t.add_row(vec![
            "source".to_string(),
            format!(
                "{:?} {} {} at {}",
                s.kind,
                s.catalog.as_deref().unwrap_or("-"),
                s.url.as_deref().unwrap_or("-"),
                s.fetched_at.to_rfc3339()
            ),
        ]);
    }
    for e in &m.quarantine_log {
        t.add_row(vec![
            e.action.clone(),
            format!("{} (by {}, {})", e.reason, e.by, e.at.to_rfc3339()),
        ]);
    }
    if let Some(s) = &m.last_scan {
        t.add_row(vec![
            "last scan".to_string(),
            format!("{} with rule pack {}", s.at.to_rfc3339(), s.rule_pack),
        ]);
    }
    println!("{t}");
    if let Some(s) = summary_of(&m)
        && !s.findings.is_empty()
    {
        println!("{}", findings_table(&s.findings, None));
    }
    Ok(())
}

fn operator() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "operator".into())
}

async fn set_quarantine(
    cfg: &Config,
    api: Option<&ApiClient>,
    sha: &str,
    reason: &str,
    quarantine: bool,
    out: &Output,
) -> Result<()> {
    if reason.trim().is_empty() {
        bail!("--reason must say why");
    }
    let store = open_store(cfg)?;
    let before = manifest_of(&store, sha).await?;
    let by = operator();
    let m = if quarantine {
        store.quarantine(&before.sha256, reason, &by).await?
    } else {
        if before.quarantine.is_none() {
            bail!("{} is not quarantined", before.sha256);
        }
        store.release(&before.sha256, reason, &by).await?
    };
    let action = if quarantine {
        "quarantined"
    } else {
        "released"
    };
    tracing::info!(target: "audit", sha256 = %m.sha256, by = %by, reason = %reason, "firmware {action}");
    let mut ev = FirmwareEvents::default();
    ev.artifacts.push(artifact_event(&m, None));
    ev.audit.push(automata_query::firmware::AuditNote {
        action: format!(
            "firmware.{}",
            if quarantine { "quarantine" } else { "release" }
        ),
        sha256: m.sha256.clone(),
        reason: reason.to_string(),
        by: by.clone(),
    });
    publish(api, ev).await;
    out.done(
        &serde_json::to_value(&m)?,
        &format!("{} {action} by {by}: {reason}", m.sha256),
    )
}

async fn rescan(
    cfg: &Config,
    api: Option<&ApiClient>,
    one: Option<&str>,
    rules: &RulePack,
    out: &Output,
) -> Result<()> {
    let store = open_store(cfg)?;
    let entries = entry_index(cfg);
    let targets = match one {
        Some(s) => vec![manifest_of(&store, s).await?],
        None => manifests(&store).await?,
    };
    let bar = out.progress(targets.len() as u64, "rescan");
    let mut ev = FirmwareEvents::default();
    let mut done = Vec::new();
    for m in &targets {
        let name = blob_name(m);
        bar.set_message(name.clone());
        let s = scan_stored(&store, &m.sha256, &name, rules, &entries, &mut ev).await?;
        ev.artifacts.push(artifact_event(&s.manifest, None));
        done.push(s);
        bar.inc(1);
    }
    bar.finish_and_clear();
    publish(api, ev).await;
    if !out.is_table() {
        return out.json(&json!({"rescanned": done}));
    }
    let mut t = table(&["sha256", "name", "worst", "findings", "quarantined"]);
    for s in &done {
        t.add_row(vec![
            s.sha256.clone(),
            s.name.clone(),
            s.max_severity.map_or("-", Severity::as_str).to_string(),
            s.rule_ids.join(" "),
            if s.quarantined { "yes" } else { "no" }.into(),
        ]);
    }
    println!("{t}");
    println!(
        "{} blob(s) rescanned with rule pack {}",
        done.len(),
        rules.version
    );
    Ok(())
}

/// Publishes `pack`'s advisories to `firmware.advisories`, and withdraws every other advisory
/// the fleet holds as active or `previous` listed (its findings resolve). What the fleet holds
/// is read from the topic, not from this machine's last pack, so a run after a failed one (or
/// from another machine) still withdraws what the new pack dropped. Returns the records sent.
async fn publish_advisories(
    api: &ApiClient,
    previous: &RulePack,
    pack: &RulePack,
) -> Result<usize> {
    let now = now_ms();
    let listed: BTreeSet<&str> = pack.advisories.iter().map(|a| a.id.as_str()).collect();
    let active = sql_rows(
        api,
        "SELECT id, title, severity FROM (SELECT id, title, severity, withdrawn, \
         row_number() OVER (PARTITION BY id ORDER BY _log_timestamp DESC, _offset DESC) AS _rn \
         FROM raw.firmware_advisories) WHERE _rn = 1 AND NOT withdrawn",
    )
    .await
    .context("reading the fleet's advisories")?;
    let mut withdrawn: BTreeMap<String, FirmwareAdvisory> = BTreeMap::new();
    for a in previous.advisories.iter() {
        withdrawn.insert(a.id.clone(), advisory_record(a, &pack.version, true, now));
    }
    for r in &active {
        let Some(id) = row_text(r, "id") else {
            continue;
        };
        withdrawn
            .entry(id.clone())
            .or_insert_with(|| FirmwareAdvisory {
                id,
                title: row_text(r, "title").unwrap_or_default(),
                severity: row_text(r, "severity").unwrap_or_else(|| "info".into()),
                vendor: None,
                component: None,
                names: Vec::new(),
                models: Vec::new(),
                ranges: Vec::new(),
                references: Vec::new(),
                rule_pack: pack.version.clone(),
                withdrawn: true,
                published_at: now,
            });
    }
    withdrawn.retain(|id, _| !listed.contains(id.as_str()));
    let advisories: Vec<_> = pack
        .advisories
        .iter()
        .map(|a| advisory_record(a, &pack.version, false, now))
        .chain(withdrawn.into_values())
        .collect();
    let n = advisories.len();
    let body = serde_json::to_value(FirmwareEvents {
        advisories,
        ..Default::default()
    })?;
    api.post("/api/v1/firmware/events", &body).await?;
    Ok(n)
}

/// Publishes the advisories of the pack in force that `firmware.advisories` does not hold yet
/// (the first start, or a release that ships new ones), so the fleet is matched against them
/// without an operator's step. Advisories already there, withdrawn ones included, are left as
/// they are: another instance's or an operator's word is never overwritten from a local file.
pub async fn seed_advisories(
    cfg: &Config,
    log: &automata_log::MessageLog,
    ids: &automata_schemas::SchemaIds,
) -> Result<usize> {
    use automata_schemas::catalog::{FIRMWARE_ADVISORIES, topic};
    let pack = installed_pack(cfg)?;
    if pack.advisories.is_empty() {
        return Ok(0);
    }
    let ranges: Vec<_> = log
        .watermarks(FIRMWARE_ADVISORIES)
        .await?
        .into_iter()
        .filter(|w| w.high > w.low)
        .map(|w| automata_log::ReadRange {
            topic: FIRMWARE_ADVISORIES.to_string(),
            partition: w.partition,
            from: w.low,
            to: w.high,
        })
        .collect();
    let mut held = BTreeSet::new();
    let mut records = log
        .read_ranges_whole(&ranges, std::time::Duration::from_secs(10))
        .await
        .context(
            "reading firmware.advisories (nothing seeded: a partial read could undo a withdrawal)",
        )?;
    records.sort_by_key(|r| r.offset);
    for r in records {
        let Some(key) = r.record.key.as_deref() else {
            continue;
        };
        let key = String::from_utf8_lossy(key).into_owned();
        match r.record.value {
            Some(_) => held.insert(key),
            None => held.remove(&key),
        };
    }
    let spec = topic(FIRMWARE_ADVISORIES).context("the firmware.advisories topic")?;
    let id = ids
        .get(FIRMWARE_ADVISORIES)
        .context("no schema id for firmware.advisories")?;
    let now = now_ms();
    let mut out = Vec::new();
    for a in pack.advisories.iter().filter(|a| !held.contains(&a.id)) {
        let bytes =
            automata_schemas::encode(spec, id, &advisory_record(a, &pack.version, false, now))?;
        out.push(automata_log::Record::new(a.id.clone(), bytes).with_timestamp(now));
    }
    let n = out.len();
    if n > 0 {
        log.send_batch(FIRMWARE_ADVISORIES, out).await?;
    }
    Ok(n)
}

async fn findings(
    cfg: &Config,
    api: Option<&ApiClient>,
    rule: Option<&str>,
    server: Option<&str>,
    out: &Output,
) -> Result<()> {
    let mut rows: Vec<(String, Finding)> = Vec::new();
    if server.is_none() {
        let store = open_store(cfg)?;
        for m in manifests(&store).await? {
            if let Some(s) = summary_of(&m) {
                for f in s.findings {
                    if rule.is_none_or(|r| r.eq_ignore_ascii_case(&f.rule_id)) {
                        rows.push((m.sha256.clone(), f));
                    }
                }
            }
        }
    }
    let live = match api {
        Some(api) => live_findings(api, rule, server, None).await,
        None => Err(anyhow::anyhow!("no service configured")),
    };
    let live = match (live, server) {
        (Ok(l), _) => Some(l),
        (Err(e), Some(_)) => return Err(e.context("live findings need the service (--server)")),
        (Err(e), None) => {
            if out.is_table() {
                eprintln!("live servers not shown: {e:#}");
            }
            None
        }
    };
    if !out.is_table() {
        let list: Vec<Value> = rows
            .iter()
            .map(|(sha, f)| json!({"sha256": sha, "finding": f}))
            .collect();
        return out.json(&json!({"findings": list, "servers": live.unwrap_or_default()}));
    }
    if server.is_none() {
        let mut t = table(&["sha256", "severity", "rule", "subject", "where", "evidence"]);
        rows.sort_by(|a, b| b.1.severity.cmp(&a.1.severity).then(a.0.cmp(&b.0)));
        for (sha, f) in &rows {
            t.add_row(vec![
                short(sha).to_string(),
                Severity::as_str(f.severity).into(),
                f.rule_id.clone(),
                f.subject.clone(),
                place(f),
                evidence(f),
            ]);
        }
        println!("{t}");
        println!("{} finding(s) in stored blobs", rows.len());
    }
    if let Some(live) = live {
        let mut t = table(&[
            "server", "severity", "rule", "subject", "source", "evidence", "since",
        ]);
        for f in &live {
            let cell = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut ev = cell("variable");
            let subject = cell("cert_subject");
            if !subject.is_empty() {
                ev = format!("{ev} {subject}");
            }
            t.add_row(vec![
                cell("server"),
                cell("severity"),
                cell("rule_id"),
                cell("subject"),
                cell("source"),
                ev,
                cell("first_seen"),
            ]);
        }
        println!("{t}");
        println!("{} open finding(s) on live servers", live.len());
    }
    Ok(())
}

/// Open live-server findings: the newest record per server, rule and subject, when open.
async fn live_findings(
    api: &ApiClient,
    rule: Option<&str>,
    server: Option<&str>,
    source: Option<&str>,
) -> Result<Vec<Value>> {
    let mut filter = String::new();
    if let Some(s) = source {
        filter.push_str(&format!(" AND source = {}", sql_string(s)));
    }
    if let Some(s) = server {
        filter.push_str(&format!(" AND lower(server) = lower({})", sql_string(s)));
    }
    if let Some(r) = rule {
        filter.push_str(&format!(" AND upper(rule_id) = upper({})", sql_string(r)));
    }
    let query = format!(
        "SELECT server, severity, rule_id, subject, source, variable, cert_subject, \
         cert_not_after, first_seen FROM (SELECT target AS server, severity, rule_id, subject, \
         source, variable, cert_subject, cert_not_after, first_seen, state, row_number() OVER \
         (PARTITION BY target, rule_id, subject ORDER BY recorded_at DESC, record_offset DESC) \
         AS rn FROM firmware_findings WHERE target_kind = 'server') \
         WHERE rn = 1 AND state = 'open'{filter} \
         ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 \
         ELSE 3 END, server, rule_id"
    );
    sql_rows(api, &query)
        .await
        .context("querying firmware_findings")
}

/// A non-empty, trimmed text column of an SQL API row.
fn row_text(r: &Value, k: &str) -> Option<String> {
    r.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `s` as an SQL string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The rows of one query through the service's SQL API, as JSON objects.
async fn sql_rows(api: &ApiClient, query: &str) -> Result<Vec<Value>> {
    let answer = api.post("/api/v1/sql", &json!({ "query": query })).await?;
    Ok(answer
        .get("rows")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

// ---------------------------------------------------------------- updates

/// Every entry of every synced catalog.
fn synced_entries(cfg: &Config) -> Result<Vec<CatalogEntry>> {
    let mut entries = Vec::new();
    for c in load_catalogs(cfg)? {
        let Some(p) = &c.snapshot_path else { continue };
        match automata_fwcatalog::sync::load_snapshot(p) {
            Ok(Some(snap)) => entries.extend(snap.entries.into_values()),
            Ok(None) => {}
            Err(e) => eprintln!(
                "catalog {}: last snapshot unreadable ({e}); skipped",
                c.name
            ),
        }
    }
    Ok(entries)
}

/// The fleet's (or one server's) components matched against every synced catalog entry.
struct UpdateEvaluation {
    components: usize,
    entries: usize,
    matches: Vec<automata_processors::firmware_updates::ComponentMatch>,
}

/// Reads the components from the service's SQL and matches each against the synced catalogs;
/// components no entry applies to are left out.
async fn evaluate_updates(
    cfg: &Config,
    api: &ApiClient,
    server: Option<&str>,
) -> Result<UpdateEvaluation> {
    let entries = synced_entries(cfg)?;
    if entries.is_empty() {
        bail!("no synced catalog: `firmware catalog add` one, then `firmware catalog sync`");
    }
    let filter = server
        .map(|s| format!(" AND lower(c.server_id) = lower({})", sql_string(s)))
        .unwrap_or_default();
    let query = format!(
        "SELECT c.server_id, c.component_id, c.kind, c.name, c.firmware_version, \
         c.properties['software_id'] AS software_id, s.model AS server_model, i.sku \
         FROM components c \
         LEFT JOIN servers s ON s.server_id = c.server_id \
         LEFT JOIN (SELECT server_id, sku FROM (SELECT server_id, sku, row_number() OVER \
                    (PARTITION BY server_id ORDER BY collected_at DESC) AS rn FROM inventory) \
                    WHERE rn = 1) i ON i.server_id = c.server_id \
         WHERE c.firmware_version IS NOT NULL AND c.firmware_version <> ''{filter} \
         ORDER BY c.server_id, c.component_id"
    );
    let rows = sql_rows(api, &query)
        .await
        .context("reading the inventory (components)")?;
    let text = row_text;
    let mut matches = Vec::new();
    for r in &rows {
        let installed = automata_fwcatalog::InstalledComponent {
            kind: text(r, "kind").unwrap_or_default(),
            model: text(r, "server_model"),
            system_id: text(r, "sku"),
            software_id: text(r, "software_id"),
            firmware_version: text(r, "firmware_version").unwrap_or_default(),
            ..Default::default()
        };
        let verdict = automata_fwcatalog::match_component(&entries, &installed);
        if verdict == automata_fwcatalog::MatchVerdict::NoMatch {
            continue;
        }
        matches.push(automata_processors::firmware_updates::ComponentMatch {
            server: text(r, "server_id").unwrap_or_default(),
            component_id: text(r, "component_id").unwrap_or_default(),
            name: text(r, "name"),
            installed: installed.firmware_version,
            kind: installed.kind,
            verdict,
        });
    }
    Ok(UpdateEvaluation {
        components: rows.len(),
        entries: entries.len(),
        matches,
    })
}

async fn updates(
    cfg: &Config,
    api: &ApiClient,
    server: Option<&str>,
    all: bool,
    out: &Output,
) -> Result<()> {
    let eval = evaluate_updates(cfg, api, server).await?;
    let found: Vec<Value> = eval
        .matches
        .iter()
        .filter(|m| all || !matches!(m.verdict, automata_fwcatalog::MatchVerdict::Current { .. }))
        .map(|m| {
            json!({
                "server": m.server,
                "component_id": m.component_id,
                "kind": m.kind,
                "name": m.name,
                "match": m.verdict,
            })
        })
        .collect();
    if !out.is_table() {
        return out.json(&json!({"components": eval.components, "updates": found}));
    }
    let mut t = table(&[
        "server",
        "component",
        "installed",
        "latest",
        "verdict",
        "criticality",
        "entry",
    ]);
    for f in &found {
        let m = &f["match"];
        let cell = |v: &Value| v.as_str().unwrap_or("").to_string();
        let crit = cell(&m["criticality"]);
        t.add_row(vec![
            cell(&f["server"]),
            format!("{} {}", cell(&f["kind"]), cell(&f["component_id"])),
            cell(
                m.get("installed")
                    .or(m.get("version"))
                    .unwrap_or(&Value::Null),
            ),
            cell(m.get("latest").or(m.get("version")).unwrap_or(&Value::Null)),
            cell(&m["verdict"]),
            crit,
            cell(&m["entry_key"]),
        ]);
    }
    println!("{t}");
    let behind = found
        .iter()
        .filter(|f| f["match"]["verdict"] == "update-available")
        .count();
    println!(
        "{behind} update(s) available across {} component(s) checked against {} catalog entries",
        eval.components, eval.entries
    );
    Ok(())
}

// ---------------------------------------------------------------- catalogs

fn catalogs_dir(cfg: &Config) -> PathBuf {
    firmware_dir(cfg).join("catalogs")
}

fn catalogs_file(cfg: &Config) -> PathBuf {
    catalogs_dir(cfg).join("catalogs.json")
}

fn load_catalogs(cfg: &Config) -> Result<Vec<CatalogSource>> {
    let path = catalogs_file(cfg);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn save_catalogs(cfg: &Config, list: &[CatalogSource]) -> Result<()> {
    replace_file(&catalogs_file(cfg), &serde_json::to_vec_pretty(list)?)
}

/// Writes `path` whole through a temporary file beside it and a rename, so a reader sees the old
/// or the new content, never half of it.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn valid_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        bail!("catalog name {name:?}: use letters, digits, '-', '_' and '.' (at most 64)");
    }
    Ok(())
}

fn catalog_add(
    cfg: &Config,
    name: &str,
    url: &str,
    format: CatalogFormat,
    out: &Output,
) -> Result<()> {
    valid_name(name)?;
    let parsed = url::Url::parse(url).with_context(|| format!("catalog URL {url}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("catalog URL {url}: only http and https");
    }
    let mut list = load_catalogs(cfg)?;
    if list.iter().any(|c| c.name == name) {
        bail!("catalog {name} exists (remove it first with `firmware catalog rm {name}`)");
    }
    let kind = match &format {
        CatalogFormat::Dell => "dell",
        CatalogFormat::HpeSdr { .. } => "hpe",
        CatalogFormat::Lvfs { .. } => "lvfs",
        CatalogFormat::Generic => "generic",
        CatalogFormat::Lenovo => "lenovo",
    };
    let mut src = CatalogSource::new(name, url, format);
    src.snapshot_path = Some(catalogs_dir(cfg).join(format!("{name}.json")));
    list.push(src.clone());
    save_catalogs(cfg, &list)?;
    out.done(
        &serde_json::to_value(&src)?,
        &format!(
            "catalog {name} added ({kind}); run `metal-automata firmware catalog sync {name}`"
        ),
    )
}

fn catalog_ls(cfg: &Config, out: &Output) -> Result<()> {
    let list = load_catalogs(cfg)?;
    let mut rows = Vec::new();
    for c in &list {
        let snap = match &c.snapshot_path {
            Some(p) => automata_fwcatalog::sync::load_snapshot(p).ok().flatten(),
            None => None,
        };
        rows.push(json!({
            "name": c.name, "url": c.url, "format": serde_json::to_value(&c.format)?.get("format"),
            "entries": snap.as_ref().map(|s| s.entries.len()),
            "fetched_at": snap.as_ref().map(|s| s.fetched_at.clone()),
            "etag": snap.as_ref().and_then(|s| s.etag.clone()),
        }));
    }
    if !out.is_table() {
        return out.json(&json!({"catalogs": rows}));
    }
    let mut t = table(&["name", "format", "url", "entries", "last sync"]);
    for r in &rows {
        let c = |k: &str| match &r[k] {
            Value::Null => "-".to_string(),
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        t.add_row(vec![
            c("name"),
            c("format"),
            c("url"),
            c("entries"),
            c("fetched_at"),
        ]);
    }
    println!("{t}");
    Ok(())
}

fn catalog_rm(cfg: &Config, name: &str, out: &Output) -> Result<()> {
    let mut list = load_catalogs(cfg)?;
    let Some(i) = list.iter().position(|c| c.name == name) else {
        bail!("no catalog {name} (see `firmware catalog ls`)");
    };
    let src = list.remove(i);
    save_catalogs(cfg, &list)?;
    if let Some(p) = &src.snapshot_path {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
        }
    }
    out.done(
        &json!({"removed": name}),
        &format!("catalog {name} removed"),
    )
}

fn catalog_event(e: &CatalogEntry, change: &str, now: i64) -> FirmwareCatalogEntry {
    let a = &e.applies_to;
    FirmwareCatalogEntry {
        catalog: e.catalog.clone(),
        entry_id: e.entry_id.clone(),
        vendor: e.vendor.clone(),
        component_type: e.component_type.clone(),
        name: e.name.clone(),
        version: e.version.clone(),
        release_date: e.release_date.clone(),
        criticality: serde_json::to_value(e.criticality)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".into()),
        url: e.url.clone(),
        size: e.size.and_then(|s| i64::try_from(s).ok()),
        sha256: e.hashes.sha256.clone(),
        sha1: e.hashes.sha1.clone(),
        md5: e.hashes.md5.clone(),
        reboot: e.reboot,
        system_ids: a.system_ids.clone(),
        models: a.models.clone(),
        pci_ids: a.pci_ids.iter().map(pci_id).collect(),
        guids: a.guids.clone(),
        software_ids: a.software_ids.clone(),
        change: change.into(),
        synced_at: now,
    }
}

/// The format's name as `catalog ls` and `firmware.catalog.syncs` spell it (`hpe-sdr`, …).
fn catalog_format_name(f: &CatalogFormat) -> String {
    serde_json::to_value(f)
        .ok()
        .and_then(|v| v.get("format").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// An LVFS catalog's jcat outcome in a few words: the checksum always held (else the sync
/// failed), then what each signature blob was.
fn jcat_verdict(j: &automata_fwcatalog::lvfs::JcatReport) -> String {
    let sigs: Vec<String> = j
        .signatures
        .iter()
        .map(|s| {
            serde_json::to_value(&s.status)
                .ok()
                .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| "unknown".into())
        })
        .collect();
    if sigs.is_empty() {
        "sha256-verified, unsigned".into()
    } else {
        format!("sha256-verified, signatures: {}", sigs.join(", "))
    }
}

fn pci_id(p: &automata_fwcatalog::PciId) -> String {
    match (p.subvendor, p.subdevice) {
        (Some(sv), Some(sd)) => format!("{:04x}:{:04x}:{sv:04x}:{sd:04x}", p.vendor, p.device),
        _ => format!("{:04x}:{:04x}", p.vendor, p.device),
    }
}

async fn catalog_sync(
    cfg: &Config,
    api: Option<&ApiClient>,
    only: Option<&str>,
    out: &Output,
) -> Result<()> {
    let list = load_catalogs(cfg)?;
    let chosen: Vec<&CatalogSource> = list
        .iter()
        .filter(|c| only.is_none_or(|n| n == c.name))
        .collect();
    if let Some(n) = only
        && chosen.is_empty()
    {
        bail!("no catalog {n} (see `firmware catalog ls`)");
    }
    let bar = out.progress(chosen.len() as u64, "catalog sync");
    let mut ev = FirmwareEvents::default();
    let mut rows = Vec::new();
    let now = now_ms();
    let mut failed = 0usize;
    for src in chosen {
        bar.set_message(src.name.clone());
        let previous = match &src.snapshot_path {
            Some(p) => automata_fwcatalog::sync::load_snapshot(p)
                .with_context(|| format!("reading the snapshot of {}", src.name))?,
            None => None,
        };
        let prior = previous.as_ref().map(|p| p.entries.len() as i64);
        let mut rec = FirmwareCatalogSync {
            catalog: src.name.clone(),
            format: catalog_format_name(&src.format),
            url: src.url.clone(),
            status: "not-modified".into(),
            error: None,
            entries: prior,
            added: 0,
            changed: 0,
            removed: 0,
            sha256: previous.as_ref().map(|p| p.sha256.clone()),
            signature: None,
            synced_at: now,
        };
        match automata_fwcatalog::sync(src, previous.as_ref()).await {
            SyncOutcome::NotModified => {}
            SyncOutcome::Updated { snapshot, diff } => {
                ev.catalog
                    .extend(diff.added.iter().map(|e| catalog_event(e, "added", now)));
                ev.catalog.extend(
                    diff.changed
                        .iter()
                        .map(|c| catalog_event(&c.after, "changed", now)),
                );
                ev.catalog_removed
                    .extend(diff.removed.iter().map(CatalogEntry::key));
                rec.status = "updated".into();
                rec.url = snapshot.url.clone();
                rec.entries = Some(snapshot.entries.len() as i64);
                rec.added = diff.added.len() as i64;
                rec.changed = diff.changed.len() as i64;
                rec.removed = diff.removed.len() as i64;
                rec.sha256 = Some(snapshot.sha256.clone());
                rec.signature = snapshot.jcat.as_ref().map(jcat_verdict);
            }
            SyncOutcome::Failed { error } => {
                failed += 1;
                rec.status = "failed".into();
                rec.error = Some(error.to_string());
            }
        }
        let row = json!({"name": rec.catalog, "status": rec.status, "error": rec.error,
            "entries": rec.entries, "added": rec.added, "changed": rec.changed,
            "removed": rec.removed});
        ev.catalog_syncs.push(rec);
        rows.push(row);
        bar.inc(1);
    }
    bar.finish_and_clear();
    // The firmware-updates processor matches the fleet again from the catalog events.
    publish(api, ev).await;
    if out.is_table() {
        let mut t = table(&[
            "catalog", "status", "entries", "added", "changed", "removed", "error",
        ]);
        for r in &rows {
            let c = |k: &str| match &r[k] {
                Value::Null => "-".to_string(),
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            t.add_row(vec![
                c("name"),
                c("status"),
                c("entries"),
                c("added"),
                c("changed"),
                c("removed"),
                c("error"),
            ]);
        }
        println!("{t}");
    } else {
        out.json(&json!({"catalogs": rows}))?;
    }
    if failed > 0 {
        bail!("{failed} catalog(s) failed to sync (their last good snapshot stands)");
    }
    Ok(())
}

async fn fetch(
    cfg: &Config,
    api: Option<&ApiClient>,
    spec: &str,
    rules: &RulePack,
    out: &Output,
) -> Result<()> {
    let Some((cat, id)) = spec.split_once('/') else {
        bail!("{spec}: expected CATALOG/ENTRY");
    };
    let list = load_catalogs(cfg)?;
    let src = list
        .iter()
        .find(|c| c.name == cat)
        .with_context(|| format!("no catalog {cat} (see `firmware catalog ls`)"))?;
    let snap = match &src.snapshot_path {
        Some(p) => automata_fwcatalog::sync::load_snapshot(p)?,
        None => None,
    }
    .with_context(|| {
        format!("catalog {cat} has no snapshot yet: run `firmware catalog sync {cat}`")
    })?;
    let entry = snap
        .entries
        .get(spec)
        .or_else(|| snap.entries.values().find(|e| e.entry_id == id))
        .with_context(|| format!("no entry {id} in catalog {cat}"))?;
    let url = entry
        .url
        .clone()
        .with_context(|| format!("entry {spec} has no download URL"))?;
    let store = open_store(cfg)?;
    let entries = entry_index(cfg);
    let downloader = Downloader::new(store.clone(), DownloadConfig::default())
        .context("building the downloader")?;
    let bar = out.progress(1, &format!("fetch {spec}"));
    let manifest = downloader
        .fetch(&FetchRequest {
            url: url.clone(),
            catalog: Some(entry.catalog.clone()),
            entry: Some(entry.entry_id.clone()),
            expected: Expected {
                sha256: entry.hashes.sha256.clone(),
                sha1: entry.hashes.sha1.clone(),
                md5: entry.hashes.md5.clone(),
                size: entry.size,
            },
        })
        .await
        .with_context(|| format!("downloading {url}"))?;
    bar.set_message("scan");
    let mut ev = FirmwareEvents::default();
    let name = url.rsplit('/').next().unwrap_or(spec).to_string();
    let s = scan_stored(&store, &manifest.sha256, &name, rules, &entries, &mut ev).await?;
    bar.finish_and_clear();
    ev.artifacts.push(artifact_event(&s.manifest, Some(entry)));
    publish(api, ev).await;
    if !out.is_table() {
        return out.json(&s);
    }
    println!(
        "{spec} stored as {} ({} bytes, {}); worst finding {}; {}",
        s.sha256,
        s.manifest.size,
        integrity_name(&s.manifest),
        s.max_severity.map_or("-", Severity::as_str),
        if s.quarantined {
            "QUARANTINED"
        } else {
            "not quarantined"
        }
    );
    if let Some(sum) = summary_of(&s.manifest)
        && !sum.findings.is_empty()
    {
        println!("{}", findings_table(&sum.findings, None));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_location_follows_storage() {
        let mut cfg = Config {
            data_dir: Some(PathBuf::from("/d")),
            ..Config::default()
        };
        assert!(
            matches!(store_location(&cfg), Ok(StoreLocation::Local(p)) if p == Path::new("/d/firmware"))
        );
        cfg.storage.url = Some("/srv/st".into());
        assert!(
            matches!(store_location(&cfg), Ok(StoreLocation::Local(p)) if p == Path::new("/srv/st/firmware"))
        );
        cfg.storage.url = Some("s3://bkt/pre/".into());
        match store_location(&cfg) {
            Ok(StoreLocation::S3(s)) => {
                assert_eq!(s.bucket, "bkt");
                assert_eq!(s.prefix, "pre/firmware");
            }
            other => panic!("{other:?}"),
        }
        cfg.storage.url = Some("gs://x".into());
        assert!(store_location(&cfg).is_err());
    }

    #[test]
    fn catalog_names_are_plain() {
        assert!(valid_name("dell-r760").is_ok());
        assert!(valid_name("../x").is_err());
        assert!(valid_name("").is_err());
        assert!(valid_name(".hidden").is_err());
    }
}
