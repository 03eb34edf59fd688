//! `manifests/<sha256>.json`: where a blob came from, how far it is trusted, and its last scan.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::hash::{Expected, Hashes};

/// How far a blob's bytes are vouched for; ordered weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntegrityState {
    /// No source announced any hash (an import, a bare URL).
    Unverified,
    /// Only MD5/SHA-1 matched (FW-INT-002 territory).
    WeakMd5Sha1,
    /// A source announced the SHA-256 and it matched.
    VerifiedSha256,
    /// A package signature verified against the operator's roots.
    VerifiedSignature,
}

impl IntegrityState {
    /// The state one source's announcement gives (after [`Expected::check`] passed).
    pub fn from_expected(expected: &Expected) -> Self {
        if expected.sha256.is_some() {
            IntegrityState::VerifiedSha256
        } else if expected.sha1.is_some() || expected.md5.is_some() {
            IntegrityState::WeakMd5Sha1
        } else {
            IntegrityState::Unverified
        }
    }

    /// Whether this state alone allows flashing.
    pub fn is_verified(self) -> bool {
        matches!(
            self,
            IntegrityState::VerifiedSha256 | IntegrityState::VerifiedSignature
        )
    }
}

/// How a source handed the blob over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Fetched over HTTP(S) from a catalog entry or URL.
    Download,
    /// `firmware import` from a local file (air-gapped sites).
    Import,
}

/// One provenance record: a catalog entry, URL or import that yielded these exact bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Download or import.
    pub kind: SourceKind,
    /// The catalog's name, when it came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// The catalog entry id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// The URL fetched, or the imported file's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When the bytes arrived.
    pub fetched_at: DateTime<Utc>,
    /// What the source announced.
    pub expected: Expected,
    /// What the bytes hashed to.
    pub hashes: Hashes,
    /// Bytes received.
    pub size: u64,
    /// The server's ETag, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl Source {
    fn same_origin(&self, other: &Source) -> bool {
        self.kind == other.kind
            && self.catalog == other.catalog
            && self.entry == other.entry
            && self.url == other.url
    }
}

/// The outcome of a package-signature check (jcat PKCS#7, DUP Authenticode, `.compsig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureState {
    /// Nobody checked yet.
    #[default]
    NotChecked,
    /// The package carries no signature.
    Missing,
    /// Signed and verified under the configured roots.
    Valid,
    /// A signature that does not verify.
    Invalid,
    /// Verifies, but the signer is not under the configured roots.
    Untrusted,
    /// An algorithm we cannot verify (e.g. ML-DSA-87 without support): never reported as valid.
    UnsupportedAlgorithm,
}

/// A signature status with who signed and when it was checked.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SignatureStatus {
    /// The verdict.
    pub state: SignatureState,
    /// Signer subject or the failure's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When it was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<DateTime<Utc>>,
}

/// The last scan of the blob, filled by the scanner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanRecord {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// The rule pack's version (opaque to the store).
    pub rule_pack: serde_json::Value,
    /// The scanner's summary (opaque to the store).
    #[serde(default)]
    pub result: serde_json::Value,
}

/// Why and by whom an artifact is held back from installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    /// The reason (a rule id for automatic quarantines).
    pub reason: String,
    /// Who: an operator, or `scanner`.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// One entry of the quarantine audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEvent {
    /// `quarantine` or `release`.
    pub action: String,
    /// The reason given.
    pub reason: String,
    /// Who acted.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Everything the store knows about one blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The blob's address.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it first landed.
    pub created_at: DateTime<Utc>,
    /// Every source that yielded these bytes.
    pub sources: Vec<Source>,
    /// The best integrity any source or signature gives.
    pub integrity: IntegrityState,
    /// The package-signature verdict.
    #[serde(default)]
    pub signature: SignatureStatus,
    /// The last scan, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan: Option<ScanRecord>,
    /// Set while the blob is quarantined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<Quarantine>,
    /// Quarantines and releases, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quarantine_log: Vec<QuarantineEvent>,
}

impl Manifest {
    /// A fresh manifest for a blob first stored from `source`.
    pub fn new(source: Source) -> Self {
        let mut m = Manifest {
            sha256: source.hashes.sha256.clone(),
            size: source.size,
            created_at: source.fetched_at,
            sources: Vec::new(),
            integrity: IntegrityState::Unverified,
            signature: SignatureStatus::default(),
            last_scan: None,
            quarantine: None,
            quarantine_log: Vec::new(),
        };
        m.add_source(source);
        m
    }

    /// Records a source (replacing an earlier record of the same origin) and re-derives integrity.
    pub fn add_source(&mut self, source: Source) {
        if let Some(existing) = self.sources.iter_mut().find(|s| s.same_origin(&source)) {
            *existing = source;
        } else {
            self.sources.push(source);
        }
        self.recompute_integrity();
    }

    /// Sets the signature verdict and re-derives integrity.
    pub fn set_signature(&mut self, status: SignatureStatus) {
        self.signature = status;
        self.recompute_integrity();
    }

    fn recompute_integrity(&mut self) {
        let from_sources = self
            .sources
            .iter()
            .map(|s| IntegrityState::from_expected(&s.expected))
            .max()
            .unwrap_or(IntegrityState::Unverified);
        self.integrity = if self.signature.state == SignatureState::Valid {
            IntegrityState::VerifiedSignature
        } else {
            from_sources
        };
    }
}

/// Whether a blob may be flashed: verified (SHA-256 or signature) or operator-overridden, and not quarantined.
///
/// `allow_unverified` is the operator's override for `weak-md5-sha1`/`unverified` blobs; it does
/// not lift a quarantine (that takes `firmware release`).
pub fn is_installable(manifest: &Manifest, allow_unverified: bool) -> bool {
    manifest.quarantine.is_none() && (manifest.integrity.is_verified() || allow_unverified)
}
