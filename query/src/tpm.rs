//! TPM registration routes. An agent enrolls in two calls:
//! 1. `POST /api/v1/tpm/challenge` with its EK public area, EK certificate and AK public area. The
//!    service parses both areas itself, checks the certificate chain to a TPM manufacturer root
//!    and that it certifies this EK, checks the AK is a restricted signing key that cannot leave
//!    its TPM, and answers with a credential (TPM2_MakeCredential, in Rust) that only the TPM
//!    holding that EK *and* that AK can open.
//! 2. `POST /api/v1/tpm/activate` with the same enrollment, the challenge token and the secret its
//!    TPM recovered (TPM2_ActivateCredential). A match proves the AK lives on that TPM.
//!
//! Both outcomes, and every failure with its reason, go to `tpm.enrollments`; the TPM processor
//! decides the registration (`tpm.registrations`), and `POST /api/v1/tpm/{server}/approve`
//! accepts a changed EK (audited). The service keeps no per-challenge state: the token carries
//! a nonce and an expiry under an HMAC, and the secret is derived from them, so any API replica
//! sharing the challenge key can check an answer. Keys are logged by fingerprint only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use automata_log::{MessageLog, Record, StartFrom};
use automata_schemas::catalog::{TPM_ENROLLMENTS, TPM_REGISTRATIONS, topic};
use automata_schemas::types::{TpmRegistration, TpmStatus};
use automata_schemas::{SchemaIds, decode, encode};
use automata_tpm::{EkCertVerdict, TpmPublic, TrustRoots};
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiJson, ApiPath, ErrorBody};

/// How long a challenge may be answered.
const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// Largest hex field accepted (a certificate chain of a few KiB).
const MAX_HEX: usize = 64 * 1024;

/// What the TPM routes need.
#[derive(Clone)]
pub struct TpmRoutes {
    log: MessageLog,
    ids: SchemaIds,
    roots: Arc<TrustRoots>,
    key: Arc<[u8; 32]>,
    registrations: Arc<RwLock<BTreeMap<String, TpmRegistration>>>,
}

impl TpmRoutes {
    /// Routes checking EK certificates against `roots` and sealing challenges with `key` (shared
    /// by every API replica), with a view of `tpm.registrations` kept current until `shutdown`.
    pub fn start(
        log: MessageLog,
        ids: SchemaIds,
        roots: TrustRoots,
        key: [u8; 32],
        shutdown: CancellationToken,
    ) -> Self {
        let routes = TpmRoutes {
            log,
            ids,
            roots: Arc::new(roots),
            key: Arc::new(key),
            registrations: Arc::default(),
        };
        let r = routes.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                match r.tail(&shutdown).await {
                    Ok(()) => return,
                    Err(e) => tracing::warn!(error = %e, "TPM view lost the log; retrying"),
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        });
        routes
    }

    async fn tail(&self, shutdown: &CancellationToken) -> Result<(), automata_log::LogError> {
        let group = format!("api-tpm-view-{}", uuid::Uuid::new_v4().simple());
        let mut c = self
            .log
            .consumer(&group, &[TPM_REGISTRATIONS], StartFrom::Earliest)?;
        let Some(spec) = topic(TPM_REGISTRATIONS) else {
            return Ok(());
        };
        loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                b = c.recv_batch(1000, Duration::from_secs(1)) => b?,
            };
            let Some(id) = self.ids.get(TPM_REGISTRATIONS) else {
                continue;
            };
            let mut regs = self
                .registrations
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for r in batch {
                let Some(v) = r.record.value.as_deref() else {
                    continue;
                };
                match decode::<TpmRegistration>(spec, id, v) {
                    Ok(reg) => {
                        regs.insert(reg.server_id.clone(), reg);
                    }
                    Err(e) => {
                        tracing::debug!(offset = r.offset, error = %e, "unreadable tpm.registrations record skipped")
                    }
                }
            }
        }
    }

    fn registration(&self, server_id: &str) -> Option<TpmRegistration> {
        self.registrations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(server_id)
            .cloned()
    }

    async fn publish(&self, reg: &TpmRegistration) -> Result<(), ApiError> {
        let spec = topic(TPM_ENROLLMENTS).ok_or_else(|| ApiError::internal("no TPM topic"))?;
        let id = self
            .ids
            .get(TPM_ENROLLMENTS)
            .ok_or_else(|| ApiError::unavailable("the TPM schema is not registered yet"))?;
        let bytes = encode(spec, id, reg).map_err(|e| ApiError::internal(e.to_string()))?;
        let mut record = Record::new(reg.server_id.clone(), bytes);
        if let Some(at) = reg.attempted_at {
            record = record.with_timestamp(at);
        }
        tokio::time::timeout(
            Duration::from_secs(30),
            self.log.send(TPM_ENROLLMENTS, record),
        )
        .await
        .map_err(|_| ApiError::unavailable("the message log did not take it in 30 s"))?
        .map_err(|e| ApiError::unavailable(format!("the message log: {e}")))?;
        Ok(())
    }

    /// The MAC binding a challenge to one enrollment, nonce and expiry.
    fn mac(
        &self,
        label: &[u8],
        nonce: &[u8],
        expires: u64,
        checked: &Checked,
    ) -> Result<[u8; 32], ApiError> {
        // HMAC takes keys of any length, so this does not fail; if it did, nothing is issued.
        let mut m = Hmac::<Sha256>::new_from_slice(self.key.as_slice())
            .map_err(|e| ApiError::internal(format!("challenge key: {e}")))?;
        for part in [
            label,
            nonce,
            &expires.to_be_bytes(),
            checked.server_id.as_bytes(),
            checked.ek_fingerprint.as_bytes(),
            &checked.ak_name,
        ] {
            m.update(&(part.len() as u64).to_be_bytes());
            m.update(part);
        }
        Ok(m.finalize().into_bytes().into())
    }
}

/// What an agent sends about its TPM (hex for binary fields).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    /// The server id the agent reports under.
    pub server_id: String,
    /// EK public area, TPM2B_PUBLIC.
    pub ek_public: String,
    /// EK certificate, DER, when the TPM holds one.
    #[serde(default)]
    pub ek_certificate: Option<String>,
    /// Intermediate CA certificates (DER) the agent has, if any.
    #[serde(default)]
    pub intermediates: Vec<String>,
    /// AK public area, TPM2B_PUBLIC.
    pub ak_public: String,
    /// TPM_PT_MANUFACTURER as four characters.
    #[serde(default)]
    pub manufacturer: Option<String>,
    /// TPM firmware version.
    #[serde(default)]
    pub firmware_version: Option<String>,
}

/// `POST /api/v1/tpm/challenge`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChallengeReply {
    /// `challenge` to answer, or `REJECTED`.
    pub status: String,
    /// Why rejected.
    #[serde(default)]
    pub reason: String,
    /// EK fingerprint (SHA-256 of its SubjectPublicKeyInfo).
    pub ek_fingerprint: String,
    /// Opaque token to send back with the answer.
    #[serde(default)]
    pub token: String,
    /// TPM2B_ID_OBJECT for TPM2_ActivateCredential, hex.
    #[serde(default)]
    pub credential_blob: String,
    /// TPM2B_ENCRYPTED_SECRET for TPM2_ActivateCredential, hex.
    #[serde(default)]
    pub encrypted_secret: String,
}

/// `POST /api/v1/tpm/activate`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Activation {
    /// The same enrollment as for the challenge.
    pub enrollment: Enrollment,
    /// The challenge's token.
    pub token: String,
    /// The secret the TPM recovered, hex.
    pub secret: String,
}

/// The outcome of an activation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivationReply {
    /// `VERIFIED` (the processor then decides the registration) or `REJECTED`.
    pub status: String,
    /// Why rejected.
    #[serde(default)]
    pub reason: String,
    /// EK fingerprint.
    pub ek_fingerprint: String,
    /// AK name, hex.
    pub ak_name: String,
}

/// `POST /api/v1/tpm/{server}/approve`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Who approves (recorded with the caller's address).
    pub operator: String,
    /// Why: a board swap, a TPM clear, …
    pub reason: String,
}

/// One server's registration as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TpmView {
    /// Server id.
    pub server_id: String,
    /// PENDING, VERIFIED, REJECTED or EK_CHANGED_AWAITING_APPROVAL.
    pub status: String,
    /// Why (rejection, pending change, approval).
    pub reason: String,
    /// TPM manufacturer.
    pub manufacturer: Option<String>,
    /// TPM firmware version.
    pub firmware_version: Option<String>,
    /// EK fingerprint.
    pub ek_fingerprint: String,
    /// The EK certificate's verdict.
    pub certificate: String,
    /// EK certificate issuer.
    pub ek_issuer: Option<String>,
    /// AK name, hex.
    pub ak_name: String,
    /// The verified EK a pending change would replace.
    pub previous_ek_fingerprint: Option<String>,
    /// When verified (ms since the epoch).
    pub verified_at: Option<i64>,
    /// Who approved the last EK change.
    pub approved_by: Option<String>,
}

impl From<TpmRegistration> for TpmView {
    fn from(r: TpmRegistration) -> Self {
        TpmView {
            status: status_word(r.status).into(),
            server_id: r.server_id,
            reason: r.reason,
            manufacturer: r.manufacturer,
            firmware_version: r.firmware_version,
            ek_fingerprint: r.ek_fingerprint,
            certificate: r.certificate_status,
            ek_issuer: r.ek_issuer,
            ak_name: r.ak_name,
            previous_ek_fingerprint: r.previous_ek_fingerprint,
            verified_at: r.verified_at,
            approved_by: r.approved_by,
        }
    }
}

/// `GET /api/v1/tpm`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TpmList {
    /// Every server with a registration.
    pub registrations: Vec<TpmView>,
}

fn status_word(s: TpmStatus) -> &'static str {
    match s {
        TpmStatus::Pending => "PENDING",
        TpmStatus::Verified => "VERIFIED",
        TpmStatus::Rejected => "REJECTED",
        TpmStatus::EkChangedAwaitingApproval => "EK_CHANGED_AWAITING_APPROVAL",
    }
}

/// An enrollment the service has checked as far as it can without the TPM.
struct Checked {
    server_id: String,
    ek: TpmPublic,
    ek_fingerprint: String,
    ak_name: Vec<u8>,
    /// The registration to publish, status still undecided.
    draft: TpmRegistration,
    /// Why it cannot be verified, if so.
    refused: Option<String>,
}

fn unhex(what: &str, s: &str) -> Result<Vec<u8>, ApiError> {
    if s.len() > MAX_HEX {
        return Err(ApiError::bad_request(format!("{what} is too long")));
    }
    hex::decode(s.trim()).map_err(|e| ApiError::bad_request(format!("{what} is not hex: {e}")))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Parses and checks an enrollment: a 400 for what is not even readable, a refusal (recorded)
/// for what is readable but not trustworthy.
fn check(roots: &TrustRoots, e: &Enrollment) -> Result<Checked, ApiError> {
    let server_id = e.server_id.trim().to_string();
    if server_id.is_empty() || server_id.len() > 256 {
        return Err(ApiError::bad_request(
            "server_id must be 1 to 256 characters",
        ));
    }
    let ek_bytes = unhex("ek_public", &e.ek_public)?;
    let ak_bytes = unhex("ak_public", &e.ak_public)?;
    let ek = TpmPublic::from_tpm2b(&ek_bytes)
        .map_err(|err| ApiError::bad_request(format!("ek_public: {err}")))?;
    let ak = TpmPublic::from_tpm2b(&ak_bytes)
        .map_err(|err| ApiError::bad_request(format!("ak_public: {err}")))?;
    let ek_fingerprint = ek
        .fingerprint()
        .map_err(|err| ApiError::bad_request(format!("ek_public: {err}")))?;
    let ak_name = ak.name();
    let cert = e
        .ek_certificate
        .as_deref()
        .map(|c| unhex("ek_certificate", c))
        .transpose()?;
    let intermediates = e
        .intermediates
        .iter()
        .map(|c| unhex("intermediates", c))
        .collect::<Result<Vec<_>, _>>()?;
    let inter: Vec<&[u8]> = intermediates.iter().map(Vec::as_slice).collect();
    let mut draft = TpmRegistration {
        server_id: server_id.clone(),
        ek_fingerprint: ek_fingerprint.clone(),
        ek_certificate_der: cert.clone(),
        // Blank values from the agent give way to what the EK certificate says.
        manufacturer: e.manufacturer.clone().filter(|m| !m.trim().is_empty()),
        firmware_version: e.firmware_version.clone().filter(|v| !v.trim().is_empty()),
        ak_name: hex::encode(&ak_name),
        ak_public: ak_bytes,
        ek_public: Some(ek_bytes),
        attempted_at: Some(now_ms()),
        ..Default::default()
    };
    let mut refused = None;
    if !ek.is_endorsement_key() {
        refused = Some("the EK public area is not a restricted decryption key".to_string());
    } else if !ak.is_attestation_key() {
        refused = Some(
            "the AK is not a restricted, fixedTPM, fixedParent signing key made on the TPM".into(),
        );
    }
    match cert {
        None => {
            draft.certificate_status = "missing".into();
            refused.get_or_insert_with(|| {
                "the TPM has no EK certificate (add its manufacturer's chain to the roots)".into()
            });
        }
        Some(der) => {
            match automata_tpm::verify_endorsement(&ek, &der, &inter, roots, SystemTime::now()) {
                EkCertVerdict::Trusted {
                    issuer,
                    manufacturer,
                    ..
                } => {
                    draft.certificate_status = "trusted".into();
                    draft.ek_issuer = Some(issuer);
                    if let Some(m) = manufacturer {
                        if draft.manufacturer.is_none() {
                            draft.manufacturer = m.manufacturer;
                        }
                        if draft.firmware_version.is_none() {
                            draft.firmware_version = m.version;
                        }
                    }
                }
                EkCertVerdict::Untrusted { reason } => {
                    draft.certificate_status = "untrusted".into();
                    refused.get_or_insert(format!("EK certificate not trusted: {reason}"));
                }
                EkCertVerdict::Malformed { reason } => {
                    draft.certificate_status = "malformed".into();
                    refused.get_or_insert(format!("EK certificate malformed: {reason}"));
                }
            }
        }
    }
    Ok(Checked {
        server_id,
        ek,
        ek_fingerprint,
        ak_name,
        draft,
        refused,
    })
}

async fn reject(r: &TpmRoutes, mut c: Checked, reason: String) -> Result<Checked, ApiError> {
    tracing::warn!(server_id = %c.server_id, ek = %c.ek_fingerprint, %reason, "TPM enrollment rejected");
    c.draft.status = TpmStatus::Rejected;
    c.draft.reason = reason;
    r.publish(&c.draft).await?;
    Ok(c)
}

#[utoipa::path(post, path = "/api/v1/tpm/challenge", tag = "tpm", operation_id = "tpm_challenge",
    request_body = Enrollment,
    responses((status = 200, description = "A credential to activate, or the reason for a rejection (recorded)", body = ChallengeReply),
              (status = 400, description = "Unreadable public areas or certificate", body = ErrorBody)))]
async fn challenge(
    State(r): State<TpmRoutes>,
    ApiJson(e): ApiJson<Enrollment>,
) -> Result<Json<ChallengeReply>, ApiError> {
    let c = check(&r.roots, &e)?;
    if let Some(reason) = c.refused.clone() {
        let c = reject(&r, c, reason.clone()).await?;
        return Ok(Json(ChallengeReply {
            status: "REJECTED".into(),
            reason,
            ek_fingerprint: c.ek_fingerprint,
            token: String::new(),
            credential_blob: String::new(),
            encrypted_secret: String::new(),
        }));
    }
    let mut nonce = [0u8; 16];
    rand::fill(&mut nonce);
    let expires = SystemTime::now()
        .checked_add(CHALLENGE_TTL)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let secret = r.mac(b"secret", &nonce, expires, &c)?;
    let made = automata_tpm::make_credential(&c.ek, &c.ak_name, &secret[..32])
        .map_err(|err| ApiError::bad_request(format!("cannot make a credential: {err}")))?;
    let tag = r.mac(b"token", &nonce, expires, &c)?;
    let token = format!(
        "{}.{expires}.{}",
        hex::encode(nonce),
        hex::encode(&tag[..16])
    );
    tracing::info!(server_id = %c.server_id, ek = %c.ek_fingerprint, ak = %hex::encode(&c.ak_name), "TPM challenge issued");
    Ok(Json(ChallengeReply {
        status: "challenge".into(),
        reason: String::new(),
        ek_fingerprint: c.ek_fingerprint,
        token,
        credential_blob: hex::encode(made.credential_blob),
        encrypted_secret: hex::encode(made.encrypted_secret),
    }))
}

#[utoipa::path(post, path = "/api/v1/tpm/activate", tag = "tpm", operation_id = "tpm_activate",
    request_body = Activation,
    responses((status = 200, description = "VERIFIED or REJECTED (both recorded in tpm.enrollments)", body = ActivationReply),
              (status = 400, description = "Unreadable enrollment or token", body = ErrorBody)))]
async fn activate(
    State(r): State<TpmRoutes>,
    ApiJson(a): ApiJson<Activation>,
) -> Result<Json<ActivationReply>, ApiError> {
    let c = check(&r.roots, &a.enrollment)?;
    let answer = unhex("secret", &a.secret)?;
    let mut parts = a.token.split('.');
    let (Some(nonce), Some(expires), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ApiError::bad_request("token: not a challenge token"));
    };
    let nonce = unhex("token", nonce)?;
    let tag = unhex("token", tag)?;
    let expires: u64 = expires
        .parse()
        .map_err(|_| ApiError::bad_request("token: bad expiry"))?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let genuine = automata_tpm::answer_matches(&r.mac(b"token", &nonce, expires, &c)?[..16], &tag);
    let refusal = if let Some(reason) = c.refused.clone() {
        Some(reason)
    } else if !genuine {
        Some("the challenge token is not for this enrollment".to_string())
    } else if now > expires {
        Some("the challenge expired; ask for a new one".to_string())
    } else if !automata_tpm::answer_matches(&r.mac(b"secret", &nonce, expires, &c)?, &answer) {
        Some("credential activation failed: the AK is not on the TPM that holds this EK".into())
    } else {
        None
    };
    let (c, status, reason) = match refusal {
        Some(reason) => (reject(&r, c, reason.clone()).await?, "REJECTED", reason),
        None => {
            let mut c = c;
            c.draft.status = TpmStatus::Verified;
            c.draft.verified_at = c.draft.attempted_at;
            r.publish(&c.draft).await?;
            tracing::info!(server_id = %c.server_id, ek = %c.ek_fingerprint, "TPM enrollment proven");
            (c, "VERIFIED", String::new())
        }
    };
    Ok(Json(ActivationReply {
        status: status.into(),
        reason,
        ek_fingerprint: c.ek_fingerprint,
        ak_name: hex::encode(c.ak_name),
    }))
}

#[utoipa::path(get, path = "/api/v1/tpm", tag = "tpm", operation_id = "list_tpm",
    responses((status = 200, description = "Every server's TPM registration", body = TpmList)))]
async fn list(State(r): State<TpmRoutes>) -> Json<TpmList> {
    let regs = r.registrations.read().unwrap_or_else(|e| e.into_inner());
    Json(TpmList {
        registrations: regs.values().cloned().map(TpmView::from).collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/tpm/{server}", tag = "tpm", operation_id = "get_tpm",
    params(("server" = String, Path, description = "Server id")),
    responses((status = 200, description = "The server's TPM registration", body = TpmView),
              (status = 404, description = "No registration", body = ErrorBody)))]
async fn show(
    State(r): State<TpmRoutes>,
    ApiPath(server): ApiPath<String>,
) -> Result<Json<TpmView>, ApiError> {
    r.registration(&server)
        .map(|reg| Json(reg.into()))
        .ok_or_else(|| ApiError::not_found(format!("no TPM registration for {server}")))
}

#[utoipa::path(post, path = "/api/v1/tpm/{server}/approve", tag = "tpm", operation_id = "approve_tpm",
    params(("server" = String, Path, description = "Server id")),
    request_body = Approval,
    responses((status = 202, description = "Approval recorded; the registration becomes VERIFIED", body = TpmView),
              (status = 404, description = "No registration", body = ErrorBody),
              (status = 409, description = "No EK change awaits approval", body = ErrorBody)))]
async fn approve(
    State(r): State<TpmRoutes>,
    peer: Option<axum::extract::Extension<ConnectInfo<SocketAddr>>>,
    ApiPath(server): ApiPath<String>,
    ApiJson(a): ApiJson<Approval>,
) -> Result<(StatusCode, Json<TpmView>), ApiError> {
    if a.operator.trim().is_empty() || a.reason.trim().is_empty() {
        return Err(ApiError::bad_request("operator and reason are required"));
    }
    let reg = r
        .registration(&server)
        .ok_or_else(|| ApiError::not_found(format!("no TPM registration for {server}")))?;
    if reg.status != TpmStatus::EkChangedAwaitingApproval {
        return Err(ApiError::conflict(format!(
            "{server} is {}: no EK change awaits approval",
            status_word(reg.status)
        )));
    }
    let from = crate::bmcs::caller(peer.as_ref().map(|p| &p.0));
    let by = format!("{} from {from}", a.operator.trim());
    tracing::info!(target: "audit", action = "tpm.approve", server_id = %server,
        ek = %reg.ek_fingerprint, previous = reg.previous_ek_fingerprint.as_deref().unwrap_or(""),
        caller = %by, reason = %a.reason, "EK change approved");
    let approval = TpmRegistration {
        approved_by: Some(by.clone()),
        reason: a.reason.clone(),
        attempted_at: Some(now_ms()),
        ..reg.clone()
    };
    r.publish(&approval).await?;
    let mut view = TpmView::from(reg);
    view.approved_by = Some(by);
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// The TPM route group, to merge into the API with [`crate::ApiBuilder::merge`].
pub fn routes(r: TpmRoutes) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(challenge))
        .routes(routes!(activate))
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(approve))
        .with_state(r)
}
