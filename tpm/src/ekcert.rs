//! EK certificates: the TPM manufacturer's statement that an endorsement key lives in one of its
//! TPMs, checked against the manufacturers' published CA certificates.
//!
//! EK certificates break the web PKI's rules (a critical SAN holding only a directoryName, the
//! TCG EKU 2.23.133.8.1, sometimes an empty subject), so the chain is walked here: each link's
//! signature, issuer/subject names, CA basicConstraints and keyCertSign on issuers, validity
//! windows (a notAfter of 9999 is fine). Intermediates come from the agent or the roots
//! directory; fetching them over AIA is out of scope (the service does no network fetches for
//! this), which is why the crate ships the vendors' published intermediates too.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid::Oid;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry as oids;
use x509_parser::pem::Pem;
use x509_parser::prelude::{ASN1Time, FromDer};
use x509_parser::x509::X509Name;

use crate::public::{PublicKey as TpmKey, TpmPublic, sec1};
use crate::x509::same_name;

/// Chains longer than this are refused (vendor chains are 2 or 3 certificates).
const MAX_DEPTH: usize = 6;
/// At most this many signatures are checked per certificate: intermediates sent by an agent
/// that all share one name must not turn the path search into a denial of service.
const MAX_SIGNATURE_CHECKS: usize = 32;

/// The roots the crate ships, one file per vendor (sources in `roots/SOURCES.md`).
const SHIPPED_ROOTS: &[(&str, &[u8])] = &[
    ("amd", include_bytes!("../roots/amd.pem")),
    ("infineon", include_bytes!("../roots/infineon.pem")),
    ("intel", include_bytes!("../roots/intel.pem")),
    ("microsoft", include_bytes!("../roots/microsoft.pem")),
    ("nsing", include_bytes!("../roots/nsing.pem")),
    ("nuvoton", include_bytes!("../roots/nuvoton.pem")),
    (
        "stmicroelectronics",
        include_bytes!("../roots/stmicroelectronics.pem"),
    ),
];

/// The vendors' published intermediate CAs, used only to build chains, never as anchors.
const SHIPPED_INTERMEDIATES: &[(&str, &[u8])] = &[
    ("amd", include_bytes!("../roots/intermediates/amd.pem")),
    (
        "infineon",
        include_bytes!("../roots/intermediates/infineon.pem"),
    ),
    ("intel", include_bytes!("../roots/intermediates/intel.pem")),
    (
        "microsoft",
        include_bytes!("../roots/intermediates/microsoft.pem"),
    ),
    ("nsing", include_bytes!("../roots/intermediates/nsing.pem")),
    (
        "nuvoton",
        include_bytes!("../roots/intermediates/nuvoton.pem"),
    ),
    (
        "stmicroelectronics",
        include_bytes!("../roots/intermediates/stmicroelectronics.pem"),
    ),
];

/// TCG OIDs (TCG EK Credential Profile for TPM 2.0).
const OID_TCG_EK_CERTIFICATE: &str = "2.23.133.8.1";
const OID_TPM_MANUFACTURER: &str = "2.23.133.2.1";
const OID_TPM_MODEL: &str = "2.23.133.2.2";
const OID_TPM_VERSION: &str = "2.23.133.2.3";
/// subjectDirectoryAttributes, where EK certificates put the TPM specification they meet.
const OID_SUBJECT_DIRECTORY_ATTRIBUTES: &str = "2.5.29.9";

/// Why a set of trust roots could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    /// A file or directory could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file that should hold certificates holds something else.
    #[error("{path}: not a certificate: {reason}")]
    BadCertificate {
        /// The offending file.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

/// The CA certificates EK certificates are checked against.
#[derive(Debug, Clone, Default)]
pub struct TrustRoots {
    anchors: Vec<Vec<u8>>,
    intermediates: Vec<Vec<u8>>,
}

impl TrustRoots {
    /// No roots at all: nothing verifies until some are added.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The vendor roots and intermediates shipped in the crate (`tpm/roots/`).
    pub fn shipped() -> Self {
        let mut roots = Self::empty();
        for (_, pem) in SHIPPED_ROOTS {
            roots.anchors.extend(pem_certificates(pem));
        }
        for (_, pem) in SHIPPED_INTERMEDIATES {
            roots.intermediates.extend(pem_certificates(pem));
        }
        roots
    }

    /// The shipped roots plus an operator's directory (see [`TrustRoots::add_dir`]).
    pub fn shipped_and_dir(dir: &Path) -> Result<Self, RootsError> {
        let mut roots = Self::shipped();
        roots.add_dir(dir)?;
        Ok(roots)
    }

    /// Adds every certificate in `dir` as a trust anchor, and every certificate in
    /// `dir/intermediates/` (if present) as a chain-building intermediate.
    ///
    /// Files ending in `.pem`, `.crt`, `.cer` or `.der` are read (PEM or DER); non-certificate
    /// PEM blocks (keys) are skipped, other files are ignored. Returns the anchors added.
    pub fn add_dir(&mut self, dir: &Path) -> Result<usize, RootsError> {
        let anchors = read_cert_dir(dir)?;
        let added = anchors.len();
        self.anchors.extend(anchors);
        let sub = dir.join("intermediates");
        if sub.is_dir() {
            self.intermediates.extend(read_cert_dir(&sub)?);
        }
        Ok(added)
    }

    /// Adds one DER certificate as a trust anchor.
    pub fn add_anchor_der(&mut self, der: &[u8]) -> Result<(), RootsError> {
        parse_exact(der).map_err(|reason| RootsError::BadCertificate {
            path: "<memory>".into(),
            reason,
        })?;
        self.anchors.push(der.to_vec());
        Ok(())
    }

    /// How many trust anchors are loaded.
    pub fn anchor_count(&self) -> usize {
        self.anchors.len()
    }

    /// How many intermediates are loaded.
    pub fn intermediate_count(&self) -> usize {
        self.intermediates.len()
    }
}

/// The TPM's identity from the EK certificate's SAN directoryName (TCG attributes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TpmManufacturer {
    /// TPMManufacturer (2.23.133.2.1), e.g. `id:49465800` for Infineon.
    pub manufacturer: Option<String>,
    /// TPMModel (2.23.133.2.2).
    pub model: Option<String>,
    /// TPMVersion (2.23.133.2.3), e.g. `id:00070002`.
    pub version: Option<String>,
}

/// What the service concludes about an EK certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EkCertVerdict {
    /// It chains to a trusted root and is currently valid.
    Trusted {
        /// The certificate's issuer, as an RFC 4514 string.
        issuer: String,
        /// The trust anchor the chain ended at.
        anchor: String,
        /// The TPM identity from the SAN, when the certificate carries one.
        manufacturer: Option<TpmManufacturer>,
    },
    /// It parses, but is not trusted (unknown issuer, bad signature, expired, wrong key...).
    Untrusted {
        /// Why not, for operators.
        reason: String,
    },
    /// It (or an intermediate sent with it) is not a well-formed certificate.
    Malformed {
        /// What was wrong.
        reason: String,
    },
}

impl EkCertVerdict {
    /// Whether the verdict is [`EkCertVerdict::Trusted`].
    pub fn is_trusted(&self) -> bool {
        matches!(self, Self::Trusted { .. })
    }
}

/// Checks that `cert_der` chains, through `intermediates` (sent by the agent) or the roots'
/// intermediates, to one of `roots`' anchors, with every certificate valid at `now`.
pub fn verify_ek_certificate(
    cert_der: &[u8],
    intermediates: &[&[u8]],
    roots: &TrustRoots,
    now: SystemTime,
) -> EkCertVerdict {
    let leaf = match parse_exact(cert_der) {
        Ok(c) => c,
        Err(reason) => return EkCertVerdict::Malformed { reason },
    };
    let mut pool = Vec::with_capacity(intermediates.len() + roots.intermediates.len());
    for (i, der) in intermediates.iter().enumerate() {
        match parse_exact(der) {
            Ok(c) => pool.push(c),
            Err(reason) => {
                return EkCertVerdict::Malformed {
                    reason: format!("intermediate #{i}: {reason}"),
                };
            }
        }
    }
    // The roots' own certificates were checked when loaded; a failure here cannot happen.
    pool.extend(
        roots
            .intermediates
            .iter()
            .filter_map(|d| parse_exact(d).ok()),
    );
    let anchors: Vec<_> = roots
        .anchors
        .iter()
        .filter_map(|d| parse_exact(d).ok())
        .collect();

    let Some(now) = asn1_time(now) else {
        return EkCertVerdict::Untrusted {
            reason: "the verification time is out of range".into(),
        };
    };
    if let Err(reason) = check_leaf(&leaf, now) {
        return EkCertVerdict::Untrusted { reason };
    }
    let mut budget = MAX_SIGNATURE_CHECKS;
    match walk(&leaf, &pool, &anchors, now, 0, &mut budget) {
        Ok(anchor) => EkCertVerdict::Trusted {
            issuer: leaf.issuer().to_string(),
            anchor,
            manufacturer: tpm_manufacturer(&leaf),
        },
        Err(reason) => EkCertVerdict::Untrusted { reason },
    }
}

/// [`verify_ek_certificate`], and also that the certificate certifies `ek`'s key: a trusted
/// certificate for some other key says nothing about this EK.
pub fn verify_endorsement(
    ek: &TpmPublic,
    cert_der: &[u8],
    intermediates: &[&[u8]],
    roots: &TrustRoots,
    now: SystemTime,
) -> EkCertVerdict {
    match certificate_key_matches(cert_der, ek) {
        Ok(true) => verify_ek_certificate(cert_der, intermediates, roots, now),
        Ok(false) => EkCertVerdict::Untrusted {
            reason: "the certificate's public key is not the EK's".into(),
        },
        Err(reason) => EkCertVerdict::Malformed { reason },
    }
}

/// Whether the certificate's subject public key is the EK public area's key (compared as
/// numbers and points, so encoding differences such as a leading zero do not matter).
pub fn certificate_key_matches(cert_der: &[u8], ek: &TpmPublic) -> Result<bool, String> {
    use x509_parser::public_key::PublicKey as CertKey;
    let cert = parse_exact(cert_der)?;
    let spki = cert.public_key();
    let parsed = spki
        .parsed()
        .map_err(|e| format!("unreadable subject public key: {e}"))?;
    Ok(match (parsed, ek.key()) {
        (CertKey::RSA(rsa), TpmKey::Rsa { modulus, exponent }) => {
            strip_zeros(rsa.modulus) == strip_zeros(modulus)
                && strip_zeros(rsa.exponent) == strip_zeros(&exponent.to_be_bytes())
        }
        (CertKey::EC(point), TpmKey::Ecc { curve, x, y }) => {
            let (oid, len) = match curve {
                0x0003 => (oids::OID_EC_P256, 32),
                0x0004 => (oids::OID_NIST_EC_P384, 48),
                _ => return Ok(false),
            };
            let same_curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|o| o == oid);
            same_curve && sec1(x, y, len).is_ok_and(|p| p == point.data())
        }
        _ => false,
    })
}

/// Cuts the padding some TPMs leave after the certificate in its NV index: the DER length of
/// the outer SEQUENCE says where the certificate ends. Returns the input if it is not DER.
pub fn trim_der_padding(bytes: &[u8]) -> &[u8] {
    match der_full_tlv(bytes) {
        Some((cert, _)) if cert.first() == Some(&0x30) => cert,
        _ => bytes,
    }
}

/// Parses one DER certificate that must fill `der` exactly.
fn parse_exact(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], _)) if !signature_algorithms_agree(der) => {
            Err("signatureAlgorithm differs from the one in the signed part".into())
        }
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )),
        Err(e) => Err(format!("not a DER X.509 certificate: {e}")),
    }
}

/// RFC 5280 §4.1.1.2: the unsigned outer signatureAlgorithm must be byte-for-byte the signed
/// one in the TBSCertificate. x509-parser reads the outer one leniently and verifies with it, so
/// without this check a tampered, unsigned field could pick the verification algorithm.
fn signature_algorithms_agree(der: &[u8]) -> bool {
    let inner_and_outer = || {
        let (cert, _) = der_tlv(der, 0x30)?;
        let (tbs, after_tbs) = der_tlv(cert, 0x30)?;
        let (outer, _) = der_full_tlv(after_tbs)?;
        let mut rest = tbs;
        if rest.first() == Some(&0xa0) {
            rest = der_full_tlv(rest)?.1; // [0] version
        }
        rest = der_full_tlv(rest)?.1; // serialNumber
        let (inner, _) = der_full_tlv(rest)?;
        Some(inner == outer)
    };
    inner_and_outer().unwrap_or(false)
}

/// The content of a DER TLV with the expected tag, and what follows it.
fn der_tlv(bytes: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (full, rest) = der_full_tlv(bytes)?;
    if full.first() != Some(&tag) {
        return None;
    }
    let header = match full.get(1)? {
        n if *n < 0x80 => 2,
        n => 2 + usize::from(n & 0x7f),
    };
    Some((full.get(header..)?, rest))
}

/// One whole DER TLV (definite lengths up to 4 length bytes), and what follows it.
fn der_full_tlv(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *bytes.get(1)?;
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = bytes
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (2 + n, len)
    };
    let end = header.checked_add(len)?;
    (end <= bytes.len()).then(|| bytes.split_at(end))
}

/// Checks that apply to the EK certificate itself.
fn check_leaf(leaf: &X509Certificate<'_>, now: ASN1Time) -> Result<(), String> {
    check_common(leaf, now)?;
    if leaf.is_ca() {
        return Err("the EK certificate is a CA certificate".into());
    }
    if let Ok(Some(eku)) = leaf.extended_key_usage() {
        let tcg = Oid::from(&[2, 23, 133, 8, 1]).map_err(|_| "bad EKU OID".to_string())?;
        if !eku.value.any && !eku.value.other.contains(&tcg) {
            return Err(format!(
                "extended key usage lacks the TCG EK certificate purpose {OID_TCG_EK_CERTIFICATE}"
            ));
        }
    }
    Ok(())
}

/// Validity window and critical extensions, for every certificate in the chain.
fn check_common(cert: &X509Certificate<'_>, now: ASN1Time) -> Result<(), String> {
    let v = cert.validity();
    if !v.is_valid_at(now) {
        return Err(format!(
            "certificate '{}' is not valid now (valid {} to {})",
            cert.subject(),
            v.not_before,
            v.not_after
        ));
    }
    for ext in cert.extensions().iter().filter(|e| e.critical) {
        // A critical extension this code does not understand must not be ignored (RFC 5280
        // §4.2); subjectDirectoryAttributes only states the TPM specification met.
        let understood = match ext.parsed_extension() {
            ParsedExtension::UnsupportedExtension { oid } => {
                oid.to_id_string() == OID_SUBJECT_DIRECTORY_ATTRIBUTES
            }
            ParsedExtension::ParseError { .. } => false,
            _ => true,
        };
        if !understood {
            return Err(format!(
                "certificate '{}' has a critical extension {} that cannot be processed",
                cert.subject(),
                ext.oid
            ));
        }
    }
    Ok(())
}

/// Follows issuers from `cert` up to an anchor; returns the anchor's subject.
fn walk(
    cert: &X509Certificate<'_>,
    pool: &[X509Certificate<'_>],
    anchors: &[X509Certificate<'_>],
    now: ASN1Time,
    depth: usize,
    budget: &mut usize,
) -> Result<String, String> {
    if depth >= MAX_DEPTH {
        return Err(format!("no trusted chain within {MAX_DEPTH} certificates"));
    }
    let issuer = cert.issuer();
    let mut last_error = None;
    for anchor in anchors.iter().filter(|a| same_name(a.subject(), issuer)) {
        spend(budget)?;
        match signed_by(cert, anchor, now) {
            Ok(()) => return Ok(anchor.subject().to_string()),
            Err(e) => last_error = Some(e),
        }
    }
    for ca in pool.iter().filter(|c| same_name(c.subject(), issuer)) {
        // A self-issued intermediate cannot make progress.
        if same_name(ca.subject(), ca.issuer()) {
            continue;
        }
        spend(budget)?;
        let step = signed_by(cert, ca, now).and_then(|()| check_common(ca, now));
        match step.and_then(|()| walk(ca, pool, anchors, now, depth + 1, budget)) {
            Ok(anchor) => return Ok(anchor),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        format!(
            "no trusted issuer '{}' for '{}'",
            cert.issuer(),
            cert.subject()
        )
    }))
}

/// Takes one signature check from the budget.
fn spend(budget: &mut usize) -> Result<(), String> {
    *budget = budget
        .checked_sub(1)
        .ok_or_else(|| format!("gave up after {MAX_SIGNATURE_CHECKS} signature checks"))?;
    Ok(())
}

/// Whether `issuer` may sign certificates and did sign `cert`.
fn signed_by(
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    now: ASN1Time,
) -> Result<(), String> {
    let name = issuer.subject();
    if !issuer.validity().is_valid_at(now) {
        return Err(format!("issuer '{name}' is not valid now"));
    }
    if !issuer.is_ca() {
        return Err(format!("issuer '{name}' is not a CA (basicConstraints)"));
    }
    if let Ok(Some(ku)) = issuer.key_usage()
        && !ku.value.key_cert_sign()
    {
        return Err(format!(
            "issuer '{name}' may not sign certificates (keyUsage)"
        ));
    }
    crate::x509::verify_signature(cert, issuer).map_err(|e| {
        format!(
            "signature of '{}' by '{name}' does not verify: {e}",
            cert.subject()
        )
    })
}

/// The TCG attributes of the SAN's directoryName.
fn tpm_manufacturer(cert: &X509Certificate<'_>) -> Option<TpmManufacturer> {
    let san = cert.subject_alternative_name().ok()??;
    let mut out = TpmManufacturer::default();
    let mut found = false;
    for name in &san.value.general_names {
        if let GeneralName::DirectoryName(dn) = name {
            found |= read_tcg_attributes(dn, &mut out);
        }
    }
    found.then_some(out)
}

fn read_tcg_attributes(dn: &X509Name<'_>, out: &mut TpmManufacturer) -> bool {
    let mut found = false;
    for attr in dn.iter_attributes() {
        let slot = match attr.attr_type().to_id_string().as_str() {
            OID_TPM_MANUFACTURER => &mut out.manufacturer,
            OID_TPM_MODEL => &mut out.model,
            OID_TPM_VERSION => &mut out.version,
            _ => continue,
        };
        if let Ok(s) = attr.as_str() {
            *slot = Some(s.to_string());
            found = true;
        }
    }
    found
}

fn asn1_time(t: SystemTime) -> Option<ASN1Time> {
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    ASN1Time::from_timestamp(i64::try_from(secs).ok()?).ok()
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

/// The DER of every CERTIFICATE block in a PEM text (other blocks and comments skipped).
fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

/// Reads the certificates of one directory level (not recursive).
fn read_cert_dir(dir: &Path) -> Result<Vec<Vec<u8>>, RootsError> {
    let io = |source| RootsError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !path.is_file() || !matches!(ext, "pem" | "crt" | "cer" | "der") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|source| RootsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let bad = |reason: String| RootsError::BadCertificate {
            path: path.display().to_string(),
            reason,
        };
        if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            for der in pem_certificates(&bytes) {
                parse_exact(&der).map_err(bad)?;
                out.push(der);
            }
        } else {
            parse_exact(&bytes).map_err(bad)?;
            out.push(bytes);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped intermediate chains to a shipped root with this module's own checks: the
    /// chain logic works on the vendors' real certificates, and the bundle is coherent.
    #[test]
    fn shipped_intermediates_chain_to_shipped_roots() {
        let roots = TrustRoots::shipped();
        let anchors: Vec<_> = roots
            .anchors
            .iter()
            .filter_map(|d| parse_exact(d).ok())
            .collect();
        let pool: Vec<_> = roots
            .intermediates
            .iter()
            .filter_map(|d| parse_exact(d).ok())
            .collect();
        assert_eq!(anchors.len(), roots.anchors.len(), "every root parses");
        assert_eq!(
            pool.len(),
            roots.intermediates.len(),
            "every intermediate parses"
        );
        let mut failures = Vec::new();
        for ca in &pool {
            // Now, or inside the certificate's own window if it has expired, so expired vendor
            // CAs still exercise the signature and name checks.
            let now = asn1_time(SystemTime::now()).expect("now");
            let t = if ca.validity().is_valid_at(now) {
                now
            } else {
                let t = ASN1Time::from_timestamp(ca.validity().not_after.timestamp() - 86_400);
                let Ok(t) = t else { continue };
                t
            };
            let mut budget = MAX_SIGNATURE_CHECKS;
            let chain =
                check_common(ca, t).and_then(|()| walk(ca, &pool, &anchors, t, 0, &mut budget));
            if let Err(e) = chain {
                failures.push(format!("{}: {e}", ca.subject()));
            }
        }
        for f in &failures {
            eprintln!("{f}");
        }
        assert!(
            failures.is_empty(),
            "{} of {} fail",
            failures.len(),
            pool.len()
        );
    }

    #[test]
    fn trim_der_padding_keeps_non_der_input() {
        assert_eq!(trim_der_padding(b""), b"");
        assert_eq!(trim_der_padding(&[0x30, 0x82, 0xff]), &[0x30, 0x82, 0xff]);
        assert_eq!(
            trim_der_padding(&[0x30, 0x01, 0x05, 0xff, 0xff]),
            &[0x30, 0x01, 0x05]
        );
    }
}
