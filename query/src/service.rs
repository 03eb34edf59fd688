//! The service's own routes: status, the OpenAPI document and the Prometheus page.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiState;
use crate::error::ErrorBody;

/// What `GET /api/v1/status` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceStatus {
    /// The service's name.
    #[schema(example = "metal-automata")]
    pub service: String,
    /// The running version.
    #[schema(example = "0.1.0")]
    pub version: String,
    /// Seconds since the service started.
    pub uptime_seconds: u64,
    /// The roles this process runs (producers, processors, sinks, api...).
    pub roles: Vec<String>,
    /// A description of the message-log backend in use.
    #[schema(example = "embedded log at /var/lib/metal-automata/log")]
    pub log_backend: String,
}

/// Supplies the status document; the binary implements it over its running parts.
pub trait StatusSource: Send + Sync + 'static {
    /// The current status.
    fn status(&self) -> ServiceStatus;
}

impl<F> StatusSource for F
where
    F: Fn() -> ServiceStatus + Send + Sync + 'static,
{
    fn status(&self) -> ServiceStatus {
        self()
    }
}

/// A [`StatusSource`] for a process whose roles and backend are fixed at start.
#[derive(Debug, Clone)]
pub struct StaticStatus {
    service: String,
    version: String,
    roles: Vec<String>,
    log_backend: String,
    started: Instant,
}

impl StaticStatus {
    /// A status that counts uptime from now.
    pub fn new(
        service: impl Into<String>,
        version: impl Into<String>,
        roles: Vec<String>,
        log_backend: impl Into<String>,
    ) -> Self {
        Self {
            service: service.into(),
            version: version.into(),
            roles,
            log_backend: log_backend.into(),
            started: Instant::now(),
        }
    }
}

impl StatusSource for StaticStatus {
    fn status(&self) -> ServiceStatus {
        ServiceStatus {
            service: self.service.clone(),
            version: self.version.clone(),
            uptime_seconds: self.started.elapsed().as_secs(),
            roles: self.roles.clone(),
            log_backend: self.log_backend.clone(),
        }
    }
}

/// The finished OpenAPI document, rendered once and handed to its route as an extension.
#[derive(Clone)]
pub(crate) struct OpenApiJson(pub(crate) Arc<str>);

/// The status of the running service.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "service",
    operation_id = "get_status",
    responses(
        (status = 200, description = "The service's status", body = ServiceStatus),
        (status = 401, description = "Remote caller without a valid token", body = ErrorBody),
    )
)]
async fn status(State(state): State<ApiState>) -> Json<ServiceStatus> {
    Json(state.status.status())
}

/// This document: the OpenAPI 3.1 description of every route.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "service",
    operation_id = "get_openapi",
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object),
        (status = 401, description = "Remote caller without a valid token", body = ErrorBody),
    )
)]
async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.0.to_string(),
    )
        .into_response()
}

/// The Prometheus text exposition of the service's metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    operation_id = "get_metrics",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, description = "Remote caller without a valid token", body = ErrorBody),
    )
)]
async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        (state.metrics)(),
    )
        .into_response()
}

/// The service routes, documented.
pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(openapi_json))
        .routes(routes!(metrics))
}
