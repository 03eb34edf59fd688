//! The Redfish client: one per BMC, shared by every task that talks to that BMC.
//!
//! Why our own client and not `nv-redfish` (evaluated, 0.22): its CSDL-generated types decode
//! strictly (a resource missing a required property fails as a whole, where an inventory must
//! keep every field it can read), it does not follow `Members@odata.nextLink`, and certificate
//! pinning needs its transport replaced anyway. Inventory reads here are tolerant JSON walks
//! ([`inventory`]); the transport below (sessions, paging, `$expand`, pinning, retries) is what
//! both collectors and command executors need.

pub mod events;
pub mod inventory;
pub mod logs;
pub mod oem;
pub mod secureboot;
pub mod telemetry;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};
use url::Url;
use zeroize::Zeroizing;

use crate::tls::{self, TlsPolicy};
use crate::{BmcError, Credentials};

/// The Redfish service root.
pub const SERVICE_ROOT: &str = "/redfish/v1/";
const DEFAULT_SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

/// How patient and how parallel to be with one BMC.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Per request, connection included.
    pub timeout: Duration,
    /// For the TCP and TLS handshake.
    pub connect_timeout: Duration,
    /// Retries of a transient failure (timeout, reset, 5xx, 429).
    pub retries: u32,
    /// First backoff; doubled per retry, with jitter.
    pub backoff: Duration,
    /// Requests in flight to this BMC at once (BMCs are small computers).
    pub concurrency: usize,
    /// Largest response body accepted.
    pub max_body: usize,
    /// Certificate check.
    pub tls: TlsPolicy,
    /// Use `$expand` when the service root says it is supported.
    pub use_expand: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(250),
            concurrency: 4,
            max_body: 32 << 20,
            tls: TlsPolicy::Verify,
            use_expand: true,
        }
    }
}

enum Auth {
    Unknown,
    Session {
        token: Zeroizing<String>,
        location: Option<String>,
    },
    Basic,
}

/// A Redfish client for one BMC.
pub struct RedfishClient {
    base: Url,
    http: reqwest::Client,
    creds: Credentials,
    opts: ClientOptions,
    auth: Mutex<Auth>,
    permits: Arc<Semaphore>,
    expand: tokio::sync::OnceCell<Option<String>>,
    requests: AtomicU64,
}

impl std::fmt::Debug for RedfishClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedfishClient")
            .field("base", &self.base.as_str())
            .field("user", &self.creds.username)
            .finish_non_exhaustive()
    }
}

/// Parses a BMC address: `host`, `host:port` or a URL; https unless `http://` is written out.
pub fn parse_address(address: &str) -> Result<Url, BmcError> {
    let bad = |reason: &str| BmcError::Address {
        address: address.to_string(),
        reason: reason.to_string(),
    };
    let a = address.trim();
    if a.is_empty() {
        return Err(bad("empty"));
    }
    let with_scheme = if a.contains("://") {
        a.to_string()
    } else {
        format!("https://{a}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be https (or http)"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials do not belong in the address: use --username and --password-file",
        ));
    }
    url.set_path("/");
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// Flattens an error's source chain into one line (reqwest's top message alone says little).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

impl RedfishClient {
    /// A client for the BMC at `address` (see [`parse_address`]).
    pub fn new(address: &str, creds: Credentials, opts: ClientOptions) -> Result<Self, BmcError> {
        let base = parse_address(address)?;
        let builder = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.connect_timeout)
            .user_agent(concat!("metal-automata/", env!("CARGO_PKG_VERSION")))
            // A BMC never needs to send us elsewhere; a redirect would carry credentials away.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(opts.concurrency.max(1));
        let http = tls::apply(builder, &opts.tls)?
            .build()
            .map_err(|e| BmcError::Client(error_chain(&e)))?;
        Ok(RedfishClient {
            base,
            http,
            creds,
            permits: Arc::new(Semaphore::new(opts.concurrency.max(1))),
            opts,
            auth: Mutex::new(Auth::Unknown),
            expand: tokio::sync::OnceCell::new(),
            requests: AtomicU64::new(0),
        })
    }

    /// The BMC's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// HTTP requests sent so far (retries included).
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Resolves a path or link on this BMC; a link to another host is refused (it would receive
    /// our credentials).
    fn url(&self, path: &str) -> Result<Url, BmcError> {
        let url = self.base.join(path).map_err(|e| BmcError::Malformed {
            url: path.to_string(),
            reason: format!("bad link: {e}"),
        })?;
        if url.host_str() != self.base.host_str()
            || url.port_or_known_default() != self.base.port_or_known_default()
        {
            return Err(BmcError::Malformed {
                url: url.to_string(),
                reason: "link points away from this BMC; not followed".into(),
            });
        }
        Ok(url)
    }

    /// GET a resource as JSON.
    pub async fn get(&self, path: &str) -> Result<Value, BmcError> {
        self.json(Method::GET, path, None).await.map(|(v, _)| v)
    }

    /// POST a JSON body; the response body (JSON, or null when empty) and its `Location`.
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(Value, Option<String>), BmcError> {
        self.json(Method::POST, path, Some(body)).await
    }

    /// PATCH a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, BmcError> {
        self.json(Method::PATCH, path, Some(body))
            .await
            .map(|(v, _)| v)
    }

    /// Ends the session, if one was opened (BMCs have few session slots).
    pub async fn logout(&self) {
        let mut auth = self.auth.lock().await;
        if let Auth::Session {
            token,
            location: Some(loc),
        } = &*auth
            && let Ok(url) = self.url(loc)
        {
            let r = self
                .http
                .delete(url)
                .header("X-Auth-Token", token.as_str())
                .send()
                .await;
            if let Err(e) = r {
                tracing::debug!(bmc = %self.base, error = %error_chain(&e), "session logout failed");
            }
        }
        *auth = Auth::Unknown;
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(Value, Option<String>), BmcError> {
        let url = self.url(path)?;
        let anonymous = method == Method::GET && url.path().trim_end_matches('/') == "/redfish/v1";
        let mut attempt = 0;
        let mut relogged = false;
        loop {
            let r = self.once(&method, &url, body, anonymous).await;
            match r {
                Err(BmcError::Auth { .. })
                    if !relogged && !anonymous && self.had_session().await =>
                {
                    // The session expired or was dropped by the BMC: log in again, once.
                    relogged = true;
                    *self.auth.lock().await = Auth::Unknown;
                }
                Err(e) if e.is_transient() && attempt < self.opts.retries => {
                    attempt += 1;
                    let base = self.opts.backoff.as_millis() as u64 * (1u64 << attempt.min(6));
                    let jitter = rand::random_range(0..=base / 2 + 1);
                    tracing::debug!(%url, attempt, error = %e, "transient BMC error; retrying");
                    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
                }
                other => return other,
            }
        }
    }

    /// Opens a long-lived GET (a Server-Sent Events stream) with this client's auth and TLS;
    /// the caller reads the body as it comes. The response head must come within the usual
    /// timeout; `lifetime` then bounds the body (the usual timeout would cut the stream). The
    /// concurrency permit is held only while connecting.
    pub async fn get_stream(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        lifetime: Duration,
    ) -> Result<reqwest::Response, BmcError> {
        let url = self.url(path)?;
        let mut relogged = false;
        loop {
            let mut req = self.http.get(url.clone()).timeout(lifetime);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req = self.authorise(req).await?;
            let resp = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| BmcError::Client("client closed".into()))?;
                self.requests.fetch_add(1, Ordering::Relaxed);
                tokio::time::timeout(self.opts.timeout, req.send())
                    .await
                    .map_err(|_| BmcError::Timeout {
                        url: url.to_string(),
                        secs: self.opts.timeout.as_secs_f64(),
                    })?
                    .map_err(|e| self.transport_error(&url, &e))?
            };
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
                && !relogged
                && self.had_session().await
            {
                relogged = true;
                *self.auth.lock().await = Auth::Unknown;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(BmcError::Auth {
                    url: url.to_string(),
                    status: status.as_u16(),
                });
            }
            let body = tokio::time::timeout(self.opts.timeout, self.read_body(&url, resp))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(BmcError::Http {
                url: url.to_string(),
                status: status.as_u16(),
                message: redfish_message(&body),
            });
        }
    }

    async fn had_session(&self) -> bool {
        matches!(&*self.auth.lock().await, Auth::Session { .. })
    }

    async fn once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        anonymous: bool,
    ) -> Result<(Value, Option<String>), BmcError> {
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .header("Accept", "application/json")
            .header("OData-Version", "4.0");
        if !anonymous {
            req = self.authorise(req).await?;
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| BmcError::Client("client closed".into()))?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(url, &e))?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = self.read_body(url, resp).await?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(BmcError::Auth {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(BmcError::Http {
                url: url.to_string(),
                status: status.as_u16(),
                message: redfish_message(&bytes),
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok((Value::Null, location));
        }
        let v = serde_json::from_slice(&bytes).map_err(|e| BmcError::Malformed {
            url: url.to_string(),
            reason: format!("not JSON: {e}"),
        })?;
        Ok((v, location))
    }

    async fn read_body(&self, url: &Url, mut resp: reqwest::Response) -> Result<Vec<u8>, BmcError> {
        let mut buf = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if buf.len() + c.len() > self.opts.max_body {
                        return Err(BmcError::TooLarge {
                            url: url.to_string(),
                            limit: self.opts.max_body,
                        });
                    }
                    buf.extend_from_slice(&c);
                }
                Ok(None) => return Ok(buf),
                // Some BMC web servers end a body by closing TLS without close_notify; what
                // arrived is kept (the JSON decoder rejects a body that was really cut short).
                Err(e) if !buf.is_empty() && error_chain(&e).contains("close_notify") => {
                    return Ok(buf);
                }
                Err(e) => return Err(self.transport_error(url, &e)),
            }
        }
    }

    fn transport_error(&self, url: &Url, e: &reqwest::Error) -> BmcError {
        let reason = error_chain(e);
        if e.is_timeout() {
            BmcError::Timeout {
                url: url.to_string(),
                secs: self.opts.timeout.as_secs_f64(),
            }
        } else if reason.contains("certificate") || reason.contains("InvalidCertificate") {
            BmcError::Certificate {
                url: url.to_string(),
                reason,
            }
        } else {
            BmcError::Connect {
                url: url.to_string(),
                reason,
            }
        }
    }

    async fn authorise(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, BmcError> {
        let mut auth = self.auth.lock().await;
        if matches!(*auth, Auth::Unknown) {
            *auth = self.login().await?;
        }
        Ok(match &*auth {
            Auth::Session { token, .. } => req.header("X-Auth-Token", token.as_str()),
            _ => req.basic_auth(&self.creds.username, Some(self.creds.password())),
        })
    }

    /// Opens a session; falls back to basic auth where the BMC has no session service.
    async fn login(&self) -> Result<Auth, BmcError> {
        let url = self.url(DEFAULT_SESSIONS)?;
        let body = serde_json::json!({
            "UserName": self.creds.username,
            "Password": self.creds.password(),
        });
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .http
            .post(url.clone())
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| self.transport_error(&url, &e))?;
        let status = resp.status();
        let token = resp
            .headers()
            .get("X-Auth-Token")
            .and_then(|v| v.to_str().ok())
            .map(|s| Zeroizing::new(s.to_string()));
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match (status, token) {
            (s, Some(token)) if s.is_success() => {
                tracing::debug!(bmc = %self.base, "Redfish session opened");
                Ok(Auth::Session { token, location })
            }
            (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => Err(BmcError::Auth {
                url: url.to_string(),
                status: status.as_u16(),
            }),
            (s, _) if s.is_server_error() && s != StatusCode::NOT_IMPLEMENTED => {
                Err(BmcError::Http {
                    url: url.to_string(),
                    status: s.as_u16(),
                    message: None,
                })
            }
            (s, _) => {
                tracing::debug!(bmc = %self.base, status = s.as_u16(), "no Redfish session; using basic auth");
                Ok(Auth::Basic)
            }
        }
    }

    /// The `$expand` query this BMC supports for one level of collection members, if any.
    async fn expand_query(&self) -> Option<String> {
        if !self.opts.use_expand {
            return None;
        }
        self.expand
            .get_or_init(|| async {
                let root = self.get(SERVICE_ROOT).await.ok()?;
                let e = root.pointer("/ProtocolFeaturesSupported/ExpandQuery")?;
                let flag = |k: &str| e.get(k).and_then(Value::as_bool).unwrap_or(false);
                let levels = if flag("Levels") { "($levels=1)" } else { "" };
                if flag("NoLinks") {
                    Some(format!("$expand=.{levels}"))
                } else if flag("ExpandAll") {
                    Some(format!("$expand=*{levels}"))
                } else {
                    None
                }
            })
            .await
            .clone()
    }

    /// Every member of a collection, each as its full resource: one level of `$expand` where the
    /// BMC offers it (falling back to one GET per member when the members come back as bare
    /// links), and every page through `Members@odata.nextLink`.
    pub async fn members(&self, collection: &str) -> Result<Vec<Value>, BmcError> {
        let expand = self.expand_query().await;
        let first = match &expand {
            Some(q) => {
                let sep = if collection.contains('?') { '&' } else { '?' };
                match self.get(&format!("{collection}{sep}{q}")).await {
                    Ok(v) => v,
                    Err(e)
                        if e.status()
                            .is_some_and(|s| (400..500).contains(&s) && s != 401 && s != 403) =>
                    {
                        self.get(collection).await?
                    }
                    Err(e) => return Err(e),
                }
            }
            None => self.get(collection).await?,
        };
        let mut members = Vec::new();
        let mut page = first;
        let mut pages = 1;
        loop {
            if let Some(Value::Array(ms)) = page.get_mut("Members") {
                members.append(ms);
            }
            let next = page
                .get("Members@odata.nextLink")
                .and_then(Value::as_str)
                .map(str::to_string);
            match next {
                Some(link) if pages < 10_000 => {
                    page = self.get(&link).await?;
                    pages += 1;
                }
                _ => break,
            }
        }
        // Members that came back as bare links: fetch them, a few at a time.
        let resolved = futures::stream::iter(members.into_iter().map(|m| async move {
            let bare = m.as_object().is_some_and(|o| o.len() <= 1);
            match (bare, odata_id(&m)) {
                (true, Some(id)) => self.get(&id).await,
                _ => Ok(m),
            }
        }))
        .buffered(self.opts.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
        resolved.into_iter().collect()
    }
}

/// The `@odata.id` of a resource or link.
pub fn odata_id(v: &Value) -> Option<String> {
    v.get("@odata.id")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The first message of a Redfish error body, when there is one.
fn redfish_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    let extended = e
        .get("@Message.ExtendedInfo")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|m| m.get("Message"))
        .and_then(Value::as_str);
    extended
        .or_else(|| e.get("message").and_then(Value::as_str))
        .map(|m| m.chars().take(300).collect())
}
