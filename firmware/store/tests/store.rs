//! The local store: imports, racing writers, ranges, manifests, a full disk, the ingest figure.
#![allow(missing_docs)]

mod common;

use automata_fwstore::{
    BlobRange, Expected, FirmwareStore, IntegrityState, SignatureState, SignatureStatus,
    SourceKind, StoreError, bench_ingest_figure, blob_path, is_installable,
};
use common::{blob, files_under, sha256_hex};
use futures::StreamExt;

async fn collect(body: automata_fwstore::BlobBody) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = body.stream;
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b.expect("chunk"));
    }
    out
}

#[tokio::test]
async fn import_file_and_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(src.path().join("sub")).expect("mkdir");
    std::fs::write(src.path().join("a.bin"), b"alpha").expect("write");
    std::fs::write(src.path().join("sub/b.bin"), b"beta").expect("write");
    let store = FirmwareStore::local(dir.path().join("store")).expect("store");
    let results = store.import(src.path()).await.expect("import");
    assert_eq!(results.len(), 2);
    for (path, r) in &results {
        let m = r.as_ref().expect("imported");
        assert_eq!(m.integrity, IntegrityState::Unverified);
        assert!(!is_installable(m, false));
        assert_eq!(m.sources[0].kind, SourceKind::Import);
        assert_eq!(
            m.sources[0].url.as_deref(),
            Some(path.to_string_lossy().as_ref())
        );
    }
    let mut listed = store.list().await.expect("list");
    listed.sort();
    let mut want = vec![sha256_hex(b"alpha"), sha256_hex(b"beta")];
    want.sort();
    assert_eq!(listed, want);
    // A sidecar checksum verifies an import.
    let m = store
        .import_file(
            src.path().join("a.bin"),
            &Expected {
                sha256: Some(sha256_hex(b"alpha")),
                ..Expected::default()
            },
        )
        .await
        .expect("verified import");
    assert_eq!(m.integrity, IntegrityState::VerifiedSha256);
    assert!(files_under(&dir.path().join("store/staging")).is_empty());
    // An empty file is a blob too.
    std::fs::write(src.path().join("empty"), b"").expect("write");
    let m = store
        .import_file(src.path().join("empty"), &Expected::default())
        .await
        .expect("empty");
    assert_eq!(m.size, 0);
}

#[tokio::test]
async fn racing_imports_of_the_same_blob_make_one_blob_and_both_succeed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = tempfile::tempdir().expect("tempdir");
    let data = blob();
    let (a, b) = (src.path().join("a"), src.path().join("b"));
    std::fs::write(&a, &data).expect("write");
    std::fs::write(&b, &data).expect("write");
    let store = FirmwareStore::local(dir.path()).expect("store");
    for _ in 0..5 {
        let (s1, s2) = (store.clone(), store.clone());
        let (a, b) = (a.clone(), b.clone());
        let t1 = tokio::spawn(async move { s1.import_file(&a, &Expected::default()).await });
        let t2 = tokio::spawn(async move { s2.import_file(&b, &Expected::default()).await });
        let m1 = t1.await.expect("join").expect("first");
        let m2 = t2.await.expect("join").expect("second");
        assert_eq!(m1.sha256, m2.sha256);
    }
    let blobs = files_under(&dir.path().join("blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    assert!(files_under(&dir.path().join("staging")).is_empty());
    let m = store
        .manifest(&sha256_hex(&data))
        .await
        .expect("read")
        .expect("manifest");
    assert_eq!(m.sources.len(), 2, "both import sources recorded");
}

#[tokio::test]
async fn mismatching_import_is_rejected_before_blobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(src.path(), b"payload").expect("write");
    let store = FirmwareStore::local(dir.path()).expect("store");
    let err = store
        .import_file(
            src.path(),
            &Expected {
                sha256: Some("00".repeat(32)),
                ..Expected::default()
            },
        )
        .await
        .expect_err("mismatch");
    assert_eq!(err.rule_id(), Some("FW-INT-001"));
    let err = store
        .import_file(
            src.path(),
            &Expected {
                size: Some(8),
                ..Expected::default()
            },
        )
        .await
        .expect_err("size");
    assert!(matches!(
        err,
        StoreError::SizeMismatch {
            expected: 8,
            actual: 7
        }
    ));
    assert!(files_under(&dir.path().join("blobs")).is_empty());
    assert!(files_under(&dir.path().join("staging")).is_empty());
}

#[tokio::test]
async fn blob_ranges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = tempfile::NamedTempFile::new().expect("tmp");
    let data = blob();
    std::fs::write(src.path(), &data).expect("write");
    let store = FirmwareStore::local(dir.path()).expect("store");
    let sha = store
        .import_file(src.path(), &Expected::default())
        .await
        .expect("import")
        .sha256;
    let n = data.len() as u64;
    let full = store.blob_range(&sha, BlobRange::Full).await.expect("full");
    assert_eq!((full.total_size, full.range.clone()), (n, 0..n));
    assert_eq!(collect(full).await, data.to_vec());
    let r = BlobRange::parse("bytes=10-19").expect("parse");
    assert_eq!(
        collect(store.blob_range(&sha, r).await.expect("r")).await,
        data[10..20].to_vec()
    );
    let r = BlobRange::parse("bytes=-5").expect("parse");
    assert_eq!(
        collect(store.blob_range(&sha, r).await.expect("r")).await,
        data[data.len() - 5..].to_vec()
    );
    let r = BlobRange::parse("bytes=100-").expect("parse");
    let body = store.blob_range(&sha, r).await.expect("r");
    assert_eq!(body.range, 100..n);
    let r = BlobRange::parse(&format!("bytes={n}-")).expect("parse");
    assert!(matches!(
        store.blob_range(&sha, r).await,
        Err(StoreError::RangeNotSatisfiable { size }) if size == n
    ));
    assert!(BlobRange::parse("bytes=1-2,5-6").is_err());
    assert!(BlobRange::parse("items=1-2").is_err());
    assert!(matches!(
        store.blob_range(&"ab".repeat(32), BlobRange::Full).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.blob_range("../../etc/passwd", BlobRange::Full).await,
        Err(StoreError::InvalidDigest(_))
    ));
}

#[tokio::test]
async fn manifest_signature_scan_and_quarantine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(src.path(), b"capsule").expect("write");
    let store = FirmwareStore::local(dir.path()).expect("store");
    let sha = store
        .import_file(src.path(), &Expected::default())
        .await
        .expect("import")
        .sha256;
    let m = store
        .set_signature(
            &sha,
            SignatureStatus {
                state: SignatureState::Valid,
                detail: Some("CN=LVFS CA".into()),
                checked_at: None,
            },
        )
        .await
        .expect("signature");
    assert_eq!(m.integrity, IntegrityState::VerifiedSignature);
    assert!(is_installable(&m, false));
    let m = store
        .record_scan(
            &sha,
            serde_json::json!({"version": "2026.11.1"}),
            serde_json::json!({"critical": 1}),
        )
        .await
        .expect("scan");
    assert_eq!(
        m.last_scan.as_ref().map(|s| s.rule_pack["version"].clone()),
        Some("2026.11.1".into())
    );
    let m = store
        .quarantine(&sha, "SB-PK-001", "scanner")
        .await
        .expect("q");
    assert!(!is_installable(&m, true), "quarantine beats the override");
    let m = store
        .release(&sha, "vendor confirmed test build replaced", "alice")
        .await
        .expect("r");
    assert!(m.quarantine.is_none());
    assert_eq!(m.quarantine_log.len(), 2);
    let on_disk: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(format!("manifests/{sha}.json"))).expect("file"),
    )
    .expect("json");
    assert_eq!(on_disk["integrity"], "verified-signature");
    assert_eq!(on_disk["signature"]["state"], "valid");
    assert!(matches!(
        store.quarantine(&"cd".repeat(32), "x", "y").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        blob_path(&sha).as_ref(),
        format!("blobs/sha256/{}/{}/{sha}", &sha[..2], &sha[2..4])
    );
}

/// A full disk: a 1 MiB tmpfs (needs root and mount rights; skipped otherwise).
#[tokio::test]
async fn full_disk_leaves_nothing_half_written() {
    let mnt = tempfile::tempdir().expect("tempdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(mnt.path())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs (not root?)");
        return;
    }
    let src = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(src.path(), vec![7u8; 3 << 20]).expect("write");
    let result = async {
        let store = FirmwareStore::local(mnt.path()).expect("store");
        let err = store
            .import_file(src.path(), &Expected::default())
            .await
            .expect_err("disk full");
        let blobs = files_under(&mnt.path().join("blobs"));
        let staging = files_under(&mnt.path().join("staging"));
        // Small blobs still fit afterwards: the space was given back.
        std::fs::write(src.path(), b"small").expect("write");
        let small = store.import_file(src.path(), &Expected::default()).await;
        (err, blobs, staging, small.is_ok())
    }
    .await;
    let _ = std::process::Command::new("umount")
        .arg(mnt.path())
        .status();
    let (err, blobs, staging, small_ok) = result;
    eprintln!("full disk error: {err}");
    assert!(blobs.is_empty(), "{blobs:?}");
    assert!(staging.is_empty(), "{staging:?}");
    assert!(small_ok);
}

#[tokio::test]
async fn ingest_figure_matches_the_hash() {
    let fig = bench_ingest_figure(16 << 20).await.expect("bench");
    assert_eq!(fig.bytes, 16 << 20);
    assert!(fig.bytes_per_sec > 0.0);
    assert_eq!(fig.sha256.len(), 64);
    eprintln!("ingest (debug build): {:.0} MB/s", fig.bytes_per_sec / 1e6);
}

#[tokio::test]
async fn gc_removes_only_old_blobs_without_a_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("store");
    let store = FirmwareStore::local(&root).expect("store");
    let src = dir.path().join("a.bin");
    std::fs::write(&src, b"kept").expect("write");
    let kept = store
        .import_file(&src, &Expected::default())
        .await
        .expect("import");
    // A blob whose writer stopped before its manifest: bytes under blobs/, no manifest.
    let orphan = sha256_hex(b"orphan");
    let path = root.join(blob_path(&orphan).as_ref());
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, b"orphan").expect("write");

    // Too young to be an orphan: a writer may be about to write its manifest.
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    assert!(
        store
            .clean_orphans(an_hour_ago, false)
            .await
            .expect("gc")
            .is_empty()
    );
    let soon = chrono::Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(
        store.clean_orphans(soon, true).await.expect("dry run"),
        vec![orphan.clone()]
    );
    assert!(path.exists(), "a dry run deletes nothing");
    assert_eq!(
        store.clean_orphans(soon, false).await.expect("gc"),
        vec![orphan]
    );
    assert!(!path.exists());
    assert!(
        store.has_blob(&kept.sha256).await.expect("head"),
        "a blob with a manifest stays"
    );
}

/// Several writers of the same multi-chunk blob through the local staging path at once: one
/// blob under `blobs/` with the right bytes, every writer succeeds, no staging left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_of_a_large_blob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = tempfile::tempdir().expect("tempdir");
    // Several staging chunks and a ragged tail.
    let data: Vec<u8> = (0..(9 << 20) + 123).map(|i| (i % 253) as u8).collect();
    let path = src.path().join("big.bin");
    std::fs::write(&path, &data).expect("write");
    let store = FirmwareStore::local(dir.path()).expect("store");
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (s, p) = (store.clone(), path.clone());
            tokio::spawn(async move { s.import_file(&p, &Expected::default()).await })
        })
        .collect();
    let sha = sha256_hex(&data);
    for w in writers {
        let m = w.await.expect("join").expect("import");
        assert_eq!(m.sha256, sha);
        assert_eq!(m.size, data.len() as u64);
    }
    let blobs = files_under(&dir.path().join("blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let stored = std::fs::read(dir.path().join("blobs").join(&blobs[0])).expect("read");
    assert!(stored == data, "stored bytes differ");
    assert!(files_under(&dir.path().join("staging")).is_empty());
    let m = store.manifest(&sha).await.expect("read").expect("manifest");
    assert_eq!(m.sources.len(), 1, "one origin, recorded once");
}

/// A writer that died mid-ingest leaves bytes in `staging/` only: nothing under `blobs/`, no
/// manifest, and `clean_staging` removes them.
#[tokio::test]
async fn abandoned_staging_is_invisible_and_cleaned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FirmwareStore::local(dir.path()).expect("store");
    let data = blob();
    let half = &data[..data.len() / 2];
    std::fs::write(
        dir.path()
            .join("staging/0b7c4b8e-1f6a-4b8e-9f57-2d8c2f1f0e11"),
        half,
    )
    .expect("write");
    assert!(files_under(&dir.path().join("blobs")).is_empty());
    assert!(store.list().await.expect("list").is_empty());
    assert!(!store.has_blob(&sha256_hex(half)).await.expect("head"));
    assert!(!store.has_blob(&sha256_hex(&data)).await.expect("head"));
    // A later import of the whole file is unaffected, and leaves its own staging clean.
    let src = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(src.path(), &data).expect("write");
    let m = store
        .import_file(src.path(), &Expected::default())
        .await
        .expect("import");
    assert_eq!(m.sha256, sha256_hex(&data));
    assert_eq!(files_under(&dir.path().join("staging")).len(), 1);
    let soon = chrono::Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(store.clean_staging(soon).await.expect("clean"), 1);
    assert!(files_under(&dir.path().join("staging")).is_empty());
    assert_eq!(files_under(&dir.path().join("blobs")).len(), 1);
}

/// An import of a file that cannot be read fails without leaving anything behind.
#[tokio::test]
async fn unreadable_import_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FirmwareStore::local(dir.path()).expect("store");
    let err = store
        .import_file(dir.path().join("missing.bin"), &Expected::default())
        .await
        .expect_err("missing");
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    // A directory opens but does not read.
    let err = store
        .import_file(dir.path(), &Expected::default())
        .await
        .expect_err("a directory");
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(files_under(&dir.path().join("blobs")).is_empty());
    assert!(files_under(&dir.path().join("staging")).is_empty());
}
