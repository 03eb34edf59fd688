//! Authenticode verification of PE images: every WIN_CERTIFICATE and nested signature is checked
//! (image digest, messageDigest, RSA signature over the signed attributes, certificate chain up
//! to a configured root), so PE-SIG-00x findings rest on facts, not on the presence of bytes.

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use crate::cert::CertInfo;
use crate::pe::{self, PeError, PeImage, WIN_CERT_TYPE_PKCS_SIGNED_DATA};
use crate::pkcs7::{self, OID_SPC_INDIRECT_DATA, SignedData, SignerInfo};
use crate::rules::TrustedRoot;

/// Nested signatures deeper than this are not followed.
const MAX_NESTING: usize = 4;
/// Longest certificate chain followed.
const MAX_CHAIN: usize = 8;

/// One Authenticode signature and the outcome of each check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticodeSignature {
    /// File offset of the WIN_CERTIFICATE that carries it (nested ones share their parent's).
    pub cert_offset: u64,
    /// Nesting level: 0 for a WIN_CERTIFICATE's own signature, 1+ for nested ones.
    pub nesting: usize,
    /// Image digest algorithm (`sha256`, `sha1`, …).
    pub digest_algorithm: String,
    /// The image digest the signature covers, lowercase hex.
    pub signed_digest: String,
    /// The signer certificate, when found in the bag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<CertInfo>,
    /// The chain from the signer upward whose links verified (signer first).
    pub chain: Vec<CertInfo>,
    /// Whether digest, messageDigest and signature all verified.
    pub valid: bool,
    /// The configured root the chain reached, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
    /// What failed, in order.
    pub problems: Vec<String>,
}

/// What the PE reader and the verifier found in one image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeReport {
    /// PE32+ rather than PE32.
    pub pe32_plus: bool,
    /// IMAGE_FILE_MACHINE_*.
    pub machine: u16,
    /// IMAGE_SUBSYSTEM_*.
    pub subsystem: u16,
    /// Authenticode SHA-256 (what dbx lists), lowercase hex.
    pub authenticode_sha256: String,
    /// Every signature found, nested ones after their parent.
    pub signatures: Vec<AuthenticodeSignature>,
    /// WIN_CERTIFICATE entries of other types, skipped.
    pub other_certificates: usize,
}

/// Dotted OID → algorithm name of the digests Authenticode uses.
pub(crate) fn digest_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "1.3.14.3.2.26" => "sha1",
        "2.16.840.1.101.3.4.2.1" => "sha256",
        "2.16.840.1.101.3.4.2.2" => "sha384",
        "2.16.840.1.101.3.4.2.3" => "sha512",
        _ => return None,
    })
}

/// Digest of `data` by algorithm name.
pub(crate) fn hash(alg: &str, data: &[u8]) -> Option<Vec<u8>> {
    Some(match alg {
        "sha1" => Sha1::digest(data).to_vec(),
        "sha256" => Sha256::digest(data).to_vec(),
        "sha384" => Sha384::digest(data).to_vec(),
        "sha512" => Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

fn image_digest(img: &PeImage, data: &[u8], alg: &str) -> Result<Vec<u8>, PeError> {
    match alg {
        "sha1" => img.authenticode_digest::<Sha1>(data),
        "sha384" => img.authenticode_digest::<Sha384>(data),
        "sha512" => img.authenticode_digest::<Sha512>(data),
        _ => img.authenticode_digest::<Sha256>(data),
    }
}

/// Verifies an RSA PKCS#1 v1.5 signature over `msg` with the key of `spki_key` (an RSAPublicKey).
pub(crate) fn rsa_verify(spki_key: &[u8], alg: &str, msg: &[u8], sig: &[u8]) -> Result<(), String> {
    let digest = hash(alg, msg).ok_or_else(|| format!("unsupported digest {alg}"))?;
    rsa_verify_digest(spki_key, alg, &digest, sig)
}

/// Verifies an RSA PKCS#1 v1.5 signature over a message whose `alg` digest is `digest`.
pub(crate) fn rsa_verify_digest(
    spki_key: &[u8],
    alg: &str,
    digest: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let key = RsaPublicKey::from_pkcs1_der(spki_key).map_err(|e| format!("RSA key: {e}"))?;
    let scheme = match alg {
        "sha1" => Pkcs1v15Sign::new::<Sha1>(),
        "sha256" => Pkcs1v15Sign::new::<Sha256>(),
        "sha384" => Pkcs1v15Sign::new::<Sha384>(),
        "sha512" => Pkcs1v15Sign::new::<Sha512>(),
        _ => return Err(format!("unsupported digest {alg}")),
    };
    key.verify(scheme, digest, sig)
        .map_err(|e| format!("RSA signature: {e}"))
}

/// Digest name of an X.509 signature algorithm (RSA only).
fn cert_sig_digest(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "1.2.840.113549.1.1.5" => "sha1",
        "1.2.840.113549.1.1.11" => "sha256",
        "1.2.840.113549.1.1.12" => "sha384",
        "1.2.840.113549.1.1.13" => "sha512",
        _ => return None,
    })
}

/// Whether `issuer` signed `cert`.
fn cert_signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> Result<(), String> {
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    let alg = cert_sig_digest(&oid).ok_or_else(|| format!("unsupported signature {oid}"))?;
    rsa_verify(
        &issuer.public_key().subject_public_key.data,
        alg,
        cert.tbs_certificate.as_ref(),
        &cert.signature_value.data,
    )
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|&&x| x == 0).count();
    b.get(n..).unwrap_or(&[])
}

/// Parses and verifies every signature of a PE image against `roots`.
pub fn verify(data: &[u8], roots: &[TrustedRoot]) -> Result<PeReport, PeError> {
    let img = pe::parse(data)?;
    let sha256 = img.authenticode_digest::<Sha256>(data)?;
    let mut report = PeReport {
        pe32_plus: img.pe32_plus,
        machine: img.machine,
        subsystem: img.subsystem,
        authenticode_sha256: hex::encode(&sha256),
        ..Default::default()
    };
    let mut v = Verifier {
        img: &img,
        data,
        roots,
        sha256,
        out: Vec::new(),
    };
    for wc in img.certificates(data)? {
        if wc.cert_type != WIN_CERT_TYPE_PKCS_SIGNED_DATA {
            report.other_certificates += 1;
            continue;
        }
        v.signature(&wc.data, wc.offset, 0);
    }
    report.signatures = v.out;
    Ok(report)
}

struct Verifier<'a> {
    img: &'a PeImage,
    data: &'a [u8],
    roots: &'a [TrustedRoot],
    sha256: Vec<u8>,
    out: Vec<AuthenticodeSignature>,
}

impl Verifier<'_> {
    fn signature(&mut self, der: &[u8], offset: u64, nesting: usize) {
        let mut sig = AuthenticodeSignature {
            cert_offset: offset,
            nesting,
            ..Default::default()
        };
        let sd = match pkcs7::parse_content_info(der) {
            Ok(sd) => sd,
            Err(e) => {
                sig.problems.push(e.to_string());
                self.out.push(sig);
                return;
            }
        };
        let nested: Vec<Vec<u8>> = sd.signers.iter().flat_map(|s| s.nested.clone()).collect();
        self.check(&sd, &mut sig);
        self.out.push(sig);
        if nesting < MAX_NESTING {
            for n in nested {
                self.signature(&n, offset, nesting + 1);
            }
        }
    }

    fn check(&self, sd: &SignedData, sig: &mut AuthenticodeSignature) {
        let p = &mut sig.problems;
        if sd.content_type != OID_SPC_INDIRECT_DATA {
            p.push(format!(
                "content type {} is not SpcIndirectData",
                sd.content_type
            ));
            return;
        }
        let Some(content) = sd.content.as_deref() else {
            p.push("no SpcIndirectDataContent".into());
            return;
        };
        let Some((alg_oid, signed)) = pkcs7::spc_indirect_digest(content) else {
            p.push("SpcIndirectDataContent malformed".into());
            return;
        };
        sig.signed_digest = hex::encode(&signed);
        let Some(alg) = digest_name(&alg_oid) else {
            p.push(format!("unsupported image digest {alg_oid}"));
            return;
        };
        sig.digest_algorithm = alg.into();
        let actual = if alg == "sha256" {
            Ok(self.sha256.clone())
        } else {
            image_digest(self.img, self.data, alg)
        };
        match actual {
            Ok(d) if d == signed => {}
            Ok(d) => p.push(format!(
                "image digest {} does not match the signed {}",
                hex::encode(d),
                sig.signed_digest
            )),
            Err(e) => p.push(e.to_string()),
        }
        let Some(si) = sd.signers.first() else {
            p.push("no SignerInfo".into());
            return;
        };
        if sd.signers.len() != 1 {
            p.push(format!(
                "{} SignerInfos (Authenticode allows one)",
                sd.signers.len()
            ));
        }
        let certs = parse_bag(sd);
        let signer = find_signer(&certs, si);
        let Some((signer_der, signer)) = signer else {
            p.push("signer certificate not in the signature".into());
            return;
        };
        sig.signer = CertInfo::from_der(signer_der);
        let si_alg = digest_name(&si.digest_algorithm).unwrap_or("unsupported");
        let (Some(attrs), Some(md)) = (si.signed_attrs_for_signature(), &si.message_digest) else {
            p.push("signed attributes or messageDigest missing".into());
            return;
        };
        let content_hash = pkcs7::content_octets(content).and_then(|c| hash(si_alg, c));
        if content_hash.as_ref() != Some(md) {
            p.push("messageDigest does not match SpcIndirectDataContent".into());
        }
        if let Err(e) = rsa_verify(
            &signer.public_key().subject_public_key.data,
            si_alg,
            &attrs,
            &si.signature,
        ) {
            p.push(format!("signature over the signed attributes: {e}"));
        }
        sig.valid = p.is_empty();
        let chain = chain_to_roots(&certs, signer_der, signer, self.roots);
        sig.chain = chain.certs;
        sig.trusted_root = chain.trusted_root;
        sig.problems.extend(chain.problems);
    }
}

/// Parses the certificate bag of a SignedData, keeping each certificate's DER beside it.
pub(crate) fn parse_bag(sd: &SignedData) -> Vec<(&[u8], X509Certificate<'_>)> {
    sd.certificates
        .iter()
        .filter_map(|d| {
            X509Certificate::from_der(d)
                .ok()
                .map(|(_, c)| (d.as_slice(), c))
        })
        .collect()
}

/// The bag certificate a SignerInfo names, by issuer and serial or by subject key identifier.
pub(crate) fn find_signer<'c, 'a>(
    certs: &'c [(&'a [u8], X509Certificate<'a>)],
    si: &SignerInfo,
) -> Option<&'c (&'a [u8], X509Certificate<'a>)> {
    certs.iter().find(|(_, c)| match &si.subject_key_id {
        Some(ski) => c.extensions().iter().any(|e| {
            matches!(e.parsed_extension(), ParsedExtension::SubjectKeyIdentifier(k) if k.0 == ski.as_slice())
        }),
        None => {
            c.issuer().as_raw() == si.issuer.as_slice()
                && strip_zeros(c.raw_serial()) == strip_zeros(&si.serial)
        }
    })
}

/// How far a signer's chain got: the certificates whose links verified (signer first), the
/// configured root it reached, and what broke it.
#[derive(Debug, Default)]
pub(crate) struct ChainOutcome {
    pub(crate) certs: Vec<CertInfo>,
    pub(crate) trusted_root: Option<String>,
    pub(crate) problems: Vec<String>,
}

/// Follows issuers from the signer through the bag, then the configured roots (by SHA-1 of a
/// certificate in the chain, or by a root's DER having signed the last certificate).
pub(crate) fn chain_to_roots(
    certs: &[(&[u8], X509Certificate<'_>)],
    signer_der: &[u8],
    signer: &X509Certificate<'_>,
    roots: &[TrustedRoot],
) -> ChainOutcome {
    let root_of = |der: &[u8]| {
        let sha1 = hex::encode(Sha1::digest(der));
        roots.iter().find(|r| r.sha1 == sha1)
    };
    let mut out = ChainOutcome::default();
    let mut cur_der = signer_der;
    let mut cur = signer;
    out.certs.extend(CertInfo::from_der(signer_der));
    for _ in 0..MAX_CHAIN {
        if let Some(r) = root_of(cur_der) {
            out.trusted_root = Some(r.name.clone());
            return out;
        }
        if cur.subject().as_raw() == cur.issuer().as_raw() {
            break;
        }
        let up = certs
            .iter()
            .find(|(d, c)| c.subject().as_raw() == cur.issuer().as_raw() && *d != cur_der);
        let Some((d, c)) = up else {
            // Not in the bag: a root given by DER may have issued it.
            for r in roots {
                let Ok(der) = hex::decode(&r.der) else {
                    continue;
                };
                let Ok((_, rc)) = X509Certificate::from_der(&der) else {
                    continue;
                };
                if rc.subject().as_raw() == cur.issuer().as_raw()
                    && cert_signed_by(cur, &rc).is_ok()
                {
                    out.trusted_root = Some(r.name.clone());
                    out.certs.extend(CertInfo::from_der(&der));
                    return out;
                }
            }
            break;
        };
        if let Err(e) = cert_signed_by(cur, c) {
            out.problems.push(format!("chain: {e}"));
            break;
        }
        out.certs.extend(CertInfo::from_der(d));
        cur_der = d;
        cur = c;
    }
    out
}
