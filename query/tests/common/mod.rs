//! Helpers shared by the route tests.
#![allow(dead_code)]

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use axum::response::Response;
use tower::ServiceExt as _;

/// What every test returns, so `?` can replace `unwrap`.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A peer on this host.
pub const LOCAL: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 41000);
/// A peer elsewhere (never contacted: it is only stamped on requests as their origin).
pub const REMOTE: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)),
    41000,
);

/// A request as if it had arrived from `peer`.
pub fn request(method: Method, uri: &str, peer: SocketAddr) -> Request<Body> {
    with_body(method, uri, peer, Body::empty())
}

/// A request with a body, as if it had arrived from `peer`.
pub fn with_body(
    method: Method,
    uri: &str,
    peer: SocketAddr,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut request = Request::new(body.into());
    *request.method_mut() = method;
    *request.uri_mut() = uri.parse().unwrap_or_default();
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

/// Sends one request through the router, without sockets.
pub async fn call(
    app: &Router,
    request: Request<Body>,
) -> Result<Response, std::convert::Infallible> {
    app.clone().oneshot(request).await
}

/// The response body as text.
pub async fn body_text(response: Response) -> Result<String, Box<dyn std::error::Error>> {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    Ok(String::from_utf8(bytes.to_vec())?)
}

/// The response body as JSON.
pub async fn body_json(
    response: Response,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// An empty in-memory registry.
pub fn registry() -> automata_schemas::registry::SchemaRegistry {
    automata_schemas::registry::SchemaRegistry::new(std::sync::Arc::new(
        automata_schemas::registry::MemoryRegistryLog::default(),
    ))
}
