//! The CLI's side of the HTTP API: every command but `serve` and `bench` is a client.

use anyhow::{Context, Result, bail};
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::ipc::reader::StreamReader;
use serde_json::Value;

use crate::config::Config;

/// Talks to one Metal Automata service.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// Percent-encodes one path segment (server ids may hold anything).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl ApiClient {
    /// A client for `server`, or for the local service the config describes.
    pub fn new(server: Option<&str>, token: Option<&str>, cfg: &Config) -> Result<Self> {
        let base = match server {
            Some(s) => s.trim_end_matches('/').to_string(),
            None => {
                let mut addr = cfg.api.listen;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("metal-automata/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(ApiClient {
            base,
            token: token.map(str::to_string),
            http,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> (String, reqwest::RequestBuilder) {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        (url, req)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        req.send().await.with_context(|| {
            format!("cannot reach the Metal Automata service at {} (is `metal-automata serve` running? set --server or METAL_AUTOMATA_SERVER)", self.base)
        })
    }

    /// GETs a JSON document, turning the API's error bodies into readable errors.
    pub async fn get(&self, path: &str) -> Result<Value> {
        let (url, req) = self.request(reqwest::Method::GET, path);
        let resp = self.send(req).await?;
        json_body(&url, resp).await
    }

    /// POSTs a JSON body and reads a JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let (url, req) = self.request(reqwest::Method::POST, path);
        let resp = self.send(req.json(body).timeout(LONG)).await?;
        json_body(&url, resp).await
    }

    /// DELETEs a resource (an empty answer is success).
    pub async fn delete(&self, path: &str) -> Result<()> {
        let (url, req) = self.request(reqwest::Method::DELETE, path);
        let resp = self.send(req).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        json_body(&url, resp).await.map(|_| ())
    }

    /// POSTs a JSON body asking for an Arrow IPC stream; returns the answer's batches.
    pub async fn post_arrow(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let (url, req) = self.request(reqwest::Method::POST, path);
        let req = req
            .json(body)
            .header(reqwest::header::ACCEPT, automata_query::sql::ARROW_STREAM)
            .timeout(LONG);
        let resp = self.send(req).await?;
        if !resp.status().is_success() {
            json_body(&url, resp).await?;
            bail!("{url}: the service refused the query");
        }
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("{url}: the answer broke off"))?;
        let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .with_context(|| format!("{url}: the answer is not an Arrow stream"))?;
        let schema = reader.schema();
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{url}: the Arrow stream is damaged or broke off"))?;
        Ok((schema, batches))
    }
}

/// How long a query may take over HTTP (the service enforces its own, shorter, limit).
const LONG: std::time::Duration = std::time::Duration::from_secs(600);

/// Reads a JSON answer, turning the API's error bodies into readable errors.
async fn json_body(url: &str, resp: reqwest::Response) -> Result<Value> {
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .with_context(|| format!("{url} answered {status} with a body that is not JSON"))?;
    if !status.is_success() {
        let msg = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        return Err(ApiRefused {
            url: url.to_string(),
            status: status.as_u16(),
            message: msg,
        }
        .into());
    }
    Ok(body)
}

/// The service answered with an error status: kept typed so callers can tell a request the
/// service will never accept (400, 413, 422) from one worth retrying.
#[derive(Debug)]
pub struct ApiRefused {
    /// The request URL.
    pub url: String,
    /// The HTTP status.
    pub status: u16,
    /// The service's message.
    pub message: String,
}

impl std::fmt::Display for ApiRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reason = reqwest::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        write!(
            f,
            "{}: {} {reason}: {}",
            self.url, self.status, self.message
        )
    }
}

impl std::error::Error for ApiRefused {}

impl ApiRefused {
    /// Whether sending the same request again can never succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self.status, 400 | 413 | 422)
    }
}
