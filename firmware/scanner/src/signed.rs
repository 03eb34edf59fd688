//! Detached PKCS#7 signatures over whole packages and catalogs (a jcat's PKCS#7 blobs, an FMP
//! image's authentication), verified with the checks Authenticode uses: the messageDigest over
//! the content, the RSA signature over the signed attributes, and the chain to the operator's
//! roots. An ML-DSA signature (LVFS CA 2025PQ) is reported as an unsupported algorithm, never as
//! valid.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::authenticode::{self, chain_to_roots, digest_name, find_signer, parse_bag};
use crate::cert::CertInfo;
use crate::pkcs7::{self, SignedData};
use crate::rules::TrustedRoot;

/// The verdict on one detached signature; ordered worst first, so the best of several is `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The signature does not verify, or cannot be read.
    Invalid,
    /// An algorithm we cannot check (ML-DSA); never counted as valid.
    UnsupportedAlgorithm,
    /// It verifies, but its chain reaches none of the configured roots.
    Untrusted,
    /// It verifies and chains to a configured root.
    Valid,
}

impl Verdict {
    /// The kebab-case name used in evidence and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Invalid => "invalid",
            Verdict::UnsupportedAlgorithm => "unsupported-algorithm",
            Verdict::Untrusted => "untrusted",
            Verdict::Valid => "valid",
        }
    }
}

/// What checking one detached signature found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedSignature {
    /// The outcome.
    pub verdict: Verdict,
    /// Signature algorithm: the digest name for RSA, or the unsupported algorithm's name.
    pub algorithm: String,
    /// The signer certificate, when found in the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<CertInfo>,
    /// The chain from the signer upward whose links verified (signer first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<CertInfo>,
    /// The configured root the chain reached, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
    /// What failed, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl DetachedSignature {
    fn invalid(problem: String) -> Self {
        DetachedSignature {
            verdict: Verdict::Invalid,
            algorithm: String::new(),
            signer: None,
            chain: Vec::new(),
            trusted_root: None,
            problems: vec![problem],
        }
    }

    /// The signer's subject, or a placeholder for evidence.
    pub fn who(&self) -> String {
        self.signer
            .as_ref()
            .map_or_else(|| "unknown signer".to_string(), |c| c.subject.clone())
    }
}

/// ML-DSA (FIPS 204) signature algorithm OIDs and their names.
const ML_DSA: [(&str, &str); 3] = [
    ("2.16.840.1.101.3.4.3.17", "ML-DSA-44"),
    ("2.16.840.1.101.3.4.3.18", "ML-DSA-65"),
    ("2.16.840.1.101.3.4.3.19", "ML-DSA-87"),
];

/// Signature algorithms we verify: rsaEncryption and the sha*WithRSAEncryption family.
fn is_rsa(oid: &str) -> bool {
    oid == "1.2.840.113549.1.1.1"
        || matches!(
            oid,
            "1.2.840.113549.1.1.5"
                | "1.2.840.113549.1.1.11"
                | "1.2.840.113549.1.1.12"
                | "1.2.840.113549.1.1.13"
        )
}

/// Decodes a PEM `PKCS7`/`CMS` block (jcat blobs) or passes DER through.
pub fn pem_or_der(data: &[u8]) -> Result<Vec<u8>, String> {
    if data.first() == Some(&0x30) {
        return Ok(data.to_vec());
    }
    let text = std::str::from_utf8(data).map_err(|_| "neither DER nor PEM text".to_string())?;
    let body: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    if !text.contains("-----BEGIN") {
        return Err("no PEM header".into());
    }
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("PEM base64: {e}"))
}

/// Digest of `data` by algorithm name (`sha1`, `sha256`, `sha384`, `sha512`), the shape
/// [`verify_detached`] asks for.
pub fn digest(alg: &str, data: &[u8]) -> Option<Vec<u8>> {
    authenticode::hash(alg, data)
}

/// Verifies a detached signature over `content` against `roots`.
pub fn verify_detached_bytes(
    der: &[u8],
    content: &[u8],
    roots: &[TrustedRoot],
) -> DetachedSignature {
    verify_detached(der, &|alg| digest(alg, content), roots)
}

/// Verifies a detached PKCS#7 (a ContentInfo, or a bare SignedData) given the content's digest
/// by algorithm name (`digest_of("sha256")`), so a caller may hash a member once while
/// streaming it. With several SignerInfos, the best verdict wins.
pub fn verify_detached(
    der: &[u8],
    digest_of: &dyn Fn(&str) -> Option<Vec<u8>>,
    roots: &[TrustedRoot],
) -> DetachedSignature {
    let sd = match pkcs7::parse_content_info(der).or_else(|e| match pkcs7::parse_signed_data(der) {
        Ok(sd) => Ok(sd),
        Err(_) => Err(e),
    }) {
        Ok(sd) => sd,
        Err(e) => return DetachedSignature::invalid(e.to_string()),
    };
    if sd.signers.is_empty() {
        return DetachedSignature::invalid("no SignerInfo".into());
    }
    (0..sd.signers.len())
        .map(|i| check_signer(&sd, i, digest_of, roots))
        .max_by_key(|s| s.verdict)
        .unwrap_or_else(|| DetachedSignature::invalid("no SignerInfo".into()))
}

fn check_signer(
    sd: &SignedData,
    index: usize,
    digest_of: &dyn Fn(&str) -> Option<Vec<u8>>,
    roots: &[TrustedRoot],
) -> DetachedSignature {
    let Some(si) = sd.signers.get(index) else {
        return DetachedSignature::invalid("no SignerInfo".into());
    };
    let certs = parse_bag(sd);
    let signer = find_signer(&certs, si);
    let mut out = DetachedSignature {
        verdict: Verdict::Invalid,
        algorithm: String::new(),
        signer: signer.and_then(|(d, _)| CertInfo::from_der(d)),
        chain: Vec::new(),
        trusted_root: None,
        problems: Vec::new(),
    };
    if let Some((_, name)) = ML_DSA.iter().find(|(o, _)| *o == si.signature_algorithm) {
        out.verdict = Verdict::UnsupportedAlgorithm;
        out.algorithm = (*name).to_string();
        out.problems
            .push(format!("{name} signatures are not verified by this build"));
        return out;
    }
    let Some(alg) = digest_name(&si.digest_algorithm) else {
        out.problems
            .push(format!("unsupported digest {}", si.digest_algorithm));
        return out;
    };
    out.algorithm = alg.to_string();
    if !is_rsa(&si.signature_algorithm) {
        out.verdict = Verdict::UnsupportedAlgorithm;
        out.algorithm = si.signature_algorithm.clone();
        out.problems.push(format!(
            "signature algorithm {} is not supported",
            si.signature_algorithm
        ));
        return out;
    }
    let Some(content_digest) = digest_of(alg) else {
        out.problems.push(format!("no {alg} digest of the content"));
        return out;
    };
    if let Some(embedded) = sd.content.as_deref() {
        // Not detached after all: the signed bytes must be ours.
        let inner = pkcs7::content_octets(embedded).and_then(|c| authenticode::hash(alg, c));
        if inner.as_deref() != Some(content_digest.as_slice()) {
            out.problems
                .push("the signature embeds other content than the file".into());
        }
    }
    let Some((signer_der, signer)) = signer else {
        out.problems
            .push("signer certificate not in the signature".into());
        return out;
    };
    let key = &signer.public_key().subject_public_key.data;
    let checked = match (si.signed_attrs_for_signature(), &si.message_digest) {
        (Some(attrs), Some(md)) => {
            if md != &content_digest {
                out.problems
                    .push("messageDigest does not match the content".into());
            }
            authenticode::rsa_verify(key, alg, &attrs, &si.signature)
        }
        (Some(_), None) => Err("signed attributes without messageDigest".into()),
        (None, _) => authenticode::rsa_verify_digest(key, alg, &content_digest, &si.signature),
    };
    if let Err(e) = checked {
        out.problems.push(format!("signature: {e}"));
    }
    let chain = chain_to_roots(&certs, signer_der, signer, roots);
    out.chain = chain.certs;
    out.trusted_root = chain.trusted_root;
    let signature_ok = out.problems.is_empty();
    out.problems.extend(chain.problems);
    out.verdict = match (signature_ok, &out.trusted_root) {
        (false, _) => Verdict::Invalid,
        (true, Some(_)) => Verdict::Valid,
        (true, None) => Verdict::Untrusted,
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        for der in [
            &b""[..],
            b"\x30",
            b"\x30\x03\x06\x01\x2a",
            b"-----BEGIN PKCS7-----",
        ] {
            let v = verify_detached_bytes(der, b"x", &[]);
            assert_eq!(v.verdict, Verdict::Invalid);
            assert!(!v.problems.is_empty());
        }
    }

    #[test]
    fn pem_is_decoded() {
        let pem = "-----BEGIN PKCS7-----\nMAMCAQE=\n-----END PKCS7-----\n";
        assert_eq!(
            pem_or_der(pem.as_bytes()).ok(),
            Some(vec![0x30, 3, 2, 1, 1])
        );
        assert!(pem_or_der(b"plain text").is_err());
        assert_eq!(pem_or_der(&[0x30, 0]).ok(), Some(vec![0x30, 0]));
    }

    #[test]
    fn verdicts_order_worst_first() {
        assert!(Verdict::Valid > Verdict::Untrusted);
        assert!(Verdict::Untrusted > Verdict::UnsupportedAlgorithm);
        assert!(Verdict::UnsupportedAlgorithm > Verdict::Invalid);
    }
}
