//! Streaming downloads into the store: hashed as bytes arrive, resumable `.part` files, bounded
//! retries, a per-host cap, a size cap enforced while streaming, and stall protection.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, RANGE, RETRY_AFTER};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio::sync::Semaphore;

use crate::error::StoreError;
use crate::hash::{Expected, MultiHasher};
use crate::manifest::{Manifest, Source, SourceKind};
use crate::store::FirmwareStore;

/// Redirects followed before giving up (issue 9: at most 5).
pub const MAX_REDIRECTS: usize = 5;

/// Knobs of the downloader; `Default` is what a server runs with.
#[derive(Debug, Clone)]
pub struct DownloadConfig {
    /// Hard cap on any blob; the effective cap is min(this, catalog size × 1.1).
    pub max_size: u64,
    /// Concurrent downloads per host (vendor CDNs throttle).
    pub per_host: usize,
    /// Retries after the first attempt (connect errors, 5xx, 429, stalls, cut bodies).
    pub max_retries: u32,
    /// First backoff; doubles per retry, jittered.
    pub backoff_base: Duration,
    /// Longest backoff (also caps `Retry-After`).
    pub backoff_max: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for headers or for the next body bytes.
    pub idle_timeout: Duration,
    /// Minimum average rate (bytes/s) over `min_rate_window`, against trickling (slowloris) servers.
    pub min_rate: u64,
    /// Window over which `min_rate` is measured.
    pub min_rate_window: Duration,
    /// An explicit proxy URL for every request (`http://…`, `https://…`).
    pub proxy: Option<String>,
    /// Honour `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` from the environment (when `proxy` is unset).
    pub env_proxy: bool,
    /// Where `.part` files live; default `<local store>/parts`, or a temp dir for S3 stores.
    pub part_dir: Option<PathBuf>,
    /// The `User-Agent` sent.
    pub user_agent: String,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            max_size: 8 << 30,
            per_host: 4,
            max_retries: 5,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            min_rate: 1024,
            min_rate_window: Duration::from_secs(60),
            proxy: None,
            env_proxy: true,
            part_dir: None,
            user_agent: concat!("metal-automata/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// What to fetch and what the catalog says it must be.
#[derive(Debug, Clone, Default)]
pub struct FetchRequest {
    /// The URL.
    pub url: String,
    /// The catalog's name, for provenance.
    pub catalog: Option<String>,
    /// The catalog entry id, for provenance.
    pub entry: Option<String>,
    /// Announced hashes and size.
    pub expected: Expected,
}

/// Downloads catalog entries into a [`FirmwareStore`].
#[derive(Debug)]
pub struct Downloader {
    store: FirmwareStore,
    client: reqwest::Client,
    cfg: DownloadConfig,
    part_dir: PathBuf,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// The `.part` being written: file, bytes held and the running hashes.
struct Part {
    path: PathBuf,
    file: BufWriter<tokio::fs::File>,
    len: u64,
    hasher: MultiHasher,
    fresh: MultiHasher,
    etag: Option<String>,
}

enum AttemptEnd {
    Complete,
    RestartClean,
}

impl Downloader {
    /// A downloader storing into `store`.
    pub fn new(store: FirmwareStore, cfg: DownloadConfig) -> Result<Self, StoreError> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.idle_timeout)
            .user_agent(cfg.user_agent.clone());
        if !cfg.env_proxy {
            b = b.no_proxy();
        }
        if let Some(p) = &cfg.proxy {
            let proxy = reqwest::Proxy::all(p)
                .map_err(|e| StoreError::Config(format!("proxy {p:?}: {e}")))?;
            b = b.proxy(proxy);
        }
        let client = b
            .build()
            .map_err(|e| StoreError::Config(format!("http client: {e}")))?;
        let part_dir = match (&cfg.part_dir, store.local_root()) {
            (Some(d), _) => d.clone(),
            (None, Some(root)) => root.join("parts"),
            (None, None) => std::env::temp_dir().join("metal-automata-fwparts"),
        };
        std::fs::create_dir_all(&part_dir).map_err(|e| StoreError::io(part_dir.display(), e))?;
        Ok(Downloader {
            store,
            client,
            cfg,
            part_dir,
            hosts: Mutex::new(HashMap::new()),
        })
    }

    /// The effective size cap for an entry: min(configured cap, announced size × 1.1).
    pub fn size_cap(&self, expected: &Expected) -> u64 {
        match expected.size {
            Some(s) => self.cfg.max_size.min(s.saturating_add(s / 10)),
            None => self.cfg.max_size,
        }
    }

    /// Where the `.part` of this request lives (stable across restarts, so downloads resume).
    pub fn part_path(&self, req: &FetchRequest) -> PathBuf {
        let mut h = Sha256::new();
        h.update(req.url.as_bytes());
        h.update(b"\0");
        h.update(req.expected.sha256.as_deref().unwrap_or("").as_bytes());
        self.part_dir
            .join(format!("{}.part", &hex::encode(h.finalize())[..32]))
    }

    /// Fetches, verifies and stores one entry; returns its manifest.
    ///
    /// A checksum mismatch is `StoreError::ChecksumMismatch` (FW-INT-001): the bytes are
    /// discarded and nothing is written under `blobs/`.
    pub async fn fetch(&self, req: &FetchRequest) -> Result<Manifest, StoreError> {
        let url = reqwest::Url::parse(&req.url)
            .map_err(|e| StoreError::Config(format!("url {:?}: {e}", req.url)))?;
        if let Some(m) = self.already_stored(req).await? {
            return Ok(m);
        }
        let cap = self.size_cap(&req.expected);
        let _permit = self
            .host_semaphore(&url)
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Internal(format!("host semaphore: {e}")))?;
        let path = self.part_path(req);
        let mut part = Part::open(&path, &req.expected).await?;
        let mut retries = 0u32;
        let mut restarts = 0u32;
        loop {
            let end = self.attempt(req, &url, &mut part, cap).await;
            let flushed = part.file.flush().await;
            match (end, flushed) {
                (_, Err(e)) => {
                    drop(part);
                    let _ = tokio::fs::remove_file(&path).await;
                    return Err(StoreError::io(path.display(), e));
                }
                (Ok(AttemptEnd::Complete), Ok(())) => break,
                (Ok(AttemptEnd::RestartClean), Ok(())) => {
                    restarts += 1;
                    if restarts > 2 {
                        drop(part);
                        let _ = tokio::fs::remove_file(&path).await;
                        return Err(StoreError::Http416 {
                            url: req.url.clone(),
                        });
                    }
                    part.reset().await?;
                }
                (Err(e), Ok(())) if e.is_retryable() && retries < self.cfg.max_retries => {
                    let wait = self.backoff(retries, &e);
                    tracing::info!(url = %req.url, error = %e, held = part.len, ?wait, "download retry");
                    retries += 1;
                    tokio::time::sleep(wait).await;
                }
                (Err(e), Ok(())) => {
                    if !e.is_retryable() {
                        drop(part);
                        let _ = tokio::fs::remove_file(&path).await;
                    }
                    return Err(e);
                }
            }
        }
        part.file
            .get_mut()
            .sync_all()
            .await
            .map_err(|e| StoreError::io(path.display(), e))?;
        let Part {
            len, hasher, etag, ..
        } = part;
        let hashes = hasher.finish();
        if let Err(e) = req.expected.check(len, &hashes) {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        let staged = match self
            .store
            .stage_local_file(&path, len, &hashes, &req.expected)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e);
            }
        };
        let _ = tokio::fs::remove_file(&path).await;
        let source = Source {
            kind: SourceKind::Download,
            catalog: req.catalog.clone(),
            entry: req.entry.clone(),
            url: Some(req.url.clone()),
            fetched_at: Utc::now(),
            expected: req.expected.clone(),
            hashes,
            size: len,
            etag,
        };
        self.store.commit(staged, source).await
    }

    /// When the catalog names a SHA-256 that is already stored (and nothing weaker to check), only records the source.
    async fn already_stored(&self, req: &FetchRequest) -> Result<Option<Manifest>, StoreError> {
        let e = &req.expected;
        let Some(sha) = e.sha256.as_deref().map(str::to_ascii_lowercase) else {
            return Ok(None);
        };
        if e.sha1.is_some() || e.md5.is_some() || crate::hash::validate_sha256(&sha).is_err() {
            return Ok(None);
        }
        let Some(m) = self.store.manifest(&sha).await? else {
            return Ok(None);
        };
        if !self.store.has_blob(&sha).await? || e.size.is_some_and(|s| s != m.size) {
            return Ok(None);
        }
        let source = Source {
            kind: SourceKind::Download,
            catalog: req.catalog.clone(),
            entry: req.entry.clone(),
            url: Some(req.url.clone()),
            fetched_at: Utc::now(),
            expected: e.clone(),
            hashes: crate::hash::Hashes {
                sha256: sha.clone(),
                sha1: None,
                md5: None,
            },
            size: m.size,
            etag: None,
        };
        self.store.add_source(&sha, source).await.map(Some)
    }

    fn host_semaphore(&self, url: &reqwest::Url) -> Arc<Semaphore> {
        let key = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        );
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.cfg.per_host.max(1))))
            .clone()
    }

    /// Jittered exponential backoff (half fixed, half random), or the server's `Retry-After`.
    fn backoff(&self, retry: u32, err: &StoreError) -> Duration {
        if let StoreError::HttpStatus {
            retry_after: Some(ra),
            ..
        } = err
        {
            return (*ra).min(self.cfg.backoff_max);
        }
        let exp = self
            .cfg
            .backoff_base
            .saturating_mul(1u32 << retry.min(16))
            .min(self.cfg.backoff_max);
        let half = exp.as_millis() as u64 / 2;
        let jitter = rand::rng().random_range(0..=half);
        Duration::from_millis(half + jitter)
    }

    /// One request: resume from `part.len` if it holds bytes, stream the body into it.
    async fn attempt(
        &self,
        req: &FetchRequest,
        url: &reqwest::Url,
        part: &mut Part,
        cap: u64,
    ) -> Result<AttemptEnd, StoreError> {
        let u = || req.url.clone();
        let mut rb = self.client.get(url.clone());
        let resuming = part.len > 0;
        if resuming {
            rb = rb.header(RANGE, format!("bytes={}-", part.len));
            if let Some(etag) = &part.etag {
                rb = rb.header(IF_RANGE, etag.clone());
            }
        }
        let idle = self.cfg.idle_timeout;
        let mut resp = match tokio::time::timeout(idle, rb.send()).await {
            Err(_) => return Err(StoreError::IdleTimeout { url: u(), idle }),
            Ok(Err(e)) => return Err(map_reqwest(&req.url, e)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        let announced_total = match status {
            StatusCode::PARTIAL_CONTENT if resuming => {
                match parse_content_range(resp.headers().get(CONTENT_RANGE)) {
                    Some((start, total)) if start == part.len => total,
                    _ => return Ok(AttemptEnd::RestartClean),
                }
            }
            StatusCode::OK => {
                if resuming {
                    tracing::info!(url = %req.url, "server ignored Range: restarting");
                    part.reset().await?;
                }
                resp.content_length()
            }
            StatusCode::RANGE_NOT_SATISFIABLE if resuming => return Ok(AttemptEnd::RestartClean),
            StatusCode::RANGE_NOT_SATISFIABLE => return Err(StoreError::Http416 { url: u() }),
            StatusCode::NOT_FOUND | StatusCode::GONE => {
                return Err(StoreError::HttpNotFound {
                    url: u(),
                    status: status.as_u16(),
                });
            }
            s => {
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                return Err(StoreError::HttpStatus {
                    url: u(),
                    status: s.as_u16(),
                    retry_after,
                });
            }
        };
        if let Some(total) = announced_total
            && total > cap
        {
            return Err(StoreError::TooLarge { cap });
        }
        part.etag = resp
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.starts_with("W/"))
            .map(str::to_string);
        let min_rate = self.cfg.min_rate;
        let window = self.cfg.min_rate_window;
        let mut window_start = Instant::now();
        let mut window_bytes = 0u64;
        loop {
            let chunk = match tokio::time::timeout(idle, resp.chunk()).await {
                Err(_) => return Err(StoreError::IdleTimeout { url: u(), idle }),
                Ok(Err(e)) => return Err(map_reqwest(&req.url, e)),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            if part.len + chunk.len() as u64 > cap {
                return Err(StoreError::TooLarge { cap });
            }
            part.file
                .write_all(&chunk)
                .await
                .map_err(|e| StoreError::io(part.path.display(), e))?;
            part.hasher.update(&chunk);
            part.len += chunk.len() as u64;
            window_bytes += chunk.len() as u64;
            let elapsed = window_start.elapsed();
            if min_rate > 0 && elapsed >= window {
                let rate = (window_bytes as f64 / elapsed.as_secs_f64()) as u64;
                if rate < min_rate {
                    return Err(StoreError::TooSlow {
                        url: u(),
                        rate,
                        min: min_rate,
                    });
                }
                window_start = Instant::now();
                window_bytes = 0;
            }
        }
        if let Some(total) = announced_total
            && part.len < total
        {
            return Err(StoreError::Truncated {
                url: u(),
                got: part.len,
                announced: total,
            });
        }
        Ok(AttemptEnd::Complete)
    }
}

impl Part {
    /// Opens (or creates) a `.part`, re-hashing what an earlier run left so it can resume.
    async fn open(path: &FsPath, expected: &Expected) -> Result<Part, StoreError> {
        let fresh = MultiHasher::for_expected(expected);
        let p = path.to_path_buf();
        let h0 = fresh.clone();
        let (hasher, len) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            use std::io::Read;
            let mut h = h0;
            let mut len = 0u64;
            match std::fs::File::open(&p) {
                Ok(mut f) => {
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let n = f.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                        len += n as u64;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            Ok((h, len))
        })
        .await
        .map_err(|e| StoreError::Internal(format!("rehash task: {e}")))?
        .map_err(|e| StoreError::io(path.display(), e))?;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .await
            .map_err(|e| StoreError::io(path.display(), e))?;
        file.set_len(len)
            .await
            .map_err(|e| StoreError::io(path.display(), e))?;
        file.seek(std::io::SeekFrom::Start(len))
            .await
            .map_err(|e| StoreError::io(path.display(), e))?;
        if len > 0 {
            tracing::info!(part = %path.display(), len, "resuming download");
        }
        Ok(Part {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(1 << 20, file),
            len,
            hasher,
            fresh,
            etag: None,
        })
    }

    /// Drops everything held: the next request starts from byte 0.
    async fn reset(&mut self) -> Result<(), StoreError> {
        let io = |e| StoreError::io(self.path.display(), e);
        self.file.flush().await.map_err(io)?;
        let f = self.file.get_mut();
        f.set_len(0).await.map_err(io)?;
        f.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
        self.len = 0;
        self.hasher = self.fresh.clone();
        self.etag = None;
        Ok(())
    }
}

/// `bytes start-end/total` → (start, Some(total)); `*` total → None.
fn parse_content_range(v: Option<&reqwest::header::HeaderValue>) -> Option<(u64, Option<u64>)> {
    let s = v?.to_str().ok()?.trim().strip_prefix("bytes ")?;
    let (range, total) = s.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

fn map_reqwest(url: &str, e: reqwest::Error) -> StoreError {
    if e.is_redirect() {
        return StoreError::TooManyRedirects {
            url: url.to_string(),
        };
    }
    let mut message = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    StoreError::Transport {
        url: url.to_string(),
        message,
        connect: e.is_connect(),
    }
}
