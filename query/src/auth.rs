//! Who may call the API: loopback peers always, anyone else with the configured bearer token.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The configured API token, kept only as its SHA-256 digest.
///
/// Comparing digests in constant time (`subtle`) hides both the token's bytes and its length
/// from timing.
#[derive(Clone)]
pub(crate) struct ApiToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

impl ApiToken {
    /// A token; empty or blank tokens are refused (they would let `Bearer ` in).
    pub(crate) fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        (!token.is_empty()).then(|| Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(self.digest.ct_eq(&digest))
    }
}

/// Whether a peer address is on this host (127.0.0.0/8, ::1, or IPv4-mapped loopback).
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The token in an `Authorization: Bearer <token>` header, if there is one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The fwupd remote's path prefix: fwupd cannot send a bearer token, only HTTP basic auth.
const FWUPD_REMOTE_PREFIX: &str = "/api/v1/firmware/lvfs/";

/// The password of an `Authorization: Basic` header, accepted as the token on the fwupd remote's
/// paths only (a remote's `.conf` takes `Username=`/`Password=`; the user name is ignored).
fn basic_password(request: &Request) -> Option<String> {
    use base64::Engine;
    if !request.uri().path().starts_with(FWUPD_REMOTE_PREFIX) {
        return None;
    }
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    text.split_once(':').map(|(_, pass)| pass.to_string())
}

/// How an auth failure is rendered: the API's JSON error or the Schema Registry's.
pub(crate) type ErrorRenderer = fn(&str, ApiError) -> Response;

/// State of the auth middleware.
#[derive(Clone)]
pub(crate) struct AuthState {
    pub(crate) token: Option<ApiToken>,
    pub(crate) render: ErrorRenderer,
}

/// A BMC fetching a firmware blob for `SimpleUpdate` cannot send our bearer token; the expiring
/// HMAC token in the URL authorises that one read (the handler verifies it, per blob).
fn signed_blob_download(request: &Request) -> bool {
    request.method() == axum::http::Method::GET
        && request.uri().path().starts_with("/api/v1/firmware/blobs/")
        && request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("token=")))
}

/// Lets loopback peers through; requires the bearer token from everyone else.
///
/// A request without `ConnectInfo` (served without `into_make_service_with_connect_info`) is
/// treated as remote: the check fails closed.
pub(crate) async fn require_token(
    State(auth): State<Arc<AuthState>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if peer.is_some_and(is_loopback) || signed_blob_download(&request) {
        return next.run(request).await;
    }
    let basic = basic_password(&request);
    let presented = bearer(request.headers()).or(basic.as_deref());
    let refusal = match (&auth.token, presented) {
        (None, _) => ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "token_not_configured",
            "remote access needs an API token: configure api.token or api.token_file on the \
             server, then send it as `Authorization: Bearer <token>`",
        ),
        (Some(_), None) => {
            ApiError::unauthorized("this request needs an `Authorization: Bearer <token>` header")
        }
        (Some(token), Some(presented)) if token.matches(presented) => {
            return next.run(request).await;
        }
        (Some(_), Some(_)) => ApiError::unauthorized("the bearer token is not valid"),
    };
    tracing::debug!(peer = ?peer, path = request.uri().path(), "refused: {}", refusal.message());
    (auth.render)(request.uri().path(), refusal).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn loopback_ranges() {
        for ip in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(
                is_loopback(ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
                "{ip}"
            );
        }
        for ip in [
            "10.0.0.1",
            "192.168.1.1",
            "::2",
            "0.0.0.0",
            "::ffff:10.0.0.1",
        ] {
            let parsed: IpAddr = ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
            assert!(!is_loopback(parsed), "{ip}");
        }
    }

    #[test]
    fn bearer_parsing_and_matching() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  s3cret "),
        );
        assert_eq!(bearer(&headers), Some("s3cret"));

        assert!(ApiToken::new("   ").is_none());
        let token = ApiToken::new("s3cret");
        assert!(token.as_ref().is_some_and(|t| t.matches("s3cret")));
        assert!(token.as_ref().is_some_and(|t| !t.matches("s3cre")));
        assert!(token.as_ref().is_some_and(|t| !t.matches("")));
    }

    #[test]
    fn basic_auth_counts_only_on_the_fwupd_remote() {
        let req = |path: &str, auth: &'static str| {
            let mut r = Request::new(axum::body::Body::empty());
            *r.uri_mut() = path.parse().unwrap_or_default();
            r.headers_mut()
                .insert(header::AUTHORIZATION, HeaderValue::from_static(auth));
            r
        };
        // "fwupd:s3cret"
        let good = "Basic Znd1cGQ6czNjcmV0";
        assert_eq!(
            basic_password(&req("/api/v1/firmware/lvfs/metadata.xml.zst", good)).as_deref(),
            Some("s3cret")
        );
        assert_eq!(basic_password(&req("/api/v1/sql", good)), None);
        assert_eq!(
            basic_password(&req("/api/v1/firmware/lvfs/x", "Basic !!!")),
            None
        );
        assert_eq!(
            basic_password(&req("/api/v1/firmware/lvfs/x", "Bearer s3cret")),
            None
        );
    }
}
