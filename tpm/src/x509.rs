//! The two certificate-chain primitives x509-parser leaves to us: comparing names, and checking
//! signatures that ring (its verifier) cannot.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry as oids;
use x509_parser::x509::X509Name;

use crate::hash::HashAlg;

/// Whether `cert` carries a valid signature by `issuer`'s key.
///
/// ring covers RSA (PKCS#1 v1.5, PSS) and ECDSA on P-256/P-384; TPM vendors' newer roots are
/// P-521 keys signing with ECDSA-SHA512, verified here with RustCrypto instead.
pub(crate) fn verify_signature(
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Result<(), String> {
    match cert.verify_signature(Some(issuer.public_key())) {
        Ok(()) => Ok(()),
        Err(x509_parser::error::X509Error::SignatureUnsupportedAlgorithm) => {
            verify_ecdsa(cert, issuer)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// ECDSA with SHA-256/384/512 on P-256, P-384 or P-521, over the prehashed TBSCertificate.
fn verify_ecdsa(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> Result<(), String> {
    let alg = &cert.signature_algorithm.algorithm;
    let hash = if *alg == oids::OID_SIG_ECDSA_WITH_SHA256 {
        HashAlg::Sha256
    } else if *alg == oids::OID_SIG_ECDSA_WITH_SHA384 {
        HashAlg::Sha384
    } else if *alg == oids::OID_SIG_ECDSA_WITH_SHA512 {
        HashAlg::Sha512
    } else {
        return Err(format!("unsupported signature algorithm {alg}"));
    };
    let spki = issuer.public_key();
    if spki.algorithm.algorithm != oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
        return Err("ECDSA signature by a non-EC key".into());
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .ok_or("EC key without a named curve")?;
    let point: &[u8] = &spki.subject_public_key.data;
    let sig: &[u8] = &cert.signature_value.data;
    let digest = hash.digest(&[cert.tbs_certificate.as_ref()]);
    let bad = |_| "bad signature".to_string();
    let ok = if curve == oids::OID_EC_P256 {
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| "bad P-256 key")?;
        let sig = p256::ecdsa::Signature::from_der(sig).map_err(bad)?;
        key.verify_prehash(&digest, &sig)
    } else if curve == oids::OID_NIST_EC_P384 {
        let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| "bad P-384 key")?;
        let sig = p384::ecdsa::Signature::from_der(sig).map_err(bad)?;
        key.verify_prehash(&digest, &sig)
    } else if curve == oids::OID_NIST_EC_P521 {
        let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| "bad P-521 key")?;
        let sig = p521::ecdsa::Signature::from_der(sig).map_err(bad)?;
        key.verify_prehash(&digest, &sig)
    } else {
        return Err(format!("unsupported curve {curve}"));
    };
    ok.map_err(|_| "bad signature".to_string())
}

/// RFC 5280 §7.1 name matching, simplified: byte-equal, or the same attributes in the same
/// RDNs with string values equal after trimming, collapsing spaces and ignoring case (CAs
/// re-encode PrintableString as UTF8String between a subject and the issuer field that names it).
pub(crate) fn same_name(a: &X509Name<'_>, b: &X509Name<'_>) -> bool {
    if a.as_raw() == b.as_raw() {
        return true;
    }
    let (ra, rb): (Vec<_>, Vec<_>) = (a.iter_rdn().collect(), b.iter_rdn().collect());
    ra.len() == rb.len()
        && ra.iter().zip(&rb).all(|(x, y)| {
            let (xa, ya): (Vec<_>, Vec<_>) = (x.iter().collect(), y.iter().collect());
            xa.len() == ya.len()
                && xa.iter().zip(&ya).all(|(p, q)| {
                    p.attr_type() == q.attr_type()
                        && match (p.as_str(), q.as_str()) {
                            (Ok(s), Ok(t)) => fold(s) == fold(t),
                            _ => p.attr_value().data == q.attr_value().data,
                        }
                })
        })
}

fn fold(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}
