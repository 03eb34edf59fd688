//! Parsing, names, fingerprints, EK certificate verdicts and challenge construction on fixtures
//! recorded from swtpm with tpm2-tools (`tests/data/`), with no TPM running.

use std::time::SystemTime;

use automata_tpm::{
    CredentialError, EkCertVerdict, PublicError, PublicKey, TrustRoots, answer_matches,
    certificate_key_matches, make_credential, verify_ek_certificate, verify_endorsement,
};
use automata_tpm::{HashAlg, TpmPublic};

const EK_RSA: &[u8] = include_bytes!("data/swtpm-ek-rsa.pub");
const EK_ECC: &[u8] = include_bytes!("data/swtpm-ek-ecc.pub");
const EK_CERT: &[u8] = include_bytes!("data/swtpm-ek-rsa.der");
const AK: &[u8] = include_bytes!("data/swtpm-ak.pub");
const AK_NAME: &[u8] = include_bytes!("data/swtpm-ak.name");
/// `openssl x509 -inform DER -in swtpm-ek-rsa.der -pubkey -noout | openssl pkey -pubin
/// -outform der | sha256sum`
const EK_CERT_SPKI_SHA256: &str =
    "48d5e0cca5f915e9178914162e5130d86a3bb7fbe75ba1eb97d8d1a417f5465f";

fn localca() -> TrustRoots {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/swtpm-localca");
    let mut roots = TrustRoots::empty();
    assert_eq!(roots.add_dir(dir.as_ref()).expect("localca dir"), 2);
    roots
}

#[test]
fn ek_public_area_parses_as_a_restricted_decryption_key() {
    let ek = TpmPublic::from_tpm2b(EK_RSA).expect("EK parses");
    assert!(ek.is_endorsement_key());
    assert!(!ek.is_attestation_key());
    assert_eq!(ek.name_alg(), HashAlg::Sha256);
    let sym = ek.symmetric().expect("EK has a symmetric definition");
    assert!(sym.is_aes_cfb());
    assert_eq!(sym.key_bits, 128);
    match ek.key() {
        PublicKey::Rsa { modulus, exponent } => {
            assert_eq!(modulus.len(), 256);
            assert_eq!(*exponent, 65537);
        }
        other => panic!("expected RSA, got {other:?}"),
    }
    assert_eq!(ek.tpm2b_bytes(), EK_RSA);
    assert_eq!(TpmPublic::from_tpmt(ek.tpmt_bytes()).expect("tpmt"), ek);
}

#[test]
fn ecc_ek_parses_with_a_p256_point() {
    let ek = TpmPublic::from_tpm2b(EK_ECC).expect("ECC EK parses");
    assert!(ek.is_endorsement_key());
    match ek.key() {
        PublicKey::Ecc { curve, x, y } => {
            assert_eq!(*curve, 0x0003);
            assert_eq!((x.len(), y.len()), (32, 32));
        }
        other => panic!("expected ECC, got {other:?}"),
    }
    assert_eq!(ek.fingerprint().expect("fingerprint").len(), 64);
}

#[test]
fn ak_name_equals_the_one_tpm2_createak_wrote() {
    let ak = TpmPublic::from_tpm2b(AK).expect("AK parses");
    assert!(ak.is_attestation_key());
    assert!(!ak.is_endorsement_key());
    assert_eq!(ak.name(), AK_NAME);
}

#[test]
fn ek_fingerprint_equals_openssls_spki_digest_of_the_certificate() {
    let ek = TpmPublic::from_tpm2b(EK_RSA).expect("EK parses");
    assert_eq!(ek.fingerprint().expect("fingerprint"), EK_CERT_SPKI_SHA256);
    assert_eq!(certificate_key_matches(EK_CERT, &ek), Ok(true));
    let ak = TpmPublic::from_tpm2b(AK).expect("AK parses");
    assert_eq!(certificate_key_matches(EK_CERT, &ak), Ok(false));
}

#[test]
fn ek_certificate_is_trusted_under_the_swtpm_localca() {
    let ek = TpmPublic::from_tpm2b(EK_RSA).expect("EK parses");
    match verify_endorsement(&ek, EK_CERT, &[], &localca(), SystemTime::now()) {
        EkCertVerdict::Trusted {
            issuer,
            anchor,
            manufacturer,
        } => {
            assert_eq!(issuer, "CN=swtpm-localca");
            assert!(anchor.contains("swtpm-localca"), "{anchor}");
            let m = manufacturer.expect("the SAN names the TPM");
            assert_eq!(m.manufacturer.as_deref(), Some("id:00001014"));
            assert_eq!(m.model.as_deref(), Some("swtpm"));
            assert_eq!(m.version.as_deref(), Some("id:20191023"));
        }
        other => panic!("expected Trusted, got {other:?}"),
    }
}

#[test]
fn ek_certificate_for_another_key_is_untrusted() {
    let ak = TpmPublic::from_tpm2b(AK).expect("AK parses");
    let verdict = verify_endorsement(&ak, EK_CERT, &[], &localca(), SystemTime::now());
    assert!(
        matches!(&verdict, EkCertVerdict::Untrusted { reason } if reason.contains("not the EK")),
        "{verdict:?}"
    );
}

#[test]
fn ek_certificate_from_an_unknown_ca_is_untrusted() {
    let verdict = verify_ek_certificate(EK_CERT, &[], &TrustRoots::shipped(), SystemTime::now());
    assert!(
        matches!(&verdict, EkCertVerdict::Untrusted { reason } if reason.contains("swtpm-localca")),
        "{verdict:?}"
    );
    let none = verify_ek_certificate(EK_CERT, &[], &TrustRoots::empty(), SystemTime::now());
    assert!(matches!(none, EkCertVerdict::Untrusted { .. }), "{none:?}");
}

#[test]
fn ek_certificate_is_untrusted_before_its_validity() {
    let verdict = verify_ek_certificate(EK_CERT, &[], &localca(), SystemTime::UNIX_EPOCH);
    assert!(
        matches!(&verdict, EkCertVerdict::Untrusted { reason } if reason.contains("not valid")),
        "{verdict:?}"
    );
}

#[test]
fn no_single_flipped_byte_leaves_the_certificate_trusted() {
    let roots = localca();
    for i in 0..EK_CERT.len() {
        let mut bad = EK_CERT.to_vec();
        bad[i] ^= 0x41;
        let verdict = verify_ek_certificate(&bad, &[], &roots, SystemTime::now());
        assert!(!verdict.is_trusted(), "byte {i} flipped still trusted");
    }
}

#[test]
fn truncated_and_padded_certificates_are_malformed() {
    let roots = localca();
    for len in [0, 1, 4, 100, EK_CERT.len() - 1] {
        let verdict = verify_ek_certificate(&EK_CERT[..len], &[], &roots, SystemTime::now());
        assert!(
            matches!(verdict, EkCertVerdict::Malformed { .. }),
            "{len}: {verdict:?}"
        );
    }
    let mut padded = EK_CERT.to_vec();
    padded.extend([0xff; 16]);
    assert!(matches!(
        verify_ek_certificate(&padded, &[], &roots, SystemTime::now()),
        EkCertVerdict::Malformed { .. }
    ));
    // The agent trims NV padding before sending.
    assert_eq!(automata_tpm::trim_der_padding(&padded), EK_CERT);
    let junk: &[u8] = b"not a certificate";
    assert!(matches!(
        verify_ek_certificate(EK_CERT, &[junk], &roots, SystemTime::now()),
        EkCertVerdict::Malformed { .. }
    ));
}

#[test]
fn shipped_roots_load() {
    let roots = TrustRoots::shipped();
    assert_eq!(roots.anchor_count(), 26);
    assert_eq!(roots.intermediate_count(), 143);
}

#[test]
fn garbage_public_areas_are_refused() {
    assert!(matches!(
        TpmPublic::from_tpm2b(&[]),
        Err(PublicError::Wire(_))
    ));
    assert!(matches!(
        TpmPublic::from_tpm2b(&EK_RSA[..EK_RSA.len() - 1]),
        Err(PublicError::SizeMismatch { .. })
    ));
    let mut longer = EK_RSA.to_vec();
    longer.push(0);
    assert!(TpmPublic::from_tpm2b(&longer).is_err());
    // A KEYEDHASH object, an unknown nameAlg.
    let mut keyed = EK_RSA.to_vec();
    keyed[2..4].copy_from_slice(&[0x00, 0x08]);
    assert_eq!(
        TpmPublic::from_tpm2b(&keyed),
        Err(PublicError::UnsupportedType(8))
    );
    let mut alg = EK_RSA.to_vec();
    alg[4..6].copy_from_slice(&[0x00, 0x99]);
    assert_eq!(
        TpmPublic::from_tpm2b(&alg),
        Err(PublicError::UnsupportedNameAlg(0x99))
    );
}

#[test]
fn challenges_build_for_rsa_and_ecc_eks() {
    let ak = TpmPublic::from_tpm2b(AK).expect("AK parses");
    for ek in [EK_RSA, EK_ECC] {
        let ek = TpmPublic::from_tpm2b(ek).expect("EK parses");
        let c = make_credential(&ek, &ak.name(), &[7; 32]).expect("challenge");
        // TPM2B_ID_OBJECT: size, TPM2B_DIGEST(HMAC-SHA256), encrypted TPM2B_DIGEST(secret).
        assert_eq!(c.credential_blob.len(), 2 + 2 + 32 + 2 + 32);
        assert!(c.encrypted_secret.len() > 2);
        // Fresh seed every time.
        let again = make_credential(&ek, &ak.name(), &[7; 32]).expect("challenge");
        assert_ne!(c, again);
    }
}

#[test]
fn challenge_inputs_are_checked() {
    let ek = TpmPublic::from_tpm2b(EK_RSA).expect("EK parses");
    let ak = TpmPublic::from_tpm2b(AK).expect("AK parses");
    let name = ak.name();
    assert!(matches!(
        make_credential(&ak, &name, b"secret"),
        Err(CredentialError::NotAnEndorsementKey)
    ));
    for bad in [&name[..1], &name[..20], &[0x00, 0x0b][..]] {
        assert!(matches!(
            make_credential(&ek, bad, b"secret"),
            Err(CredentialError::MalformedName(_))
        ));
    }
    assert!(matches!(
        make_credential(&ek, &name, &[]),
        Err(CredentialError::SecretSize { max: 32, got: 0 })
    ));
    assert!(matches!(
        make_credential(&ek, &name, &[1; 33]),
        Err(CredentialError::SecretSize { max: 32, got: 33 })
    ));
}

#[test]
fn answers_compare_exactly() {
    assert!(answer_matches(b"0123456789", b"0123456789"));
    assert!(!answer_matches(b"0123456789", b"0123456788"));
    assert!(!answer_matches(b"0123456789", b"012345678"));
    assert!(!answer_matches(b"0123456789", b""));
}
