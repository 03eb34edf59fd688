//! BMC registration routes: `GET/POST /api/v1/bmcs`, `DELETE /api/v1/bmcs/{name}` and
//! `POST /api/v1/bmcs/collect`. Passwords come in once, are sealed in the registry and never come
//! back out; every change is written to the audit log.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use automata_bmc::TlsPolicy;
use automata_bmc::registry::{BmcEntry, BmcRegistry, BmcStatus, StatusBoard, default_name};
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiJson, ApiPath, ErrorBody};

/// What the BMC routes need.
#[derive(Clone)]
pub struct BmcRoutes {
    /// The encrypted registry.
    pub registry: Arc<BmcRegistry>,
    /// Collection status per BMC.
    pub board: StatusBoard,
    /// Wakes the collector for an immediate sweep.
    pub kick: Arc<tokio::sync::Notify>,
}

/// `POST /api/v1/bmcs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddBmc {
    /// `host`, `host:port` or `https://host[:port]` (https unless `http://` is written out);
    /// for IPMI, `host[:port]` (port 623 by default).
    pub address: String,
    /// `redfish` (default) or `ipmi` (IPMI 2.0 over LAN, for BMCs without Redfish).
    #[serde(default)]
    #[schema(value_type = String)]
    pub protocol: automata_bmc::Protocol,
    /// The BMC account.
    pub username: String,
    /// Its password: sealed at rest, never returned.
    pub password: String,
    /// A name for it (default: host[:port]).
    pub name: Option<String>,
    /// Pin the certificate with this SHA-256 fingerprint (self-signed BMC certificates).
    pub pin_sha256: Option<String>,
    /// Verify against this CA (PEM) instead of the system roots.
    pub ca_pem: Option<String>,
    /// Do not check the certificate of this BMC at all.
    #[serde(default)]
    pub insecure: bool,
    /// Allow plain `http://` to a BMC that is not on loopback (credentials in clear).
    #[serde(default)]
    pub allow_plain_http: bool,
    /// Operator labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One registered BMC with its collection status.
#[derive(Debug, Serialize, ToSchema)]
pub struct BmcView {
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Account.
    pub username: String,
    /// redfish or ipmi.
    pub protocol: String,
    /// Certificate check, in words.
    pub tls: String,
    /// Registered at (RFC 3339).
    pub added_at: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Last collection.
    #[schema(value_type = Object)]
    pub status: BmcStatus,
}

/// `GET /api/v1/bmcs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BmcList {
    /// Every registered BMC.
    pub bmcs: Vec<BmcView>,
}

fn view(e: BmcEntry, board: &StatusBoard) -> BmcView {
    let status = board
        .read()
        .map(|b| b.get(&e.name).cloned().unwrap_or_default())
        .unwrap_or_default();
    BmcView {
        protocol: format!("{:?}", e.protocol).to_lowercase(),
        tls: match e.protocol {
            automata_bmc::Protocol::Ipmi => "n/a (RMCP+)".into(),
            automata_bmc::Protocol::Redfish => e.tls.describe(),
        },
        name: e.name,
        address: e.address,
        username: e.username,
        added_at: e.added_at,
        labels: e.labels,
        status,
    }
}

/// Who made a request, for the audit log: the peer's address (or `in-process`).
pub(crate) fn caller(peer: Option<&ConnectInfo<SocketAddr>>) -> String {
    peer.map(|ConnectInfo(a)| a.to_string())
        .unwrap_or_else(|| "in-process".into())
}

#[utoipa::path(get, path = "/api/v1/bmcs", tag = "bmcs", operation_id = "list_bmcs",
    responses((status = 200, description = "Registered BMCs and their last collection", body = BmcList)))]
async fn list_bmcs(State(r): State<BmcRoutes>) -> Result<Json<BmcList>, ApiError> {
    let entries = r
        .registry
        .list()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(BmcList {
        bmcs: entries.into_iter().map(|e| view(e, &r.board)).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/bmcs", tag = "bmcs", operation_id = "add_bmc",
    request_body = AddBmc,
    responses((status = 201, description = "Registered (or replaced); collection starts at once", body = BmcView),
              (status = 400, description = "Bad address, empty credentials or TLS options", body = ErrorBody)))]
async fn add_bmc(
    State(r): State<BmcRoutes>,
    peer: Option<axum::extract::Extension<ConnectInfo<SocketAddr>>>,
    ApiJson(req): ApiJson<AddBmc>,
) -> Result<(StatusCode, Json<BmcView>), ApiError> {
    if req.username.trim().is_empty() || req.password.is_empty() {
        return Err(ApiError::bad_request(
            "username and password must not be empty",
        ));
    }
    if req.protocol == automata_bmc::Protocol::Ipmi {
        return add_ipmi(r, peer, req).await;
    }
    let url = automata_bmc::redfish::parse_address(&req.address)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let loopback = url
        .host_str()
        .and_then(|h| h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
        || url.host_str() == Some("localhost");
    if url.scheme() == "http" && !loopback && !req.allow_plain_http {
        return Err(ApiError::bad_request(
            "plain http sends the BMC password in clear: use https, or set allow_plain_http for this BMC",
        ));
    }
    let tls = match (&req.pin_sha256, &req.ca_pem, req.insecure) {
        (Some(_), Some(_), _) | (Some(_), _, true) | (_, Some(_), true) => {
            return Err(ApiError::bad_request(
                "choose one of pin_sha256, ca_pem and insecure",
            ));
        }
        (Some(fp), None, false) => {
            TlsPolicy::pin(fp).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        (None, Some(pem), false) => TlsPolicy::Ca { pem: pem.clone() },
        (None, None, true) => TlsPolicy::Insecure,
        (None, None, false) => TlsPolicy::Verify,
    };
    let name = req
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| default_name(&url));
    let entry = BmcEntry {
        name: name.clone(),
        address: url.as_str().trim_end_matches('/').to_string(),
        username: req.username.clone(),
        protocol: automata_bmc::Protocol::Redfish,
        tls,
        added_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        labels: req.labels.clone(),
    };
    register(&r, entry, &req.password, peer.as_ref().map(|p| &p.0))
}

async fn add_ipmi(
    r: BmcRoutes,
    peer: Option<axum::extract::Extension<ConnectInfo<SocketAddr>>>,
    req: AddBmc,
) -> Result<(StatusCode, Json<BmcView>), ApiError> {
    if req.pin_sha256.is_some() || req.ca_pem.is_some() || req.insecure {
        return Err(ApiError::bad_request("TLS options do not apply to IPMI"));
    }
    let (host, port) = automata_bmc::ipmi::split_address(&req.address)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let name = req
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("ipmi:{host}:{port}"));
    let entry = BmcEntry {
        name,
        address: format!("{host}:{port}"),
        username: req.username.clone(),
        protocol: automata_bmc::Protocol::Ipmi,
        tls: TlsPolicy::Verify,
        added_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        labels: req.labels.clone(),
    };
    register(&r, entry, &req.password, peer.as_ref().map(|p| &p.0))
}

/// Stores the entry, audits it, and starts a collection.
fn register(
    r: &BmcRoutes,
    entry: BmcEntry,
    password: &str,
    peer: Option<&ConnectInfo<SocketAddr>>,
) -> Result<(StatusCode, Json<BmcView>), ApiError> {
    let name = entry.name.clone();
    let replaced = r
        .registry
        .add(entry.clone(), password)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    tracing::info!(
        target: "audit",
        action = if replaced { "bmc.replace" } else { "bmc.add" },
        bmc = %name,
        address = %entry.address,
        username = %entry.username,
        protocol = ?entry.protocol,
        tls = %entry.tls.describe(),
        caller = %caller(peer),
        "BMC registered"
    );
    r.kick.notify_one();
    Ok((StatusCode::CREATED, Json(view(entry, &r.board))))
}

#[utoipa::path(delete, path = "/api/v1/bmcs/{name}", tag = "bmcs", operation_id = "remove_bmc",
    params(("name" = String, Path, description = "BMC name")),
    responses((status = 204, description = "Removed, with its sealed password"),
              (status = 404, description = "No such BMC", body = ErrorBody)))]
async fn remove_bmc(
    State(r): State<BmcRoutes>,
    peer: Option<axum::extract::Extension<ConnectInfo<SocketAddr>>>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    match r.registry.remove(&name) {
        Ok(()) => {
            r.board.write().map(|mut b| b.remove(&name)).ok();
            tracing::info!(target: "audit", action = "bmc.remove", bmc = %name,
                caller = %caller(peer.as_ref().map(|p| &p.0)), "BMC removed");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(automata_bmc::registry::RegistryError::NotFound(n)) => {
            Err(ApiError::not_found(format!("no BMC named {n:?}")))
        }
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

#[utoipa::path(post, path = "/api/v1/bmcs/collect", tag = "bmcs", operation_id = "collect_bmcs",
    responses((status = 202, description = "A sweep of every BMC starts now")))]
async fn collect_bmcs(State(r): State<BmcRoutes>) -> StatusCode {
    r.kick.notify_one();
    StatusCode::ACCEPTED
}

/// The BMC route group.
pub fn routes(state: BmcRoutes) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_bmcs, add_bmc))
        .routes(routes!(remove_bmc))
        .routes(routes!(collect_bmcs))
        .with_state(state)
}
