//! LVFS jcat and cab handling, on Debian fwupd-tests' real files and on made ones.

mod common;

use automata_fwcatalog::CatalogError;
use automata_fwcatalog::lvfs::{self, BlobKind, SignatureStatus};
use automata_fwscan::{RulePack, TrustedRoot};
use common::*;

/// The LVFS CA from Debian's fwupd, which the builtin rule pack carries as a package root.
fn lvfs_roots() -> Vec<TrustedRoot> {
    let roots = RulePack::builtin().package_roots;
    assert!(
        roots.iter().any(|r| r.name.starts_with("LVFS CA")),
        "{roots:?}"
    );
    roots
}

/// fakedevice124.jcat's PKCS#7 blob over fakedevice124.bin, as DER.
fn fakedevice_pkcs7() -> (Vec<u8>, Vec<u8>) {
    let dir = fwupd_tests_dir();
    let jcat = lvfs::parse_jcat(&std::fs::read(dir.join("fakedevice124.jcat")).expect("jcat"))
        .expect("parse");
    let item = jcat.resolve("fakedevice124.bin").expect("item");
    let pem = &item.blobs.iter().find(|b| b.kind == 3).expect("pkcs7").data;
    let der = automata_fwscan::signed::pem_or_der(pem.as_bytes()).expect("pem");
    (
        der,
        std::fs::read(dir.join("fakedevice124.bin")).expect("bin"),
    )
}

#[test]
fn real_fakedevice124_jcat_verifies_sha256_and_pkcs7_under_the_lvfs_ca() {
    let dir = fwupd_tests_dir();
    let jcat = lvfs::parse_jcat(&std::fs::read(dir.join("fakedevice124.jcat")).expect("jcat"))
        .expect("parse");
    let bin = std::fs::read(dir.join("fakedevice124.bin")).expect("bin");
    let report =
        lvfs::verify_jcat(&jcat, "fakedevice124.bin", &bin, true, &lvfs_roots()).expect("verify");
    assert_eq!(report.item_id, "fakedevice124.bin");
    assert_eq!(
        report.sha256,
        "77f3e17bad9d510786133804fc1e050488f628257ce00c7e23938f7b31c4cac2"
    );
    assert_eq!(report.verdict.as_deref(), Some("valid"));
    let kinds: Vec<BlobKind> = report.signatures.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec![BlobKind::Gpg, BlobKind::Pkcs7]);
    assert_eq!(report.signatures[0].status, SignatureStatus::NotVerified);
    let SignatureStatus::Valid { signer, root } = &report.signatures[1].status else {
        panic!("{:?}", report.signatures[1].status)
    };
    assert_eq!(signer, "CN=Richard Hughes");
    assert!(root.starts_with("LVFS CA"), "{root}");

    // OpenSSL agrees: the same signature verifies under the same CA.
    let p7 = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(p7.path(), fakedevice_pkcs7().0).expect("write");
    let ok = std::process::Command::new("openssl")
        .args([
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-in",
        ])
        .arg(p7.path())
        .arg("-content")
        .arg(dir.join("fakedevice124.bin"))
        .args(["-CAfile", "/etc/pki/fwupd/LVFS-CA.pem", "-out", "/dev/null"])
        .status()
        .expect("openssl");
    assert!(ok.success());

    // Without the LVFS CA among the roots: present and correct, but not trusted.
    let r = lvfs::verify_jcat(&jcat, "fakedevice124.bin", &bin, false, &[]).expect("verify");
    assert_eq!(r.verdict.as_deref(), Some("untrusted"));
    assert!(matches!(
        lvfs::verify_jcat(&jcat, "fakedevice124.bin", &bin, true, &[]),
        Err(CatalogError::JcatUntrusted { .. })
    ));

    let mut tampered = bin.clone();
    tampered[0] ^= 1;
    assert!(matches!(
        lvfs::verify_jcat(&jcat, "fakedevice124.bin", &tampered, true, &lvfs_roots()),
        Err(CatalogError::JcatChecksumMismatch { .. })
    ));
}

#[test]
fn a_pkcs7_over_other_bytes_or_with_a_flipped_signature_is_invalid() {
    let (der, bin) = fakedevice_pkcs7();
    let roots = lvfs_roots();
    use automata_fwscan::signed::{Verdict, verify_detached_bytes};
    assert_eq!(
        verify_detached_bytes(&der, &bin, &roots).verdict,
        Verdict::Valid
    );
    let v = verify_detached_bytes(&der, b"other bytes", &roots);
    assert_eq!(v.verdict, Verdict::Invalid);
    assert!(
        v.problems.iter().any(|p| p.contains("messageDigest")),
        "{v:?}"
    );
    let mut flipped = der.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 0x40;
    let v = verify_detached_bytes(&flipped, &bin, &roots);
    assert_eq!(v.verdict, Verdict::Invalid, "{v:?}");
    // Cut anywhere: an error, never a panic, never valid.
    for cut in (0..der.len()).step_by(97) {
        assert_ne!(
            verify_detached_bytes(&der[..cut], &bin, &roots).verdict,
            Verdict::Valid
        );
    }
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
        &[(1, sha256(&meta))],
    );
    let j = lvfs::parse_jcat(&j).expect("jcat");
    let item = j
        .resolve("https://cdn.fwupd.org/downloads/firmware.xml.gz")
        .expect("alias");
    assert_eq!(item.id, "firmware-07078-stable.xml.gz");
    let r = lvfs::verify_jcat(&j, "firmware.xml.gz", &meta, false, &[]).expect("ok");
    assert_eq!(r.item_id, "firmware-07078-stable.xml.gz");
}

#[test]
fn jcat_for_another_file_is_the_cdn_race() {
    let meta = b"<components/>".to_vec();
    let j = lvfs::parse_jcat(&jcat(
        "firmware-07077-stable.xml.gz",
        &["firmware-old.xml.gz"],
        &[(1, sha256(&meta))],
    ))
    .expect("jcat");
    let err =
        lvfs::verify_jcat(&j, "firmware-07078-stable.xml.gz", &meta, false, &[]).expect_err("race");
    assert!(matches!(err, CatalogError::JcatItemMissing { .. }), "{err}");
    assert_eq!(err.kind(), "jcat-item-missing");
}

#[test]
fn unsigned_jcat_is_rejected_when_a_signature_is_required() {
    let meta = b"<components/>".to_vec();
    let j = lvfs::parse_jcat(&jcat("firmware.xml.gz", &[], &[(1, sha256(&meta))])).expect("jcat");
    assert!(matches!(
        lvfs::verify_jcat(&j, "firmware.xml.gz", &meta, true, &[]),
        Err(CatalogError::JcatUnsigned { .. })
    ));
    assert!(lvfs::verify_jcat(&j, "firmware.xml.gz", &meta, false, &[]).is_ok());
    let no_sum = lvfs::parse_jcat(&jcat("firmware.xml.gz", &[], &[])).expect("jcat");
    assert!(matches!(
        lvfs::verify_jcat(&no_sum, "firmware.xml.gz", &meta, false, &[]),
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
    // The real signature with its SignerInfo's algorithm (rsaEncryption, the last one in the
    // DER) replaced by ML-DSA-87, 2.16.840.1.101.3.4.3.19: an OID of the same length, so the
    // structure stays intact, as an LVFS CA 2025PQ signature's would be.
    let (mut der, bin) = fakedevice_pkcs7();
    let rsa = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    let ml_dsa = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x13,
    ];
    let at = der
        .windows(rsa.len())
        .rposition(|w| w == rsa)
        .expect("rsaEncryption");
    der[at..at + rsa.len()].copy_from_slice(&ml_dsa);
    let meta = bin.clone();
    let j = lvfs::parse_jcat(&jcat(
        "firmware.xml.gz",
        &[],
        &[(1, sha256(&meta)), (3, pem(&der))],
    ))
    .expect("jcat");
    let r = lvfs::verify_jcat(&j, "firmware.xml.gz", &meta, false, &lvfs_roots()).expect("verify");
    assert_eq!(
        r.signatures[0].status,
        SignatureStatus::UnsupportedAlgorithm {
            algorithm: "ML-DSA-87".into()
        }
    );
    assert_eq!(r.verdict.as_deref(), Some("unsupported-algorithm"));
    assert_eq!(
        serde_json::to_value(&r.signatures[0].status).expect("json")["status"],
        "unsupported-algorithm"
    );
    // Required signature: an unsupported one does not count.
    assert!(matches!(
        lvfs::verify_jcat(&j, "firmware.xml.gz", &meta, true, &lvfs_roots()),
        Err(CatalogError::JcatUntrusted { .. })
    ));
    let bad = lvfs::parse_jcat(&jcat(
        "firmware.xml.gz",
        &[],
        &[
            (1, sha256(&meta)),
            (3, "-----BEGIN PKCS7-----\n!!!\n-----END PKCS7-----".into()),
        ],
    ))
    .expect("jcat");
    assert!(matches!(
        lvfs::verify_jcat(&bad, "firmware.xml.gz", &meta, false, &[]),
        Err(CatalogError::JcatSignatureInvalid { .. })
    ));
}
