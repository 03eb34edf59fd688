//! Downloads against a local HTTP peer with faults: resume, restarts, redirects, caps, stalls, retries.
#![allow(missing_docs)]

mod common;

use std::time::{Duration, Instant};

use automata_fwstore::{
    DownloadConfig, Downloader, Expected, FetchRequest, FirmwareStore, IntegrityState, StoreError,
    is_installable,
};
use common::{files_under, http_peer, sha256_hex};

fn cfg() -> DownloadConfig {
    DownloadConfig {
        max_retries: 2,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        min_rate: 2000,
        min_rate_window: Duration::from_millis(700),
        env_proxy: false,
        ..DownloadConfig::default()
    }
}

fn setup(cfg: DownloadConfig) -> (tempfile::TempDir, FirmwareStore, Downloader) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FirmwareStore::local(dir.path()).expect("store");
    let dl = Downloader::new(store.clone(), cfg).expect("downloader");
    (dir, store, dl)
}

fn req(base: &str, path: &str, blob: &[u8]) -> FetchRequest {
    FetchRequest {
        url: format!("{base}{path}"),
        catalog: Some("generic-test".into()),
        entry: Some(path.into()),
        expected: Expected {
            sha256: Some(sha256_hex(blob)),
            size: Some(blob.len() as u64),
            ..Expected::default()
        },
    }
}

/// Blob bytes in the store equal `want`; staging and parts are empty.
fn assert_stored(root: &std::path::Path, want: &[u8]) {
    let sha = sha256_hex(want);
    let path = root.join(automata_fwstore::blob_path(&sha).as_ref());
    assert_eq!(std::fs::read(&path).expect("blob"), want);
    assert!(
        files_under(&root.join("staging")).is_empty(),
        "staging left"
    );
    assert!(files_under(&root.join("parts")).is_empty(), "parts left");
}

#[tokio::test]
async fn verified_download_lands_once_and_dedups() {
    let (base, peer) = http_peer().await;
    let (dir, store, dl) = setup(cfg());
    let r = req(&base, "/f/blob", &peer.blob);
    let m = dl.fetch(&r).await.expect("fetch");
    assert_eq!(m.integrity, IntegrityState::VerifiedSha256);
    assert!(is_installable(&m, false));
    assert_eq!(m.size, peer.blob.len() as u64);
    assert_eq!(m.sources[0].etag.as_deref().map(|e| e.len()), Some(18));
    assert_stored(dir.path(), &peer.blob);
    // Same digest from another catalog entry: recorded, not downloaded again.
    let mut r2 = r.clone();
    r2.entry = Some("other".into());
    let m2 = dl.fetch(&r2).await.expect("fetch again");
    assert_eq!(peer.hits("blob"), 1);
    assert_eq!(m2.sources.len(), 2);
    let again = store
        .manifest(&m.sha256)
        .await
        .expect("read")
        .expect("manifest");
    assert_eq!(again, m2);
}

#[tokio::test]
async fn md5_only_is_weak_and_not_installable_without_override() {
    let (base, peer) = http_peer().await;
    let (_dir, _store, dl) = setup(cfg());
    let md5 = {
        use md5::Digest;
        hex::encode(md5::Md5::digest(&peer.blob))
    };
    let r = FetchRequest {
        url: format!("{base}/f/blob"),
        expected: Expected {
            md5: Some(md5.to_uppercase()),
            ..Expected::default()
        },
        ..FetchRequest::default()
    };
    let m = dl.fetch(&r).await.expect("fetch");
    assert_eq!(m.integrity, IntegrityState::WeakMd5Sha1);
    assert_eq!(m.sources[0].hashes.md5.as_deref(), Some(md5.as_str()));
    assert!(!is_installable(&m, false));
    assert!(is_installable(&m, true));
    let json = serde_json::to_value(&m).expect("json");
    assert_eq!(json["integrity"], "weak-md5-sha1");
}

#[tokio::test]
async fn checksum_mismatch_is_fw_int_001_and_leaves_nothing_under_blobs() {
    let (base, peer) = http_peer().await;
    let (dir, store, dl) = setup(cfg());
    let mut r = req(&base, "/f/blob", &peer.blob);
    let wrong = sha256_hex(b"something else");
    r.expected.sha256 = Some(wrong.clone());
    let err = dl.fetch(&r).await.expect_err("must be rejected");
    assert_eq!(err.rule_id(), Some("FW-INT-001"));
    match err {
        StoreError::ChecksumMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, sha256_hex(&peer.blob));
        }
        e => panic!("unexpected {e}"),
    }
    assert!(files_under(&dir.path().join("blobs")).is_empty());
    assert!(files_under(&dir.path().join("staging")).is_empty());
    assert!(files_under(&dir.path().join("parts")).is_empty());
    assert!(store.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn cut_connection_resumes_with_range_to_the_same_blob() {
    let (base, peer) = http_peer().await;
    let (dir, _store, dl) = setup(cfg());
    let m = dl
        .fetch(&req(&base, "/f/cut", &peer.blob))
        .await
        .expect("fetch");
    assert_eq!(m.sha256, sha256_hex(&peer.blob));
    assert_eq!(peer.hits("cut"), 2);
    let ranges = peer.ranges("cut");
    assert_eq!(ranges.len(), 1);
    let offset: u64 = ranges[0]
        .strip_prefix("bytes=")
        .and_then(|s| s.strip_suffix('-'))
        .and_then(|s| s.parse().ok())
        .expect("bytes=N-");
    assert!(offset > 0 && offset <= peer.blob.len() as u64 / 2);
    assert_stored(dir.path(), &peer.blob);
}

#[tokio::test]
async fn part_left_by_an_earlier_run_is_resumed() {
    let (base, peer) = http_peer().await;
    let (dir, _store, dl) = setup(cfg());
    let r = req(&base, "/f/blob", &peer.blob);
    std::fs::write(dl.part_path(&r), &peer.blob[..1000]).expect("seed part");
    dl.fetch(&r).await.expect("fetch");
    assert_eq!(peer.ranges("blob"), vec!["bytes=1000-".to_string()]);
    assert_stored(dir.path(), &peer.blob);
}

#[tokio::test]
async fn server_ignoring_range_restarts_clean() {
    let (base, peer) = http_peer().await;
    let (dir, _store, dl) = setup(cfg());
    dl.fetch(&req(&base, "/f/norange", &peer.blob))
        .await
        .expect("fetch");
    assert_eq!(peer.hits("norange"), 2);
    assert_eq!(peer.ranges("norange").len(), 1);
    assert_stored(dir.path(), &peer.blob);
}

#[tokio::test]
async fn range_not_satisfiable_on_resume_restarts_clean() {
    let (base, peer) = http_peer().await;
    let (dir, _store, dl) = setup(cfg());
    dl.fetch(&req(&base, "/f/resume416", &peer.blob))
        .await
        .expect("fetch");
    assert_eq!(peer.hits("resume416"), 3);
    assert_stored(dir.path(), &peer.blob);
    // A part longer than the blob (a stale one) also ends in a clean restart.
    let r = req(&base, "/f/blob", &peer.blob);
    let mut stale = peer.blob.to_vec();
    stale.extend_from_slice(b"trailing");
    std::fs::write(dl.part_path(&r), &stale).expect("stale part");
    let dir2 = tempfile::tempdir().expect("tempdir");
    let store2 = FirmwareStore::local(dir2.path()).expect("store");
    let dl2 = Downloader::new(
        store2,
        DownloadConfig {
            part_dir: Some(dir.path().join("parts")),
            ..cfg()
        },
    )
    .expect("downloader");
    dl2.fetch(&r).await.expect("fetch after 416");
}

#[tokio::test]
async fn redirects_are_followed_up_to_five() {
    let (base, peer) = http_peer().await;
    let (_dir, _store, dl) = setup(cfg());
    dl.fetch(&req(&base, "/r/4", &peer.blob))
        .await
        .expect("5 redirects are fine");
    // A fresh store, so the first fetch's blob does not short-circuit the second.
    let (_dir2, _store2, dl) = setup(cfg());
    let err = dl
        .fetch(&req(&base, "/r/5", &peer.blob))
        .await
        .expect_err("6 redirects");
    assert!(matches!(err, StoreError::TooManyRedirects { .. }), "{err}");
    let err = dl
        .fetch(&req(&base, "/f/loop", &peer.blob))
        .await
        .expect_err("loop");
    assert!(matches!(err, StoreError::TooManyRedirects { .. }), "{err}");
    assert_eq!(peer.hits("loop"), 6);
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let (base, peer) = http_peer().await;
    let (dir, _store, dl) = setup(cfg());
    let err = dl
        .fetch(&req(&base, "/f/missing", &peer.blob))
        .await
        .expect_err("404");
    assert!(
        matches!(err, StoreError::HttpNotFound { status: 404, .. }),
        "{err}"
    );
    assert_eq!(peer.hits("missing"), 1);
    assert!(files_under(&dir.path().join("parts")).is_empty());
}

#[tokio::test]
async fn server_errors_and_429_are_retried_with_backoff() {
    let (base, peer) = http_peer().await;
    let (dir, _store, dl) = setup(cfg());
    dl.fetch(&req(&base, "/f/flaky", &peer.blob))
        .await
        .expect("after two 503s");
    assert_eq!(peer.hits("flaky"), 3);
    let t = Instant::now();
    let (dir2, _s2, dl2) = setup(cfg());
    dl2.fetch(&req(&base, "/f/busy", &peer.blob))
        .await
        .expect("after a 429");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
    assert_stored(dir.path(), &peer.blob);
    assert_stored(dir2.path(), &peer.blob);
    // Out of retries: the last 503 is returned.
    let (_d3, _s3, dl3) = setup(DownloadConfig {
        max_retries: 0,
        ..cfg()
    });
    let (base2, _peer2) = http_peer().await;
    let err = dl3
        .fetch(&req(&base2, "/f/flaky", &peer.blob))
        .await
        .expect_err("no retries");
    assert!(
        matches!(err, StoreError::HttpStatus { status: 503, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn slowloris_and_stalls_are_cut() {
    let (base, peer) = http_peer().await;
    let (dir, _store, dl) = setup(DownloadConfig {
        max_retries: 0,
        ..cfg()
    });
    let t = Instant::now();
    let err = dl
        .fetch(&req(&base, "/f/slow", &peer.blob))
        .await
        .expect_err("too slow");
    assert!(matches!(err, StoreError::TooSlow { .. }), "{err}");
    let err = dl
        .fetch(&req(&base, "/f/stall", &peer.blob))
        .await
        .expect_err("stalled");
    assert!(
        matches!(
            err,
            StoreError::IdleTimeout { .. } | StoreError::Transport { .. }
        ),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(files_under(&dir.path().join("blobs")).is_empty());
}

#[tokio::test]
async fn body_larger_than_announced_is_cut_and_rejected() {
    let (base, peer) = http_peer().await;
    let (dir, _store, dl) = setup(cfg());
    let r = FetchRequest {
        url: format!("{base}/f/endless"),
        expected: Expected {
            size: Some(100_000),
            ..Expected::default()
        },
        ..FetchRequest::default()
    };
    assert_eq!(dl.size_cap(&r.expected), 110_000);
    let err = dl.fetch(&r).await.expect_err("too large");
    assert!(
        matches!(err, StoreError::TooLarge { cap: 110_000 }),
        "{err}"
    );
    assert!(files_under(&dir.path().join("blobs")).is_empty());
    assert!(files_under(&dir.path().join("parts")).is_empty());
    // The configured cap applies when the catalog has no size; Content-Length over it is refused up front.
    let (_d, _s, small) = setup(DownloadConfig {
        max_size: 1000,
        ..cfg()
    });
    let err = small
        .fetch(&FetchRequest {
            url: format!("{base}/f/blob"),
            ..FetchRequest::default()
        })
        .await
        .expect_err("cap");
    assert!(matches!(err, StoreError::TooLarge { cap: 1000 }), "{err}");
    let _ = peer;
}

#[tokio::test]
async fn explicit_proxy_is_used() {
    let (base, peer) = http_peer().await;
    let (dir, _store, dl) = setup(DownloadConfig {
        proxy: Some(base.clone()),
        ..cfg()
    });
    // The host does not resolve: only a proxy can answer.
    let r = req("http://firmware.invalid", "/f/blob", &peer.blob);
    dl.fetch(&r).await.expect("via proxy");
    assert!(
        peer.hosts
            .lock()
            .expect("lock")
            .iter()
            .any(|h| h == "firmware.invalid")
    );
    assert_stored(dir.path(), &peer.blob);
}

#[tokio::test]
async fn per_host_concurrency_is_capped() {
    let (base, peer) = http_peer().await;
    let (_dir, _store, dl) = setup(DownloadConfig {
        per_host: 2,
        ..cfg()
    });
    let dl = std::sync::Arc::new(dl);
    let mut tasks = Vec::new();
    for i in 0..5 {
        let dl = dl.clone();
        let mut r = req(&base, "/f/gate", &peer.blob);
        r.url = format!("{}?i={i}", r.url);
        tasks.push(tokio::spawn(async move { dl.fetch(&r).await }));
    }
    for t in tasks {
        t.await.expect("join").expect("fetch");
    }
    assert_eq!(peer.hits("gate"), 5);
    assert_eq!(
        peer.max_in_flight.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}
