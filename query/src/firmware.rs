//! Firmware routes: `GET /api/v1/firmware/blobs/{sha256}` (byte ranges, for BMC `SimpleUpdate`,
//! authorised by an expiring HMAC token), `GET /api/v1/firmware/artifacts` (the store's
//! manifests), `POST /api/v1/firmware/events` (the CLI's catalog, artifact, scan and finding
//! events onto their topics), and the fwupd remote under `/api/v1/firmware/lvfs/`
//! (`metadata.xml.zst`, its signed `.jcat`, the `<sha256>-<name>.cab` files, `certificate.pem`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use automata_fwremote::{RemoteBuilder, RemoteError};
use automata_fwstore::{BlobRange, BlobUrlSigner, FirmwareStore, Manifest, StoreError};
use automata_log::{MessageLog, Record};
use automata_schemas::catalog::{
    FIRMWARE_ADVISORIES, FIRMWARE_ARTIFACTS, FIRMWARE_CATALOG, FIRMWARE_CATALOG_SYNCS,
    FIRMWARE_FINDINGS, FIRMWARE_SCANS, FIRMWARE_SECUREBOOT, FIRMWARE_UPDATES, topic,
};
use automata_schemas::types::{
    FirmwareAdvisory, FirmwareArtifact, FirmwareCatalogEntry, FirmwareCatalogSync, FirmwareFinding,
    FirmwareScanResult, FirmwareUpdateStatus, SecureBootSnapshot,
};
use automata_schemas::{SchemaIds, encode};
use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};

/// What the firmware routes need.
#[derive(Clone)]
pub struct FirmwareRoutes {
    /// The content-addressed store.
    pub store: FirmwareStore,
    /// Checks blob URL tokens.
    pub signer: BlobUrlSigner,
    /// Where events go.
    pub log: MessageLog,
    /// Registered schema ids per topic.
    pub ids: SchemaIds,
    /// The LVFS-format view of the store, for fwupd.
    pub remote: RemoteBuilder,
}

impl std::fmt::Debug for FirmwareRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirmwareRoutes")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Why the blob URL key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("blob URL key {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key file holds fewer than 32 bytes.
    #[error("blob URL key {0}: shorter than 32 bytes")]
    Weak(String),
}

/// Loads the blob URL signing key from `path`, making 32 random bytes (mode 0600) on first use.
pub fn load_or_create_signer(path: &Path) -> Result<BlobUrlSigner, KeyError> {
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    let key = crate::keyfile::load_or_create(path).map_err(io)?;
    BlobUrlSigner::new(key).map_err(|_| KeyError::Weak(path.display().to_string()))
}

/// `?token=` of a blob download.
#[derive(Debug, Deserialize, IntoParams)]
pub struct BlobQuery {
    /// The expiring HMAC token granting this blob (`sha256.expires.tag`).
    pub token: Option<String>,
}

/// `GET /api/v1/firmware/artifacts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArtifactList {
    /// Every stored blob's manifest: provenance, integrity, quarantine, last scan.
    #[schema(value_type = Vec<Object>)]
    pub artifacts: Vec<Manifest>,
}

/// `POST /api/v1/firmware/events`: records for the firmware topics, as the CLI makes them.
///
/// Empty lists are left out of the JSON, so a newer CLI still talks to a service that predates a
/// list it does not use (unknown fields are refused, to catch misspellings).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FirmwareEvents {
    /// `firmware.artifacts` records (key sha256).
    #[schema(value_type = Vec<Object>)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<FirmwareArtifact>,
    /// `firmware.scans` records (key sha256).
    #[schema(value_type = Vec<Object>)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scans: Vec<FirmwareScanResult>,
    /// `firmware.findings` records (key: the target).
    #[schema(value_type = Vec<Object>)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<FirmwareFinding>,
    /// `firmware.catalog` records (key catalog/entry).
    #[schema(value_type = Vec<Object>)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub catalog: Vec<FirmwareCatalogEntry>,
    /// `catalog/entry` keys that left their catalog: tombstones on `firmware.catalog`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub catalog_removed: Vec<String>,
    /// `firmware.catalog.syncs` records (key catalog name): one per catalog synced.
    #[schema(value_type = Vec<Object>)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub catalog_syncs: Vec<FirmwareCatalogSync>,
    /// `firmware.updates` records (key server UUID): each server against the synced catalogs.
    #[schema(value_type = Vec<Object>)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub updates: Vec<FirmwareUpdateStatus>,
    /// `firmware.secureboot` records (key server UUID): the agent's efivars summary.
    #[schema(value_type = Vec<Object>)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secure_boot: Vec<SecureBootSnapshot>,
    /// `firmware.advisories` records (key advisory id): the rule pack's advisories, withdrawn
    /// ones included, as `firmware rules update` installs a pack.
    #[schema(value_type = Vec<Object>)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advisories: Vec<FirmwareAdvisory>,
    /// Operator actions done on the service host (quarantine, release), for the audit log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<AuditNote>,
}

/// One operator action on a blob, written to the service's audit log.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditNote {
    /// `firmware.quarantine` or `firmware.release`.
    pub action: String,
    /// The blob.
    pub sha256: String,
    /// The operator's reason.
    pub reason: String,
    /// Who (the operator's login on the service host).
    pub by: String,
}

/// How many records each topic took.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct Published {
    /// `firmware.artifacts`.
    pub artifacts: usize,
    /// `firmware.scans`.
    pub scans: usize,
    /// `firmware.findings`.
    pub findings: usize,
    /// `firmware.catalog` records and tombstones.
    pub catalog: usize,
    /// `firmware.secureboot`.
    pub secure_boot: usize,
    /// `firmware.catalog.syncs`.
    pub catalog_syncs: usize,
    /// `firmware.updates`.
    pub updates: usize,
    /// `firmware.advisories`.
    pub advisories: usize,
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(sha) => ApiError::not_found(format!("no blob {sha}")),
        e @ (StoreError::BadRange(_) | StoreError::InvalidDigest(_)) => {
            ApiError::bad_request(e.to_string())
        }
        e => ApiError::internal(e.to_string()),
    }
}

#[utoipa::path(get, path = "/api/v1/firmware/blobs/{sha256}", tag = "firmware",
    operation_id = "get_firmware_blob",
    params(("sha256" = String, Path, description = "Blob SHA-256, lowercase hex"), BlobQuery,
           ("Range" = Option<String>, Header, description = "One byte range, `bytes=a-b`")),
    responses((status = 200, description = "The whole blob", content_type = "application/octet-stream"),
              (status = 206, description = "The requested range", content_type = "application/octet-stream"),
              (status = 403, description = "Missing, expired or foreign token", body = ErrorBody),
              (status = 404, description = "No such blob", body = ErrorBody),
              (status = 409, description = "The blob is quarantined", body = ErrorBody),
              (status = 416, description = "Range not satisfiable")))]
async fn get_blob(
    State(r): State<FirmwareRoutes>,
    ApiPath(sha256): ApiPath<String>,
    ApiQuery(q): ApiQuery<BlobQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let sha256 = sha256.to_ascii_lowercase();
    let token = q.token.ok_or_else(|| {
        ApiError::forbidden("a blob download needs ?token= (an expiring blob URL)")
    })?;
    r.signer
        .verify_for(&token, &sha256)
        .map_err(|e| ApiError::forbidden(e.to_string()))?;
    let manifest = r
        .store
        .manifest(&sha256)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no blob {sha256}")))?;
    if let Some(q) = &manifest.quarantine {
        return Err(ApiError::conflict(format!(
            "blob {sha256} is quarantined: {} (release it with `firmware release`)",
            q.reason
        )));
    }
    serve_blob(&r.store, &sha256, &headers).await
}

/// A blob (or the `Range` asked for) as a response, audited.
async fn serve_blob(
    store: &FirmwareStore,
    sha256: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let range = match headers.get(header::RANGE) {
        None => BlobRange::Full,
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| ApiError::bad_request("the Range header is not ASCII"))?;
            BlobRange::parse(v).map_err(store_error)?
        }
    };
    let partial = range != BlobRange::Full;
    let body = match store.blob_range(sha256, range).await {
        Ok(b) => b,
        Err(StoreError::RangeNotSatisfiable { size }) => {
            let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
        Err(e) => return Err(store_error(e)),
    };
    tracing::info!(target: "audit", sha256 = %sha256, start = body.range.start, end = body.range.end, "firmware blob served");
    let len = body.range.end.saturating_sub(body.range.start);
    let mut resp = Response::new(Body::from_stream(body.stream));
    *resp.status_mut() = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if partial
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{}",
            body.range.start,
            body.range.end.saturating_sub(1),
            body.total_size
        ))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}

fn remote_error(e: RemoteError) -> ApiError {
    match e {
        RemoteError::Store(e) => store_error(e),
        e => ApiError::internal(e.to_string()),
    }
}

fn file_response(bytes: Vec<u8>, content_type: &'static str) -> Response {
    let mut resp = Response::new(Body::from(bytes));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[utoipa::path(get, path = "/api/v1/firmware/lvfs/metadata.xml.zst", tag = "firmware",
    operation_id = "get_lvfs_metadata",
    responses((status = 200, description = "AppStream metadata of every installable cab, zstd",
               content_type = "application/zstd")))]
async fn lvfs_metadata(State(r): State<FirmwareRoutes>) -> Result<Response, ApiError> {
    let view = r.remote.view().await.map_err(remote_error)?;
    Ok(file_response(view.metadata.clone(), "application/zstd"))
}

#[utoipa::path(get, path = "/api/v1/firmware/lvfs/metadata.xml.zst.jcat", tag = "firmware",
    operation_id = "get_lvfs_metadata_jcat",
    responses((status = 200, description = "The metadata's SHA-256 and PKCS#7 signature (gzip JSON)",
               content_type = "application/gzip")))]
async fn lvfs_jcat(State(r): State<FirmwareRoutes>) -> Result<Response, ApiError> {
    let view = r.remote.view().await.map_err(remote_error)?;
    Ok(file_response(view.jcat.clone(), "application/gzip"))
}

#[utoipa::path(get, path = "/api/v1/firmware/lvfs/certificate.pem", tag = "firmware",
    operation_id = "get_lvfs_certificate",
    responses((status = 200, description = "The remote's signing certificate, for /etc/pki/fwupd-metadata/",
               content_type = "application/x-pem-file")))]
async fn lvfs_certificate(State(r): State<FirmwareRoutes>) -> Result<Response, ApiError> {
    let pem = r
        .remote
        .identity()
        .certificate_pem()
        .map_err(remote_error)?;
    Ok(file_response(pem.into_bytes(), "application/x-pem-file"))
}

#[utoipa::path(get, path = "/api/v1/firmware/lvfs/{file}", tag = "firmware",
    operation_id = "get_lvfs_download",
    params(("file" = String, Path, description = "`<sha256>-<name>.cab`, as the metadata names it"),
           ("Range" = Option<String>, Header, description = "One byte range, `bytes=a-b`")),
    responses((status = 200, description = "The cab", content_type = "application/vnd.ms-cab-compressed"),
              (status = 206, description = "The requested range"),
              (status = 404, description = "Not offered: unknown, quarantined or unverified", body = ErrorBody)))]
async fn lvfs_download(
    State(r): State<FirmwareRoutes>,
    ApiPath(file): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let view = r.remote.view().await.map_err(remote_error)?;
    let sha256 = view
        .blob_for(&file)
        .ok_or_else(|| ApiError::not_found(format!("the remote does not offer {file}")))?
        .to_string();
    // The view may be a few seconds old: a blob quarantined since is refused here too.
    let offered = r.store.manifest(&sha256).await.map_err(store_error)?;
    if !offered.is_some_and(|m| automata_fwstore::is_installable(&m, false)) {
        return Err(ApiError::not_found(format!(
            "the remote no longer offers {file}"
        )));
    }
    serve_blob(&r.store, &sha256, &headers).await
}

#[utoipa::path(get, path = "/api/v1/firmware/artifacts", tag = "firmware",
    operation_id = "list_firmware_artifacts",
    responses((status = 200, description = "Every stored blob's manifest", body = ArtifactList)))]
async fn list_artifacts(State(r): State<FirmwareRoutes>) -> Result<Json<ArtifactList>, ApiError> {
    let mut artifacts = Vec::new();
    for sha in r.store.list().await.map_err(store_error)? {
        if let Some(m) = r.store.manifest(&sha).await.map_err(store_error)? {
            artifacts.push(m);
        }
    }
    Ok(Json(ArtifactList { artifacts }))
}

impl FirmwareRoutes {
    /// Encodes `values` for `topic_name` and appends them in one batch.
    async fn publish<T: Serialize>(
        &self,
        topic_name: &str,
        values: &[T],
        key: impl Fn(&T) -> String,
    ) -> Result<usize, ApiError> {
        if values.is_empty() {
            return Ok(0);
        }
        let spec = topic(topic_name)
            .ok_or_else(|| ApiError::internal(format!("no topic {topic_name}")))?;
        let id = self.ids.get(topic_name).ok_or_else(|| {
            ApiError::unavailable(format!("the {topic_name} schema is not registered yet"))
        })?;
        let mut records = Vec::with_capacity(values.len());
        for v in values {
            let bytes = encode(spec, id, v)
                .map_err(|e| ApiError::unprocessable(format!("{topic_name}: {e}")))?;
            records.push(Record::new(key(v), bytes));
        }
        self.send(topic_name, records).await
    }

    async fn send(&self, topic_name: &str, records: Vec<Record>) -> Result<usize, ApiError> {
        let n = records.len();
        tokio::time::timeout(
            Duration::from_secs(30),
            self.log.send_batch(topic_name, records),
        )
        .await
        .map_err(|_| ApiError::unavailable("the message log did not take it in 30 s"))?
        .map_err(|e| ApiError::unavailable(format!("the message log: {e}")))?;
        Ok(n)
    }
}

#[utoipa::path(post, path = "/api/v1/firmware/events", tag = "firmware",
    operation_id = "post_firmware_events",
    request_body = FirmwareEvents,
    responses((status = 200, description = "Records appended per topic", body = Published),
              (status = 422, description = "A record does not fit its schema", body = ErrorBody),
              (status = 503, description = "The log or the schema registry is not ready", body = ErrorBody)))]
async fn post_events(
    State(r): State<FirmwareRoutes>,
    peer: Option<axum::extract::Extension<ConnectInfo<SocketAddr>>>,
    ApiJson(ev): ApiJson<FirmwareEvents>,
) -> Result<Json<Published>, ApiError> {
    let from = crate::bmcs::caller(peer.as_ref().map(|e| &e.0));
    for a in &ev.audit {
        tracing::info!(target: "audit", action = %a.action, sha256 = %a.sha256, by = %a.by,
            reason = %a.reason, peer = %from, "firmware blob {}", a.action);
    }
    let mut p = Published {
        artifacts: r
            .publish(FIRMWARE_ARTIFACTS, &ev.artifacts, |a| a.sha256.clone())
            .await?,
        scans: r
            .publish(FIRMWARE_SCANS, &ev.scans, |s| s.sha256.clone())
            .await?,
        findings: r
            .publish(FIRMWARE_FINDINGS, &ev.findings, |f| f.target.clone())
            .await?,
        catalog: r
            .publish(FIRMWARE_CATALOG, &ev.catalog, FirmwareCatalogEntry::key)
            .await?,
        secure_boot: r
            .publish(FIRMWARE_SECUREBOOT, &ev.secure_boot, |s| {
                s.server_id.clone()
            })
            .await?,
        catalog_syncs: r
            .publish(FIRMWARE_CATALOG_SYNCS, &ev.catalog_syncs, |s| {
                s.catalog.clone()
            })
            .await?,
        updates: r
            .publish(FIRMWARE_UPDATES, &ev.updates, |u| u.server_id.clone())
            .await?,
        advisories: r
            .publish(FIRMWARE_ADVISORIES, &ev.advisories, |a| a.id.clone())
            .await?,
    };
    if !ev.catalog_removed.is_empty() {
        let tombstones = ev
            .catalog_removed
            .iter()
            .map(|k| Record::tombstone(k.clone()))
            .collect();
        p.catalog += r.send(FIRMWARE_CATALOG, tombstones).await?;
    }
    Ok(Json(p))
}

/// The firmware route group, with its state applied.
pub fn routes(state: FirmwareRoutes) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(get_blob))
        .routes(routes!(list_artifacts))
        .routes(routes!(post_events))
        .routes(routes!(lvfs_metadata))
        .routes(routes!(lvfs_jcat))
        .routes(routes!(lvfs_download))
        .routes(routes!(lvfs_certificate))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("firmware").join("blob-url.key");
        let a = load_or_create_signer(&path).expect("create");
        let key = std::fs::read(&path).expect("read");
        assert_eq!(key.len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = load_or_create_signer(&path).expect("load");
        let sha = "ab".repeat(32);
        let exp = chrono::Utc::now() + chrono::Duration::minutes(5);
        let token = a.sign_blob_url(&sha, exp).expect("sign");
        b.verify_for(&token, &sha).expect("same key");
        std::fs::write(&path, b"short").expect("write");
        assert!(matches!(
            load_or_create_signer(&path),
            Err(KeyError::Weak(_))
        ));
    }
}
