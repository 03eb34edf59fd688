//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

/// Path of a fixture file.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Bytes of a fixture file.
pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// gzip of bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

/// A zip with the given members (stored).
pub fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in members {
        w.start_file(*name, opts).expect("zip");
        w.write_all(data).expect("zip");
    }
    w.finish().expect("zip").into_inner()
}

/// SHA-256 hex.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// A gzip jcat with one item and the given blobs `(kind, data)`.
pub fn jcat(id: &str, aliases: &[&str], blobs: &[(u32, String)]) -> Vec<u8> {
    let blobs: Vec<serde_json::Value> = blobs
        .iter()
        .map(
            |(k, d)| serde_json::json!({"Kind": k, "Flags": 1, "Timestamp": 1705829736, "Data": d}),
        )
        .collect();
    let v = serde_json::json!({"JcatVersionMajor": 0, "JcatVersionMinor": 1,
        "Items": [{"Id": id, "AliasIds": aliases, "Blobs": blobs}]});
    gzip(&serde_json::to_vec(&v).expect("json"))
}

/// The Debian fwupd-tests directory (scripts/install-deps.sh installs the package).
pub fn fwupd_tests_dir() -> PathBuf {
    let p = PathBuf::from("/usr/share/installed-tests/fwupd");
    assert!(
        p.join("fakedevice124.cab").exists(),
        "Debian package fwupd-tests is missing: run scripts/install-deps.sh (it is in TEST_PKGS)"
    );
    p
}
