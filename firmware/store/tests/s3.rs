//! The store on S3, against moto's standalone server (and a proxy injecting 503s).
#![allow(missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use automata_fwstore::{
    BlobRange, DownloadConfig, Downloader, Expected, FetchRequest, FirmwareStore, IntegrityState,
    S3Location,
};
use common::{Moto, http_peer, sha256_hex};
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn s3_store(endpoint: &str) -> FirmwareStore {
    FirmwareStore::s3_with(
        &S3Location {
            bucket: "firmware".into(),
            prefix: "lab/fw".into(),
            endpoint: Some(endpoint.to_string()),
            region: Some("us-east-1".into()),
            allow_http: true,
        },
        |b| {
            b.with_access_key_id("metal-test")
                .with_secret_access_key("metal-test-secret")
        },
    )
    .expect("s3 store")
}

async fn create_bucket(endpoint: &str) {
    let r = reqwest::Client::new()
        .put(format!("{endpoint}/firmware"))
        .send()
        .await
        .expect("create bucket");
    assert!(r.status().is_success(), "{}", r.status());
}

async fn keys(store: &FirmwareStore, prefix: &str) -> Vec<String> {
    let os: &Arc<dyn ObjectStore> = store.object_store();
    let p = Path::from(prefix);
    os.list(Some(&p))
        .map(|m| m.expect("list").location.to_string())
        .collect()
        .await
}

/// A TCP proxy in front of moto answering the first `fail` connections with 503; counts connections.
async fn faulty_proxy(upstream: u16, fail: usize) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let failed = Arc::new(AtomicUsize::new(0));
    let f = failed.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let f = f.clone();
            tokio::spawn(async move {
                if f.fetch_add(1, Ordering::SeqCst) < fail {
                    // Read the request head (and any body announced) before answering.
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 8192];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match client.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    let _ = client
                        .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    return;
                }
                if let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                }
            });
        }
    });
    (format!("http://{addr}"), failed)
}

#[tokio::test]
async fn s3_store_against_moto() {
    let moto = Moto::start();
    let endpoint = moto.endpoint();
    create_bucket(&endpoint).await;
    let store = s3_store(&endpoint);

    // A multi-part import (2 parts of 8 MiB + a tail) lands once, staging is cleaned.
    let src = tempfile::tempdir().expect("tmp");
    let big: Vec<u8> = (0..(17u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (a, b) = (src.path().join("a"), src.path().join("b"));
    std::fs::write(&a, &big).expect("write");
    std::fs::write(&b, &big).expect("write");
    let (s1, s2) = (store.clone(), store.clone());
    let (a2, b2) = (a.clone(), b.clone());
    let t1 = tokio::spawn(async move { s1.import_file(&a2, &Expected::default()).await });
    let t2 = tokio::spawn(async move { s2.import_file(&b2, &Expected::default()).await });
    let m1 = t1.await.expect("join").expect("first import");
    let m2 = t2.await.expect("join").expect("second import");
    assert_eq!(m1.sha256, sha256_hex(&big));
    assert_eq!(m1.sha256, m2.sha256);
    let blobs = keys(&store, "blobs").await;
    assert_eq!(
        blobs,
        vec![format!(
            "blobs/sha256/{}/{}/{}",
            &m1.sha256[..2],
            &m1.sha256[2..4],
            m1.sha256
        )]
    );
    assert!(keys(&store, "staging").await.is_empty());
    let m = store
        .manifest(&m1.sha256)
        .await
        .expect("read")
        .expect("manifest");
    assert_eq!(m.sources.len(), 2);
    // The prefix is honoured: raw keys live under lab/fw/.
    let body = store
        .blob_range(&m1.sha256, BlobRange::Inclusive(1000, 1999))
        .await
        .expect("range");
    let bytes: Vec<u8> = body
        .stream
        .map(|b| b.expect("chunk").to_vec())
        .concat()
        .await;
    assert_eq!(bytes, big[1000..2000].to_vec());

    // Downloads into S3: verified, resumed after a cut; a mismatch leaves nothing under blobs/.
    let (base, _first_peer) = http_peer().await;
    let parts = tempfile::tempdir().expect("parts");
    let dl = Downloader::new(
        store.clone(),
        DownloadConfig {
            part_dir: Some(parts.path().to_path_buf()),
            backoff_base: std::time::Duration::from_millis(20),
            env_proxy: false,
            ..DownloadConfig::default()
        },
    )
    .expect("downloader");
    let mut r = FetchRequest {
        url: format!("{base}/f/cut"),
        catalog: Some("generic".into()),
        entry: Some("cut".into()),
        expected: Expected {
            sha256: Some("ff".repeat(32)),
            ..Expected::default()
        },
    };
    let err = dl.fetch(&r).await.expect_err("mismatch");
    assert_eq!(err.rule_id(), Some("FW-INT-001"));
    assert_eq!(
        keys(&store, "blobs").await.len(),
        1,
        "nothing new under blobs/"
    );
    assert!(keys(&store, "staging").await.is_empty());
    // A fresh peer: the first GET is cut halfway, the Range GET finishes it, the blob lands.
    let (base, peer) = http_peer().await;
    r.expected.sha256 = Some(sha256_hex(&peer.blob));
    r.url = format!("{base}/f/cut");
    let m = dl.fetch(&r).await.expect("download resumed after a cut");
    assert_eq!(m.integrity, IntegrityState::VerifiedSha256);
    assert_eq!(peer.hits("cut"), 2);
    assert_eq!(
        peer.ranges("cut").len(),
        1,
        "resumed with one Range request"
    );
    assert_eq!(keys(&store, "blobs").await.len(), 2);
    let body = store
        .blob_range(&m.sha256, BlobRange::Inclusive(0, 15))
        .await
        .expect("read back");
    let head: Vec<u8> = body
        .stream
        .map(|b| b.expect("chunk").to_vec())
        .concat()
        .await;
    assert_eq!(head, peer.blob[..16].to_vec());
    assert!(
        std::fs::read_dir(parts.path())
            .expect("parts")
            .next()
            .is_none()
    );

    // S3 answering 503: object_store's retries carry the import through.
    let (proxy, connections) = faulty_proxy(moto.port, 2).await;
    let flaky = s3_store(&proxy);
    std::fs::write(&a, b"through a flaky S3").expect("write");
    let m = flaky
        .import_file(&a, &Expected::default())
        .await
        .expect("import through 503s");
    assert!(store.has_blob(&m.sha256).await.expect("head"));
    assert!(
        connections.load(Ordering::SeqCst) > 2,
        "the 503s were served"
    );
}
