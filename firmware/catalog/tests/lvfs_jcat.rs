//! LVFS jcat and cab handling, on Debian fwupd-tests' real files and on made ones.

mod common;

use automata_fwcatalog::CatalogError;
use automata_fwcatalog::lvfs::{self, BlobKind, Jcat, SignatureStatus};
use common::*;

#[test]
fn real_fakedevice124_jcat_verifies_sha256_and_classifies_signatures() {
    let dir = fwupd_tests_dir();
    let jcat =
        Jcat::parse(&std::fs::read(dir.join("fakedevice124.jcat")).expect("jcat")).expect("parse");
    let bin = std::fs::read(dir.join("fakedevice124.bin")).expect("bin");
    let report = lvfs::verify_jcat(&jcat, "fakedevice124.bin", &bin, true).expect("verify");
    assert_eq!(report.item_id, "fakedevice124.bin");
    assert_eq!(
        report.sha256,
        "77f3e17bad9d510786133804fc1e050488f628257ce00c7e23938f7b31c4cac2"
    );
    let kinds: Vec<BlobKind> = report.signatures.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec![BlobKind::Gpg, BlobKind::Pkcs7]);
    // Present and RSA, but never claimed valid: trust roots were not checked.
    assert!(
        report
            .signatures
            .iter()
            .all(|s| s.status == SignatureStatus::NotVerified)
    );

    let mut tampered = bin.clone();
    tampered[0] ^= 1;
    assert!(matches!(
        lvfs::verify_jcat(&jcat, "fakedevice124.bin", &tampered, true),
        Err(CatalogError::JcatChecksumMismatch { .. })
    ));
}

#[test]
fn real_fakedevice124_cab_metainfo() {
    let dir = fwupd_tests_dir();
    let cab = std::fs::read(dir.join("fakedevice124.cab")).expect("cab");
    let c = lvfs::read_cab("lvfs", &cab).expect("cab");
    assert!(
        c.files.iter().any(|f| f.ends_with(".metainfo.xml")),
        "{:?}",
        c.files
    );
    assert_eq!(c.entries.len(), 1);
    let e = &c.entries[0];
    assert_eq!(e.version, "1.2.4");
    assert_eq!(
        e.applies_to.guids,
        vec!["b585990a-003e-5270-89d5-3705a17f9a43"]
    );
    assert_eq!(e.hashes.sha256.as_deref(), Some(sha256(&cab).as_str()));
    // The payload inside the cab agrees with the metainfo's content checksum.
    if let Some(want) = e.extra.get("content_sha256") {
        let bin_name = c
            .files
            .iter()
            .find(|f| f.ends_with(".bin"))
            .expect("bin in cab");
        let bin = lvfs::read_cab_member(&cab, bin_name).expect("member");
        assert_eq!(&sha256(&bin), want);
    }
    assert!(matches!(
        lvfs::read_cab("lvfs", b"MSCF not really"),
        Err(CatalogError::Cab(_))
    ));
}

#[test]
fn real_fwupd_tests_metadata() {
    let dir = fwupd_tests_dir();
    let xml = std::fs::read(dir.join("fwupd-tests.xml")).expect("xml");
    let entries = lvfs::parse_metadata("fwupd-tests", Some("https://fwupd.org/downloads"), &xml)
        .expect("parse");
    assert!(entries.len() >= 4);
    let fake = entries
        .iter()
        .find(|e| e.key() == "fwupd-tests/fakedevice.firmware/1.2.4")
        .expect("fake");
    assert_eq!(
        fake.hashes.sha1.as_deref(),
        Some("fc0aabcf98bf3546c91270f2941f0acd0395dd79")
    );
    assert_eq!(
        fake.url.as_deref(),
        Some("https://fwupd.org/downloads/fakedevice124.cab")
    );
    assert_eq!(fake.size, Some(1163));
    assert_eq!(fake.vendor, "ACME Corp");
}

#[test]
fn jcat_alias_resolves_to_the_immutable_id() {
    let meta = b"<components/>".to_vec();
    let j = jcat(
        "firmware-07078-stable.xml.gz",
        &["firmware.xml.gz"],
        &[
            (1, sha256(&meta)),
            (3, pem(&[0x30, 0x03, 0x02, 0x01, 0x01])),
        ],
    );
    let j = Jcat::parse(&j).expect("jcat");
    let item = j
        .resolve("https://cdn.fwupd.org/downloads/firmware.xml.gz")
        .expect("alias");
    assert_eq!(item.id, "firmware-07078-stable.xml.gz");
    let r = lvfs::verify_jcat(&j, "firmware.xml.gz", &meta, true).expect("ok");
    assert_eq!(r.item_id, "firmware-07078-stable.xml.gz");
}

#[test]
fn jcat_for_another_file_is_the_cdn_race() {
    let meta = b"<components/>".to_vec();
    let j = Jcat::parse(&jcat(
        "firmware-07077-stable.xml.gz",
        &["firmware-old.xml.gz"],
        &[(1, sha256(&meta))],
    ))
    .expect("jcat");
    let err =
        lvfs::verify_jcat(&j, "firmware-07078-stable.xml.gz", &meta, false).expect_err("race");
    assert!(matches!(err, CatalogError::JcatItemMissing { .. }), "{err}");
    assert_eq!(err.kind(), "jcat-item-missing");
}

#[test]
fn unsigned_jcat_is_rejected_when_a_signature_is_required() {
    let meta = b"<components/>".to_vec();
    let j = Jcat::parse(&jcat("firmware.xml.gz", &[], &[(1, sha256(&meta))])).expect("jcat");
    assert!(matches!(
        lvfs::verify_jcat(&j, "firmware.xml.gz", &meta, true),
        Err(CatalogError::JcatUnsigned { .. })
    ));
    assert!(lvfs::verify_jcat(&j, "firmware.xml.gz", &meta, false).is_ok());
    let no_sum = Jcat::parse(&jcat("firmware.xml.gz", &[], &[])).expect("jcat");
    assert!(matches!(
        lvfs::verify_jcat(&no_sum, "firmware.xml.gz", &meta, false),
        Err(CatalogError::JcatNoChecksum { .. })
    ));
}

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    format!(
        "-----BEGIN PKCS7-----\n{}\n-----END PKCS7-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

#[test]
fn ml_dsa_87_signature_is_unsupported_never_valid() {
    // A SignedData-shaped DER carrying the ML-DSA-87 algorithm id 2.16.840.1.101.3.4.3.19.
    let oid = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x13,
    ];
    let mut der = vec![0x30, (oid.len() + 2) as u8, 0x30, oid.len() as u8];
    der.extend_from_slice(&oid);
    let meta = b"<components/>".to_vec();
    let j = Jcat::parse(&jcat(
        "firmware.xml.gz",
        &[],
        &[(1, sha256(&meta)), (3, pem(&der))],
    ))
    .expect("jcat");
    let r = lvfs::verify_jcat(&j, "firmware.xml.gz", &meta, true).expect("verify");
    assert_eq!(
        r.signatures[0].status,
        SignatureStatus::UnsupportedAlgorithm {
            algorithm: "ML-DSA-87".into()
        }
    );
    assert_eq!(
        serde_json::to_value(&r.signatures[0].status).expect("json")["status"],
        "unsupported-algorithm"
    );
    assert!(matches!(
        lvfs::classify_pkcs7("-----BEGIN PKCS7-----\n!!!\n-----END PKCS7-----"),
        SignatureStatus::Malformed { .. }
    ));
}
