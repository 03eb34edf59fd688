//! libjcat's `.jcat` files (gzip JSON: per file, a SHA-256 and detached GPG/PKCS#7 signatures),
//! shared by the LVFS catalog reader and the cab package check, and the verdict on each blob:
//! PKCS#7 verified against the operator's roots, GPG reported as present but not verified.

use serde::{Deserialize, Serialize};

use crate::rules::TrustedRoot;
use crate::signed::{self, Verdict};

/// A jcat blob kind (libjcat `JcatBlobKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlobKind {
    /// 1: SHA-256 hex digest.
    Sha256,
    /// 2: detached GPG signature.
    Gpg,
    /// 3: PKCS#7 (CMS) signature, PEM.
    Pkcs7,
    /// 4: SHA-1 hex digest.
    Sha1,
    /// Any other kind number.
    Other(u32),
}

impl BlobKind {
    /// The kind of a jcat `Kind` number.
    pub fn from_u32(k: u32) -> Self {
        match k {
            1 => BlobKind::Sha256,
            2 => BlobKind::Gpg,
            3 => BlobKind::Pkcs7,
            4 => BlobKind::Sha1,
            n => BlobKind::Other(n),
        }
    }
}

/// One blob of a jcat item.
#[derive(Debug, Clone, Deserialize)]
pub struct JcatBlob {
    /// Kind number.
    #[serde(rename = "Kind")]
    pub kind: u32,
    /// Flags (1 = is-utf8).
    #[serde(rename = "Flags", default)]
    pub flags: u32,
    /// Unix time of signing.
    #[serde(rename = "Timestamp", default)]
    pub timestamp: Option<i64>,
    /// The digest hex or the signature text.
    #[serde(rename = "Data")]
    pub data: String,
}

/// One item of a jcat: the signatures for one file.
#[derive(Debug, Clone, Deserialize)]
pub struct JcatItem {
    /// The real file name (`firmware-07078-stable.xml.gz`).
    #[serde(rename = "Id")]
    pub id: String,
    /// Other names of the same file (`firmware.xml.gz`), libjcat's `AliasIds`.
    #[serde(rename = "AliasIds", default)]
    pub alias_ids: Vec<String>,
    /// A single alias, as some writers emit it.
    #[serde(rename = "AliasId", default)]
    pub alias_id: Option<String>,
    /// The blobs.
    #[serde(rename = "Blobs", default)]
    pub blobs: Vec<JcatBlob>,
}

impl JcatItem {
    /// Whether the item is for `name` (by `Id` or an alias).
    pub fn names(&self, name: &str) -> bool {
        self.id == name
            || self.alias_id.as_deref() == Some(name)
            || self.alias_ids.iter().any(|a| a == name)
    }

    /// The SHA-256 blob, lowercase.
    pub fn sha256(&self) -> Option<String> {
        self.blobs
            .iter()
            .find(|b| b.kind == 1)
            .map(|b| b.data.trim().to_ascii_lowercase())
    }
}

/// A parsed `.jcat` file.
#[derive(Debug, Clone, Deserialize)]
pub struct Jcat {
    /// The items.
    #[serde(rename = "Items", default)]
    pub items: Vec<JcatItem>,
}

impl Jcat {
    /// Parses the JSON (already decompressed).
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// The item for a file name (the basename of a URL is taken).
    pub fn resolve(&self, file: &str) -> Option<&JcatItem> {
        let base = basename(file);
        self.items.iter().find(|i| i.names(base))
    }
}

/// The last path segment of a URL or path, without query.
pub fn basename(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

/// What we could say about one signature blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum SignatureStatus {
    /// A PKCS#7 signature that verifies and chains to a configured root.
    Valid {
        /// Signer subject.
        signer: String,
        /// The root it chains to.
        root: String,
    },
    /// A PKCS#7 signature that verifies, under none of the configured roots.
    Untrusted {
        /// Signer subject.
        signer: String,
        /// Where the chain ended, and why.
        detail: String,
    },
    /// A PKCS#7 signature that does not verify.
    Invalid {
        /// Why.
        detail: String,
    },
    /// Present and well-formed but not checked (GPG): never a claim of validity.
    NotVerified,
    /// An algorithm we cannot verify (ML-DSA-87 of LVFS CA 2025PQ); never treated as valid.
    UnsupportedAlgorithm {
        /// The algorithm found.
        algorithm: String,
    },
    /// The blob cannot be decoded.
    Malformed {
        /// Why.
        detail: String,
    },
}

impl SignatureStatus {
    /// The verdict this status amounts to (GPG, unchecked, counts as untrusted).
    pub fn verdict(&self) -> Verdict {
        match self {
            SignatureStatus::Valid { .. } => Verdict::Valid,
            SignatureStatus::Untrusted { .. } | SignatureStatus::NotVerified => Verdict::Untrusted,
            SignatureStatus::UnsupportedAlgorithm { .. } => Verdict::UnsupportedAlgorithm,
            SignatureStatus::Invalid { .. } | SignatureStatus::Malformed { .. } => Verdict::Invalid,
        }
    }
}

/// One signature blob and its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JcatSignature {
    /// Blob kind.
    pub kind: BlobKind,
    /// Signing time.
    pub timestamp: Option<i64>,
    /// What we found.
    pub status: SignatureStatus,
}

impl From<signed::DetachedSignature> for SignatureStatus {
    fn from(s: signed::DetachedSignature) -> Self {
        match s.verdict {
            Verdict::Valid => SignatureStatus::Valid {
                signer: s.who(),
                root: s.trusted_root.unwrap_or_default(),
            },
            Verdict::Untrusted => SignatureStatus::Untrusted {
                signer: s.who(),
                detail: format!(
                    "chain ends at {}",
                    s.chain.last().map_or("the signer", |c| c.issuer.as_str())
                ),
            },
            Verdict::UnsupportedAlgorithm => SignatureStatus::UnsupportedAlgorithm {
                algorithm: s.algorithm,
            },
            Verdict::Invalid => SignatureStatus::Invalid {
                detail: s.problems.join("; "),
            },
        }
    }
}

/// Checks every signature blob of `item` over the file whose digests `digest_of` gives
/// (by algorithm name): PKCS#7 against `roots`; GPG only for its armour.
pub fn check_signatures(
    item: &JcatItem,
    digest_of: &dyn Fn(&str) -> Option<Vec<u8>>,
    roots: &[TrustedRoot],
) -> Vec<JcatSignature> {
    item.blobs
        .iter()
        .filter(|b| !matches!(b.kind, 1 | 4))
        .map(|b| {
            let kind = BlobKind::from_u32(b.kind);
            let status = match kind {
                BlobKind::Pkcs7 => match signed::pem_or_der(b.data.as_bytes()) {
                    Ok(der) => signed::verify_detached(&der, digest_of, roots).into(),
                    Err(detail) => SignatureStatus::Malformed { detail },
                },
                BlobKind::Gpg if b.data.contains("BEGIN PGP SIGNATURE") => {
                    SignatureStatus::NotVerified
                }
                BlobKind::Gpg => SignatureStatus::Malformed {
                    detail: "no PGP armour".into(),
                },
                _ => SignatureStatus::UnsupportedAlgorithm {
                    algorithm: format!("jcat-kind-{}", b.kind),
                },
            };
            JcatSignature {
                kind,
                timestamp: b.timestamp,
                status,
            }
        })
        .collect()
}

/// The verdict on a file from its blob checks: valid if any signature is valid (the bytes are
/// vouched for); else invalid if any signature fails; else the best of untrusted and
/// unsupported. `None` when nothing is signed.
pub fn summarise(sigs: &[JcatSignature]) -> Option<Verdict> {
    let verdicts: Vec<Verdict> = sigs.iter().map(|s| s.status.verdict()).collect();
    if verdicts.is_empty() {
        return None;
    }
    if verdicts.contains(&Verdict::Valid) {
        return Some(Verdict::Valid);
    }
    if verdicts.contains(&Verdict::Invalid) {
        return Some(Verdict::Invalid);
    }
    verdicts.into_iter().max()
}
