//! The CLI's side of the HTTP API: every command but `serve` and `bench` is a client.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::config::Config;

/// Talks to one Metal Automata service.
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

    /// GETs a JSON document, turning the API's error bodies into readable errors.
    pub async fn get(&self, path: &str) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.get(&url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.with_context(|| {
            format!("cannot reach the Metal Automata service at {} (is `metal-automata serve` running? set --server or METAL_AUTOMATA_SERVER)", self.base)
        })?;
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
            bail!("{url}: {status}: {msg}");
        }
        Ok(body)
    }
}
