//! `metal-automata tpm …`: enroll this server's TPM (EK certificate checked by the service, AK
//! proven by credential activation), and list, show or approve registrations.

use std::path::Path;

use anyhow::{Context, Result, bail};
use automata_tpm::device::Tpm;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::{ApiClient, path_segment};
use crate::output::Output;

/// `tpm enroll`.
#[derive(Debug, clap::Args)]
pub struct EnrollArgs {
    /// How to reach the TPM: `device:/dev/tpmrm0` (default, or $TPM2TOOLS_TCTI / $TCTI), or
    /// `swtpm:host=127.0.0.1,port=2321`.
    #[arg(long)]
    pub tcti: Option<String>,
    /// Enroll under this server id instead of the one the agent computes from SMBIOS.
    #[arg(long)]
    pub server_id: Option<String>,
    /// Root of the file system the server id is read from.
    #[arg(long, default_value = "/")]
    pub root: std::path::PathBuf,
}

/// `tpm approve`.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The server whose new EK is accepted (not `server`: that id is the global service URL).
    #[arg(value_name = "SERVER")]
    pub server_id: String,
    /// Why (a board swap, a TPM clear, …): recorded in the audit log.
    #[arg(long)]
    pub reason: String,
    /// Who approves (default: $USER).
    #[arg(long)]
    pub operator: Option<String>,
}

/// The outcome of an enrollment, as printed.
#[derive(Debug, Serialize, Deserialize)]
pub struct Enrolled {
    /// Server id.
    pub server_id: String,
    /// VERIFIED or REJECTED (the registration itself is then decided by the TPM processor).
    pub status: String,
    /// Why rejected.
    pub reason: String,
    /// EK fingerprint.
    pub ek_fingerprint: String,
    /// AK name, hex.
    pub ak_name: String,
    /// TPM manufacturer.
    pub manufacturer: String,
    /// TPM firmware version.
    pub firmware_version: String,
}

/// Reads the TPM, asks the service for a challenge, answers it on the TPM. Blocking: the TPM
/// context is not `Send`, so the whole exchange runs on one blocking thread.
fn enroll_blocking(
    api: &ApiClient,
    tcti: &str,
    server_id: &str,
    rt: &tokio::runtime::Handle,
) -> Result<Enrolled> {
    let mut tpm = Tpm::open(tcti).with_context(|| format!("opening the TPM ({tcti})"))?;
    let ek = tpm.endorsement().context("reading the endorsement key")?;
    let ak = tpm.create_ak().context("creating an attestation key")?;
    let enrollment = json!({
        "server_id": server_id,
        "ek_public": hex::encode(&ek.public),
        "ek_certificate": ek.certificate.as_deref().map(hex::encode),
        "ak_public": hex::encode(ak.public()),
        "manufacturer": ek.manufacturer,
        "firmware_version": ek.firmware_version_string(),
    });
    let enrolled = |status: &str, reason: &str, fp: &str| Enrolled {
        server_id: server_id.to_string(),
        status: status.into(),
        reason: reason.into(),
        ek_fingerprint: fp.into(),
        ak_name: hex::encode(ak.name()),
        manufacturer: ek.manufacturer.clone(),
        firmware_version: ek.firmware_version_string(),
    };
    let c = rt.block_on(api.post("/api/v1/tpm/challenge", &enrollment))?;
    let field = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    if field("status") != "challenge" {
        return Ok(enrolled(
            field("status"),
            field("reason"),
            field("ek_fingerprint"),
        ));
    }
    let blob = hex::decode(field("credential_blob")).context("the service's credential")?;
    let seed = hex::decode(field("encrypted_secret")).context("the service's credential")?;
    let secret = tpm
        .activate_credential(&ak, &blob, &seed)
        .context("TPM2_ActivateCredential")?;
    let answer = json!({
        "enrollment": enrollment,
        "token": field("token"),
        "secret": hex::encode(secret),
    });
    let r = rt.block_on(api.post("/api/v1/tpm/activate", &answer))?;
    let f = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    Ok(enrolled(f("status"), f("reason"), f("ek_fingerprint")))
}

/// The server id the agent reports under.
async fn agent_server_id(root: &Path) -> Result<String> {
    let opts = automata_agent::Options {
        root: root.to_path_buf(),
        run_external_tools: false,
    };
    let r = tokio::task::spawn_blocking(move || automata_agent::collect(&opts)).await?;
    Ok(r.snapshot.server_id)
}

async fn enroll_with(api: &ApiClient, tcti: String, server_id: String) -> Result<Enrolled> {
    let api = api.clone();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || enroll_blocking(&api, &tcti, &server_id, &rt)).await?
}

/// Enrolls the TPM at `root`'s default device when there is one (the agent's start).
pub async fn enroll_if_present(api: &ApiClient, root: &Path) -> Result<Option<Enrolled>> {
    let tcti = Tpm::default_tcti();
    // A device under --root is opened there, not on this host's /dev.
    let device = tcti
        .strip_prefix("device:")
        .map(|d| root.join(d.trim_start_matches('/')));
    let tcti = match &device {
        Some(d) if !d.exists() => return Ok(None),
        Some(d) => format!("device:{}", d.display()),
        None => tcti,
    };
    let id = agent_server_id(root).await?;
    enroll_with(api, tcti, id).await.map(Some)
}

/// `tpm enroll`.
pub async fn enroll(api: &ApiClient, a: EnrollArgs, out: &Output) -> Result<()> {
    let tcti = a.tcti.unwrap_or_else(Tpm::default_tcti);
    let id = match a.server_id {
        Some(id) => id,
        None => agent_server_id(&a.root).await?,
    };
    let r = enroll_with(api, tcti, id).await?;
    out.tpm_enrolled(&r)?;
    if r.status != "VERIFIED" {
        bail!("the TPM was not verified: {}", r.reason);
    }
    Ok(())
}

/// `tpm list`.
pub async fn list(api: &ApiClient, out: &Output) -> Result<()> {
    out.tpm_list(&api.get("/api/v1/tpm").await?)
}

/// `tpm show`.
pub async fn show(api: &ApiClient, server: &str, out: &Output) -> Result<()> {
    out.tpm_show(
        &api.get(&format!("/api/v1/tpm/{}", path_segment(server)))
            .await?,
    )
}

/// `tpm approve`.
pub async fn approve(api: &ApiClient, a: ApproveArgs, out: &Output) -> Result<()> {
    let operator = a
        .operator
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let v = api
        .post(
            &format!("/api/v1/tpm/{}/approve", path_segment(&a.server_id)),
            &json!({"operator": operator, "reason": a.reason}),
        )
        .await?;
    out.tpm_show(&v)
}
