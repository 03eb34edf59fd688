//! `metal-automata firmware remote`: the store as a fwupd remote, the key that signs it, the
//! `.conf` an in-band host needs, and an export for static hosting.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use automata_fwremote::{JCAT_FILE, METADATA_FILE, RemoteBuilder, SigningIdentity};
use clap::Subcommand;
use serde_json::json;

use crate::config::Config;
use crate::firmware::{firmware_dir, open_store, read_blob};
use crate::output::Output;

/// The API path the remote is served under.
pub const REMOTE_PATH: &str = "/api/v1/firmware/lvfs";

/// `firmware remote` subcommands.
#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// The certificate that signs the remote's metadata (PEM on stdout): install it as
    /// `/etc/pki/fwupd-metadata/metal-automata.pem` on every host that uses the remote.
    Cert,
    /// A fwupd remote definition for this service (for `/etc/fwupd/remotes.d/`).
    Conf {
        /// The service's base URL as the hosts reach it (default: --server or the local API).
        #[arg(long)]
        base: Option<String>,
    },
    /// What the remote offers now (installable cabs) and which stored blobs it leaves out, why.
    Ls,
    /// Write the remote's files (metadata, signed jcat, cabs) into DIR for any static web
    /// server or an air-gapped mirror.
    Export {
        /// Target directory (created).
        dir: PathBuf,
    },
}

/// The remote's signing identity, under `<data>/firmware/remote/` (made on first use).
pub fn identity(cfg: &Config) -> Result<SigningIdentity> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let cn = if host.is_empty() {
        "Metal Automata firmware remote".to_string()
    } else {
        format!("Metal Automata firmware remote {host}")
    };
    SigningIdentity::load_or_create(&firmware_dir(cfg).join("remote"), &cn)
        .context("the firmware remote's signing identity")
}

/// The view builder the API serves and the CLI exports.
pub fn builder(cfg: &Config) -> Result<RemoteBuilder> {
    Ok(RemoteBuilder::new(
        open_store(cfg)?,
        identity(cfg)?,
        "metal-automata",
    ))
}

/// The fwupd `.conf` for a remote at `base`.
pub fn conf(base: &str) -> String {
    let base = base.trim_end_matches('/');
    format!(
        "# Metal Automata firmware remote: copy to /etc/fwupd/remotes.d/metal-automata.conf and\n\
         # trust the signer: `metal-automata firmware remote cert > /etc/pki/fwupd-metadata/metal-automata.pem`.\n\
         # Off this service's host, add Username=fwupd and Password=<the API token>.\n\
         [fwupd Remote]\n\
         Enabled=true\n\
         Title=Metal Automata\n\
         Keyring=jcat\n\
         MetadataURI={base}{REMOTE_PATH}/{METADATA_FILE}\n\
         ApprovalRequired=false\n\
         RefreshInterval=3600\n"
    )
}

/// Entry point of `firmware remote`.
pub async fn run(
    cfg: &Config,
    server: Option<&str>,
    cmd: RemoteCommand,
    out: &Output,
) -> Result<()> {
    match cmd {
        RemoteCommand::Cert => {
            let id = identity(cfg)?;
            let pem = id.certificate_pem()?;
            if out.is_table() {
                print!("{pem}");
                eprintln!("sha256 fingerprint {}", id.fingerprint());
                return Ok(());
            }
            out.json(&json!({"fingerprint": id.fingerprint(), "pem": pem}))
        }
        RemoteCommand::Conf { base } => {
            let base = base
                .or_else(|| server.map(str::to_string))
                .unwrap_or_else(|| crate::firmware::local_api_base(cfg));
            let text = conf(&base);
            if out.is_table() {
                print!("{text}");
                return Ok(());
            }
            out.json(&json!({"conf": text}))
        }
        RemoteCommand::Ls => {
            let view = builder(cfg)?.view().await?;
            if !out.is_table() {
                return out.json(&json!({"offered": view.files, "skipped": view.skipped}));
            }
            println!("offered ({}):", view.files.len());
            for name in view.files.keys() {
                println!("  {name}");
            }
            println!("left out ({}):", view.skipped.len());
            for (sha, why) in &view.skipped {
                println!("  {sha}  {why}");
            }
            Ok(())
        }
        RemoteCommand::Export { dir } => export(cfg, &dir, out).await,
    }
}

async fn export(cfg: &Config, dir: &Path, out: &Output) -> Result<()> {
    let store = open_store(cfg)?;
    let view = builder(cfg)?.view().await?;
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    for (name, sha) in &view.files {
        let bytes = read_blob(&store, sha).await?;
        crate::firmware::replace_file(&dir.join(name), &bytes)?;
    }
    // The jcat last: a client that sees it finds everything it vouches for in place.
    crate::firmware::replace_file(&dir.join(METADATA_FILE), &view.metadata)?;
    crate::firmware::replace_file(&dir.join(JCAT_FILE), &view.jcat)?;
    tracing::info!(target: "audit", dir = %dir.display(), cabs = view.files.len(), "firmware remote exported");
    out.done(
        &json!({"dir": dir.display().to_string(), "cabs": view.files.len(), "skipped": view.skipped.len()}),
        &format!(
            "exported {} cab(s) with signed metadata to {} ({} blob(s) left out)",
            view.files.len(),
            dir.display(),
            view.skipped.len()
        ),
    )
}
