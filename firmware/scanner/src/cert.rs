//! The certificate facts rules and evidence need, read once with x509-parser.

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Subject, issuer, fingerprint and expiry of one DER certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// Subject, RFC 4514 style (`CN=…, O=…`).
    pub subject: String,
    /// Issuer, same style.
    pub issuer: String,
    /// Subject common names.
    pub subject_cns: Vec<String>,
    /// SHA-1 of the DER, lowercase hex (the thumbprint test-key lists use).
    pub sha1: String,
    /// notAfter as UNIX seconds.
    pub not_after: i64,
}

impl CertInfo {
    /// Parses DER; `None` when it is not a certificate (the entry is then reported as such).
    pub fn from_der(der: &[u8]) -> Option<CertInfo> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject_cns = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect();
        Some(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            subject_cns,
            sha1: hex::encode(Sha1::digest(der)),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// Whether the subject's CN (or, lacking one, the subject text) equals `name`.
    pub fn is_named(&self, name: &str) -> bool {
        self.subject_cns.iter().any(|cn| cn == name)
    }
}
