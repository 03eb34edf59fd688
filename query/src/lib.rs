//! The HTTP API of Metal Automata (axum): versioned JSON routes under `/api/v1`, the OpenAPI
//! document, Prometheus metrics, and the Confluent-compatible Schema Registry API.
//!
//! Build the router with [`ApiBuilder`] (or [`router`] when there is nothing to add), then run it
//! with [`serve`] or [`ApiServer`]:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use automata_query::{ApiBuilder, ApiConfig, ApiState, StaticStatus, serve};
//!
//! let cfg = ApiConfig::default();
//! let status = StaticStatus::new("metal-automata", "0.1.0", vec!["api".into()], "embedded");
//! let state = ApiState::new(Arc::new(status)).with_token(cfg.load_token()?);
//! let app = ApiBuilder::new(state).build();
//! serve(&cfg, app, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! Every route, the registry's included, is behind one rule: callers on loopback pass, anyone
//! else needs `Authorization: Bearer <token>` with the configured token.

mod auth;
pub mod bmcs;
pub mod error;
pub mod firmware;
pub mod fleet;
mod http_metrics;
pub mod keyfile;
pub mod registry;
mod service;
pub mod sql;
pub mod tpm;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use automata_schemas::registry::SchemaRegistry;
use axum::Router;
use axum::extract::Extension;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, ErrorDetail};
pub use service::{ServiceStatus, StaticStatus, StatusSource};
/// Re-exported so route groups merged with [`ApiBuilder::merge`] use the same version.
pub use utoipa_axum;

/// Where the API listens when the configuration does not say.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 7878);

/// Renders the Prometheus text page; `MetricsHandle::render_fn` from the observability crate fits.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// The `[api]` section of the configuration.
#[derive(Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The bearer token remote callers must present.
    pub token: Option<String>,
    /// A file holding the token (its surrounding whitespace is ignored); keeps it out of the config.
    pub token_file: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            token: None,
            token_file: None,
        }
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// Why the API could not be configured or served.
#[derive(Debug, thiserror::Error)]
pub enum ApiServeError {
    /// Both `token` and `token_file` are set.
    #[error("set only one of api.token and api.token_file")]
    TwoTokens,
    /// The token file cannot be read.
    #[error("cannot read the API token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configured token (or token file) is empty.
    #[error("the API token is empty")]
    EmptyToken,
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("the API server failed: {0}")]
    Io(#[from] std::io::Error),
}

impl ApiConfig {
    /// The configured token, read from `token_file` when that is set.
    pub fn load_token(&self) -> Result<Option<String>, ApiServeError> {
        let token = match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => return Err(ApiServeError::TwoTokens),
            (None, None) => return Ok(None),
            (Some(token), None) => token.trim().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|source| ApiServeError::TokenFile {
                    path: path.clone(),
                    source,
                })?
                .trim()
                .to_owned(),
        };
        if token.is_empty() {
            return Err(ApiServeError::EmptyToken);
        }
        Ok(Some(token))
    }
}

/// What the built-in routes need: status, metrics, the token and (optionally) the registry.
#[derive(Clone)]
pub struct ApiState {
    status: Arc<dyn StatusSource>,
    metrics: MetricsRender,
    token: Option<auth::ApiToken>,
    registry: Option<SchemaRegistry>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("token", &self.token)
            .field("schema_registry", &self.registry.is_some())
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// State with a status source, an empty metrics page, no token and no registry.
    pub fn new(status: Arc<dyn StatusSource>) -> Self {
        Self {
            status,
            metrics: Arc::new(String::new),
            token: None,
            registry: None,
        }
    }

    /// Serves `GET /metrics` from `render`.
    pub fn with_metrics(mut self, render: MetricsRender) -> Self {
        self.metrics = render;
        self
    }

    /// Sets the bearer token remote callers need; `None` (or a blank token) refuses them all.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.as_deref().and_then(auth::ApiToken::new);
        self
    }

    /// Mounts the Schema Registry API over `registry`; `None` (an external registry) mounts nothing.
    pub fn with_schema_registry(mut self, registry: Option<SchemaRegistry>) -> Self {
        self.registry = registry;
        self
    }
}

/// The document's top level; paths are added from the routes themselves.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Metal Automata API",
        description = "Fleet firmware and hardware automation. Callers on loopback need no \
                       credentials; others send `Authorization: Bearer <token>`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "service", description = "The running service"),
        (name = "schema-registry", description = "Confluent-compatible Schema Registry API"),
        (name = "fleet", description = "Servers, topics and schemas of the fleet"),
        (name = "sql", description = "SQL over fleet history"),
    )
)]
struct ApiDoc;

/// Adds the bearer security scheme to the document.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Needed from non-loopback callers only"))
                    .build(),
            ),
        );
        openapi.security = Some(vec![
            utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new()),
            utoipa::openapi::security::SecurityRequirement::default(),
        ]);
    }
}

/// Assembles the API: the built-in routes plus route groups the binary merges in.
///
/// Route groups come as [`utoipa_axum::router::OpenApiRouter`]s with their state already
/// applied, so each handler's `#[utoipa::path]` lands in `/api/v1/openapi.json` by construction:
///
/// ```ignore
/// let servers = OpenApiRouter::new().routes(routes!(list_servers)).with_state(inventory);
/// let app = ApiBuilder::new(state).merge(servers).build();
/// ```
pub struct ApiBuilder {
    state: ApiState,
    documented: OpenApiRouter,
    undocumented: Vec<Router>,
}

impl ApiBuilder {
    /// A builder with the built-in routes.
    pub fn new(state: ApiState) -> Self {
        Self {
            state,
            documented: OpenApiRouter::new(),
            undocumented: Vec::new(),
        }
    }

    /// Adds a documented route group (its paths should live under `/api/v1/`).
    pub fn merge(mut self, routes: OpenApiRouter) -> Self {
        self.documented = self.documented.merge(routes);
        self
    }

    /// Adds routes that are not part of the JSON API (such as the dashboard's static files);
    /// they still sit behind auth and are counted in the metrics.
    pub fn merge_undocumented(mut self, routes: Router) -> Self {
        self.undocumented.push(routes);
        self
    }

    /// The finished router, with auth, metrics, JSON 404/405 and the OpenAPI document.
    pub fn build(self) -> Router {
        let Self {
            state,
            documented,
            undocumented,
        } = self;
        if state.token.is_none() {
            tracing::info!("no API token configured: only loopback callers will be served");
        }
        let auth = Arc::new(auth::AuthState {
            token: state.token.clone(),
            render: render_auth_error,
        });

        let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(service::routes());
        if let Some(registry) = state.registry.clone() {
            api = api.merge(registry::routes().with_state(registry));
        }
        let (mut router, doc) = api.with_state(state).merge(documented).split_for_parts();
        for extra in undocumented {
            router = router.merge(extra);
        }
        let doc = doc.to_pretty_json().unwrap_or_else(|e| {
            tracing::error!("cannot render the OpenAPI document: {e}");
            "{}".to_owned()
        });

        router
            .fallback(error::not_found)
            .method_not_allowed_fallback(error::method_not_allowed)
            .layer(Extension(service::OpenApiJson(doc.into())))
            .layer(axum::middleware::from_fn_with_state(
                auth,
                auth::require_token,
            ))
            .layer(axum::middleware::from_fn(http_metrics::record))
    }
}

/// Auth failures in the shape the route's clients parse.
fn render_auth_error(path: &str, error: ApiError) -> Response {
    if registry::is_registry_path(path) {
        registry::RegistryApiError::from(error).into_response()
    } else {
        error.into_response()
    }
}

/// The API with only its built-in routes.
pub fn router(state: ApiState) -> Router {
    ApiBuilder::new(state).build()
}

impl From<ApiState> for Router {
    fn from(state: ApiState) -> Self {
        router(state)
    }
}

impl From<ApiBuilder> for Router {
    fn from(builder: ApiBuilder) -> Self {
        builder.build()
    }
}

/// A bound listener, so callers (tests especially) learn the port before serving.
#[derive(Debug)]
pub struct ApiServer {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

impl ApiServer {
    /// Binds the configured address.
    pub async fn bind(cfg: &ApiConfig) -> Result<Self, ApiServeError> {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| ApiServeError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr()?;
        Ok(Self { listener, addr })
    }

    /// The address actually bound (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `app` until `shutdown` completes, then lets in-flight requests finish.
    pub async fn serve(
        self,
        app: impl Into<Router>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ApiServeError> {
        tracing::info!("API listening on http://{}", self.addr);
        axum::serve(
            self.listener,
            app.into()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
        tracing::info!("API on http://{} stopped", self.addr);
        Ok(())
    }
}

/// Binds `cfg.listen` and serves `app` (an [`ApiState`], [`ApiBuilder`] or built router) until
/// `shutdown` completes.
pub async fn serve(
    cfg: &ApiConfig,
    app: impl Into<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiServeError> {
    ApiServer::bind(cfg).await?.serve(app, shutdown).await
}
