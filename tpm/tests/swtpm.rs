//! The whole registration against real software TPMs: the agent side through tss-esapi, the
//! service side in pure Rust, cross-checked with tpm2-tools and openssl where cheap.

mod common;

use std::process::Command;
use std::time::SystemTime;

use automata_tpm::device::{DeviceError, EkKind, Tpm};
use automata_tpm::{
    EkCertVerdict, TpmPublic, TrustRoots, answer_matches, make_credential, verify_endorsement,
};
use common::{Swtpm, free_port, localca_dir};

fn localca_roots() -> TrustRoots {
    let mut roots = TrustRoots::empty();
    let n = roots.add_dir(&localca_dir()).expect("local CA dir");
    assert!(n >= 2, "the local CA's root and issuer certificates");
    roots
}

/// The agent's report and the service's checks, up to a verified registration.
#[test]
fn registration_end_to_end_with_an_rsa_ek() {
    let swtpm = Swtpm::start();
    let mut tpm = Tpm::open(&swtpm.tcti()).expect("open swtpm");

    // Agent: EK, certificate, identity, AK.
    let endorsement = tpm.endorsement().expect("endorsement");
    assert_eq!(endorsement.kind, EkKind::Rsa2048);
    assert_eq!(endorsement.manufacturer, "IBM");
    let cert = endorsement
        .certificate
        .clone()
        .expect("swtpm provisions an EK cert");
    let ak = tpm.create_ak().expect("create AK");

    // Service: parse everything itself, check the certificate, build the challenge.
    let ek = TpmPublic::from_tpm2b(&endorsement.public).expect("EK public");
    assert!(ek.is_endorsement_key());
    let verdict = verify_endorsement(&ek, &cert, &[], &localca_roots(), SystemTime::now());
    let EkCertVerdict::Trusted { manufacturer, .. } = verdict else {
        panic!("EK cert not trusted: {verdict:?}");
    };
    assert_eq!(
        manufacturer.and_then(|m| m.manufacturer).as_deref(),
        Some("id:00001014")
    );
    let ak_public = TpmPublic::from_tpm2b(ak.public()).expect("AK public");
    assert!(ak_public.is_attestation_key());
    assert_eq!(ak_public.name(), ak.name(), "our name equals the TPM's");

    let secret = *b"a registration nonce, 32 bytes!!";
    let challenge = make_credential(&ek, &ak_public.name(), &secret).expect("challenge");

    // Agent answers; service compares.
    let answer = tpm
        .activate_credential(&ak, &challenge.credential_blob, &challenge.encrypted_secret)
        .expect("activation on the right TPM");
    assert!(answer_matches(&secret, &answer));
    assert!(!answer_matches(
        &secret,
        b"a registration nonce, 32 bytes!?"
    ));
}

/// The ECDH + KDFe path of MakeCredential, against the TPM's own ECC P-256 EK.
#[test]
fn challenge_to_an_ecc_ek_activates() {
    let swtpm = Swtpm::start();
    let mut tpm = Tpm::open(&swtpm.tcti()).expect("open swtpm");
    let ak = tpm.create_ak().expect("AK under the RSA EK");
    let ecc = tpm.endorsement_of(EkKind::EccP256).expect("ECC EK");
    let ek = TpmPublic::from_tpm2b(&ecc.public).expect("ECC EK public");
    assert!(matches!(
        ek.key(),
        automata_tpm::PublicKey::Ecc { curve: 3, .. }
    ));
    let ak_name = TpmPublic::from_tpm2b(ak.public()).expect("AK").name();
    for secret in [&[0x5a; 32][..], b"x", b"sixteen byte key"] {
        let c = make_credential(&ek, &ak_name, secret).expect("challenge");
        let answer = tpm
            .activate_credential(&ak, &c.credential_blob, &c.encrypted_secret)
            .expect("activation with the ECC EK");
        assert_eq!(answer, secret);
    }
}

/// An AK that is not on the EK's TPM never yields the secret.
#[test]
fn an_ak_on_another_tpm_cannot_answer() {
    let (a, b) = (Swtpm::start(), Swtpm::start());
    let mut tpm_a = Tpm::open(&a.tcti()).expect("open A");
    let mut tpm_b = Tpm::open(&b.tcti()).expect("open B");
    let ek_a = TpmPublic::from_tpm2b(&tpm_a.endorsement().expect("EK A").public).expect("EK A");
    let ek_b = TpmPublic::from_tpm2b(&tpm_b.endorsement().expect("EK B").public).expect("EK B");
    assert_ne!(
        ek_a.fingerprint().ok(),
        ek_b.fingerprint().ok(),
        "two distinct TPMs"
    );
    let ak_a = tpm_a.create_ak().expect("AK A");
    let ak_b = tpm_b.create_ak().expect("AK B");
    let name_a = TpmPublic::from_tpm2b(ak_a.public()).expect("AK A").name();
    let name_b = TpmPublic::from_tpm2b(ak_b.public()).expect("AK B").name();
    let secret = [0x42; 32];

    // Built for A's EK and A's AK, answered by B: B's EK cannot recover the seed.
    let for_a = make_credential(&ek_a, &name_a, &secret).expect("challenge");
    let err = tpm_b
        .activate_credential(&ak_b, &for_a.credential_blob, &for_a.encrypted_secret)
        .expect_err("B must not answer A's challenge");
    assert!(
        matches!(
            err,
            DeviceError::Command {
                op: "ActivateCredential",
                ..
            }
        ),
        "{err}"
    );

    // B's AK presented with A's EK: A holds no object with that name, B not that EK.
    let mixed = make_credential(&ek_a, &name_b, &secret).expect("challenge");
    for (tpm, ak) in [(&mut tpm_a, &ak_a), (&mut tpm_b, &ak_b)] {
        let err = tpm
            .activate_credential(ak, &mixed.credential_blob, &mixed.encrypted_secret)
            .expect_err("mixed EK/AK must fail");
        assert!(matches!(err, DeviceError::Command { .. }), "{err}");
    }

    // A's AK handle means nothing to B's session.
    assert!(matches!(
        tpm_b.activate_credential(&ak_a, &for_a.credential_blob, &for_a.encrypted_secret),
        Err(DeviceError::ForeignKey)
    ));

    // And A itself still answers its own challenge.
    let answer = tpm_a
        .activate_credential(&ak_a, &for_a.credential_blob, &for_a.encrypted_secret)
        .expect("A answers");
    assert_eq!(answer, secret);
}

/// Tampered challenges fail in the TPM or in the framing, never with a wrong secret.
#[test]
fn tampered_challenges_are_refused() {
    let swtpm = Swtpm::start();
    let mut tpm = Tpm::open(&swtpm.tcti()).expect("open swtpm");
    let ek = TpmPublic::from_tpm2b(&tpm.endorsement().expect("EK").public).expect("EK");
    let ak = tpm.create_ak().expect("AK");
    let name = TpmPublic::from_tpm2b(ak.public()).expect("AK").name();
    let c = make_credential(&ek, &name, &[9; 32]).expect("challenge");

    let mut blob = c.credential_blob.clone();
    let last = blob.len() - 1;
    blob[last] ^= 1;
    assert!(
        tpm.activate_credential(&ak, &blob, &c.encrypted_secret)
            .is_err()
    );
    let mut seed = c.encrypted_secret.clone();
    seed[10] ^= 1;
    assert!(
        tpm.activate_credential(&ak, &c.credential_blob, &seed)
            .is_err()
    );
    assert!(matches!(
        tpm.activate_credential(&ak, &c.credential_blob[..10], &c.encrypted_secret),
        Err(DeviceError::Malformed(_))
    ));
    assert!(matches!(
        tpm.activate_credential(&ak, &c.credential_blob, &[]),
        Err(DeviceError::Malformed(_))
    ));
    // The untampered challenge still works afterwards.
    let answer = tpm
        .activate_credential(&ak, &c.credential_blob, &c.encrypted_secret)
        .expect("activation");
    assert_eq!(answer, [9; 32]);
}

/// The EK certificate of a TPM whose CA is not trusted (only the vendor roots) is untrusted.
#[test]
fn swtpm_ek_certificate_is_untrusted_under_vendor_roots() {
    let swtpm = Swtpm::start();
    let mut tpm = Tpm::open(&swtpm.tcti()).expect("open swtpm");
    let e = tpm.endorsement().expect("EK");
    let ek = TpmPublic::from_tpm2b(&e.public).expect("EK");
    let cert = e.certificate.expect("cert");
    let verdict = verify_endorsement(&ek, &cert, &[], &TrustRoots::shipped(), SystemTime::now());
    assert!(
        matches!(&verdict, EkCertVerdict::Untrusted { reason } if reason.contains("swtpm-localca")),
        "{verdict:?}"
    );
}

/// No TPM behind the TCTI: a clear error, no hang, no panic.
#[test]
fn no_tpm_is_an_error() {
    let dead = format!("swtpm:host=127.0.0.1,port={}", free_port());
    assert!(matches!(Tpm::open(&dead), Err(DeviceError::Open { .. })));
    assert!(Tpm::open("device:/dev/no-such-tpm").is_err());
    assert!(matches!(
        Tpm::open("nonsense:xyz"),
        Err(DeviceError::Tcti { .. })
    ));
}

/// Our EK bytes, AK name and EK fingerprint equal what tpm2-tools and openssl compute.
#[test]
fn agrees_with_tpm2_tools_and_openssl() {
    let swtpm = Swtpm::start();
    let (ours, cert) = {
        let mut tpm = Tpm::open(&swtpm.tcti()).expect("open swtpm");
        let e = tpm.endorsement().expect("EK");
        (e.public, e.certificate.expect("cert"))
    }; // dropped: swtpm serves one client at a time

    swtpm.tpm2(
        "tpm2_createek",
        &["-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"],
    );
    let theirs = std::fs::read(swtpm.scratch().join("ek.pub")).expect("ek.pub");
    assert_eq!(ours, theirs, "same template, same EK");
    swtpm.tpm2("tpm2_flushcontext", &["-t"]);
    swtpm.tpm2(
        "tpm2_createak",
        &[
            "-C", "ek.ctx", "-c", "ak.ctx", "-G", "rsa", "-g", "sha256", "-s", "rsassa", "-u",
            "ak.pub", "-n", "ak.name",
        ],
    );
    let ak_pub = std::fs::read(swtpm.scratch().join("ak.pub")).expect("ak.pub");
    let ak_name = std::fs::read(swtpm.scratch().join("ak.name")).expect("ak.name");
    assert_eq!(TpmPublic::from_tpm2b(&ak_pub).expect("AK").name(), ak_name);

    let pem = swtpm.scratch().join("ek.der");
    std::fs::write(&pem, &cert).expect("write cert");
    let script = format!(
        "openssl x509 -inform DER -in {} -pubkey -noout | openssl pkey -pubin -outform der \
         | sha256sum",
        pem.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("openssl");
    let openssl = String::from_utf8_lossy(&out.stdout);
    let ek = TpmPublic::from_tpm2b(&ours).expect("EK");
    assert_eq!(
        openssl.split_whitespace().next(),
        Some(ek.fingerprint().expect("fingerprint").as_str())
    );
}
