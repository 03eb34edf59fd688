//! Local peers the tests start themselves: an HTTP firmware server with faults, moto's S3.
#![allow(dead_code, missing_docs)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// 300 KiB of deterministic pseudo-random bytes.
pub fn blob() -> Bytes {
    let mut state: u64 = 0x1234_5678_9abc_def1;
    let mut v = Vec::with_capacity(300 * 1024);
    while v.len() < 300 * 1024 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        v.extend_from_slice(&state.to_le_bytes());
    }
    Bytes::from(v)
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[derive(Clone, Default)]
pub struct Peer {
    pub blob: Bytes,
    /// Requests per route key.
    pub hits: Arc<Mutex<HashMap<String, usize>>>,
    /// Range headers seen per route key.
    pub ranges: Arc<Mutex<HashMap<String, Vec<String>>>>,
    /// Host headers seen.
    pub hosts: Arc<Mutex<Vec<String>>>,
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
}

impl Peer {
    fn hit(&self, key: &str, headers: &HeaderMap) -> usize {
        if let Some(r) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
            self.ranges
                .lock()
                .expect("lock")
                .entry(key.to_string())
                .or_default()
                .push(r.to_string());
        }
        if let Some(h) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
            self.hosts.lock().expect("lock").push(h.to_string());
        }
        let mut hits = self.hits.lock().expect("lock");
        let n = hits.entry(key.to_string()).or_default();
        *n += 1;
        *n
    }

    pub fn hits(&self, key: &str) -> usize {
        self.hits
            .lock()
            .expect("lock")
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    pub fn ranges(&self, key: &str) -> Vec<String> {
        self.ranges
            .lock()
            .expect("lock")
            .get(key)
            .cloned()
            .unwrap_or_default()
    }
}

fn etag(b: &[u8]) -> String {
    format!("\"{}\"", &sha256_hex(b)[..16])
}

/// Serves `blob` honouring a `bytes=N-` Range (ETag included).
fn ranged(blob: &Bytes, headers: &HeaderMap) -> Response {
    let start = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<usize>().ok());
    match start {
        Some(s) if s >= blob.len() => Response::builder()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{}", blob.len()))
            .body(Body::empty())
            .expect("response"),
        Some(s) => Response::builder()
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::ETAG, etag(blob))
            .header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", s, blob.len() - 1, blob.len()),
            )
            .body(Body::from(blob.slice(s..)))
            .expect("response"),
        None => Response::builder()
            .status(StatusCode::OK)
            .header(header::ETAG, etag(blob))
            .header(header::ACCEPT_RANGES, "bytes")
            .body(Body::from(blob.clone()))
            .expect("response"),
    }
}

/// A response announcing the whole blob but cutting the connection after `upto` bytes.
fn cut(blob: &Bytes, upto: usize) -> Response {
    let first = blob.slice(..upto);
    // The pause lets hyper flush the first half before the error drops the connection.
    let stream = futures::stream::unfold(Some(first), |state| async move {
        match state {
            Some(first) => Some((Ok::<Bytes, std::io::Error>(first), None)),
            None => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Some((Err(std::io::Error::other("connection cut")), None))
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::ETAG, etag(blob))
        .header(header::CONTENT_LENGTH, blob.len())
        .body(Body::from_stream(stream))
        .expect("response")
}

async fn route(
    State(peer): State<Peer>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let n = peer.hit(&name, &headers);
    let blob = &peer.blob;
    let half = blob.len() / 2;
    match name.as_str() {
        "blob" => ranged(blob, &headers),
        "missing" => StatusCode::NOT_FOUND.into_response(),
        "loop" => redirect("/f/loop"),
        // Cut at half, then serve Range properly.
        "cut" if n == 1 => cut(blob, half),
        "cut" => ranged(blob, &headers),
        // Cut at half, then ignore Range (200 with the whole body).
        "norange" if n == 1 => cut(blob, half),
        "norange" => Response::builder()
            .status(StatusCode::OK)
            .body(Body::from(blob.clone()))
            .expect("response"),
        // Cut at half, then 416 to any Range; whole body without one.
        "resume416" if n == 1 => cut(blob, half),
        "resume416" if headers.contains_key(header::RANGE) => {
            StatusCode::RANGE_NOT_SATISFIABLE.into_response()
        }
        "resume416" => ranged(blob, &HeaderMap::new()),
        // Two 503s, then the blob.
        "flaky" if n <= 2 => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        "flaky" => ranged(blob, &headers),
        // One 429 with Retry-After, then the blob.
        "busy" if n == 1 => Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .header(header::RETRY_AFTER, "1")
            .body(Body::empty())
            .expect("response"),
        "busy" => ranged(blob, &headers),
        // 1 byte every 100 ms, announcing the whole blob.
        "slow" => {
            let b = blob.clone();
            let stream = futures::stream::unfold(0usize, move |i| {
                let b = b.clone();
                async move {
                    if i >= b.len() {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((Ok::<Bytes, Infallible>(b.slice(i..i + 1)), i + 1))
                }
            });
            Response::builder()
                .header(header::CONTENT_LENGTH, blob.len())
                .body(Body::from_stream(stream))
                .expect("response")
        }
        // Headers, then silence.
        "stall" => {
            let stream = futures::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Some((Ok::<Bytes, Infallible>(Bytes::from_static(b"x")), ()))
            });
            Response::builder()
                .body(Body::from_stream(stream))
                .expect("response")
        }
        // Chunked, endless-ish: far more than any catalog announces.
        "endless" => {
            let chunk = blob.slice(..64 * 1024);
            let stream = futures::stream::repeat(Ok::<Bytes, Infallible>(chunk)).take(1000);
            Response::builder()
                .body(Body::from_stream(stream))
                .expect("response")
        }
        // Holds each request 300 ms, tracking concurrency.
        "gate" => {
            let now = peer.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peer.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            peer.in_flight.fetch_sub(1, Ordering::SeqCst);
            ranged(blob, &headers)
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn redirect(to: &str) -> Response {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, to)
        .body(Body::empty())
        .expect("response")
}

async fn hop(UrlPath(n): UrlPath<u32>) -> Response {
    if n == 0 {
        redirect("/f/blob")
    } else {
        redirect(&format!("/r/{}", n - 1))
    }
}

use futures::StreamExt;

/// Starts the firmware server on loopback; returns its base URL and state.
pub async fn http_peer() -> (String, Peer) {
    let peer = Peer {
        blob: blob(),
        ..Peer::default()
    };
    let app = Router::new()
        .route("/f/{name}", get(route))
        .route("/r/{n}", get(hop))
        .with_state(peer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), peer)
}

/// Every file under `dir` (relative paths), for "nothing under blobs/" checks.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap_or(&p).to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The test venv (`MA_TEST_VENV` or `~/.cache/metal-automata/venv`).
pub fn venv() -> PathBuf {
    std::env::var_os("MA_TEST_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/metal-automata/venv"))
        })
        .expect("a venv")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// moto's standalone S3 server on loopback; killed on drop.
pub struct Moto {
    child: std::process::Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = venv().join("bin/moto_server");
        let port = free_port();
        let child = std::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); pip install -r tests/python/requirements.txt",
                    bin.display()
                )
            });
        let mut moto = Moto { child, port };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto.port = port;
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
