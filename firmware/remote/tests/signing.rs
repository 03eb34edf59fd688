//! The remote's signatures checked by a real peer: OpenSSL's CMS verifier with only our
//! certificate as the trust anchor, as fwupd's GnuTLS trust list holds it.

use std::path::Path;
use std::process::Command;

use automata_fwremote::{CERT_FILE, SigningIdentity, signed_jcat};

fn openssl_verifies(dir: &Path, content: &[u8], sig_der: &[u8], anchor: &Path) -> (bool, String) {
    std::fs::write(dir.join("content"), content).expect("write");
    std::fs::write(dir.join("sig.der"), sig_der).expect("write");
    let out = Command::new("openssl")
        .args([
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
        ])
        .arg("-in")
        .arg(dir.join("sig.der"))
        .arg("-content")
        .arg(dir.join("content"))
        .arg("-CAfile")
        .arg(anchor)
        .args(["-out", "/dev/null"])
        .output()
        .expect("openssl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn openssl_accepts_our_detached_signature_and_refuses_a_changed_file_or_another_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = SigningIdentity::load_or_create(&dir.path().join("id"), "test remote").expect("id");
    let again = SigningIdentity::load_or_create(&dir.path().join("id"), "ignored").expect("load");
    assert_eq!(
        id.fingerprint(),
        again.fingerprint(),
        "made once, then loaded"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("id").join(automata_fwremote::KEY_FILE))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let anchor = dir.path().join("id").join(CERT_FILE);
    let content = b"<components origin=\"test\"/>\n";
    let sig = id.sign_detached(content).expect("sign");

    let (ok, err) = openssl_verifies(dir.path(), content, &sig, &anchor);
    assert!(ok, "openssl refused our signature: {err}");

    let (ok, _) = openssl_verifies(
        dir.path(),
        b"<components origin=\"evil\"/>\n",
        &sig,
        &anchor,
    );
    assert!(!ok, "a changed file must not verify");

    let other = SigningIdentity::generate("someone else").expect("other");
    let other_anchor = dir.path().join("other.pem");
    std::fs::write(&other_anchor, other.certificate_pem().expect("pem")).expect("write");
    let (ok, err) = openssl_verifies(dir.path(), content, &sig, &other_anchor);
    assert!(!ok, "a signature under another anchor must not verify");
    assert!(err.contains("certificate"), "{err}");

    // The jcat carries the same signature as PEM, with the file's SHA-256.
    let jcat = signed_jcat("metadata.xml.zst", content, &id, 1_700_000_000).expect("jcat");
    let parsed = automata_fwcatalog::lvfs::parse_jcat(&jcat).expect("our own reader");
    let ours =
        automata_fwscan::TrustedRoot::from_pem(id.certificate_pem().expect("pem").as_bytes())
            .expect("root");
    let report =
        automata_fwcatalog::lvfs::verify_jcat(&parsed, "metadata.xml.zst", content, true, &[ours])
            .expect("checksum and signature under our certificate");
    assert_eq!(report.signatures.len(), 1);
    assert_eq!(report.verdict.as_deref(), Some("valid"));
    // Our verifier, like OpenSSL above, refuses the changed file and the other anchor.
    let theirs =
        automata_fwscan::TrustedRoot::from_pem(other.certificate_pem().expect("pem").as_bytes())
            .expect("root");
    assert!(
        automata_fwcatalog::lvfs::verify_jcat(
            &parsed,
            "metadata.xml.zst",
            content,
            true,
            &[theirs]
        )
        .is_err()
    );
}
