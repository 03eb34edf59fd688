//! Hashing as bytes arrive: SHA-256 always, plus the catalog's own MD5/SHA-1 when it has one.

use md5::Md5;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// A hash algorithm a catalog may announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    /// SHA-256: the store's address and the only strong catalog hash.
    Sha256,
    /// SHA-1: weak provenance (some vendor catalogs).
    Sha1,
    /// MD5: weak provenance (Dell `hashMD5`, Supermicro `checksum.txt`).
    Md5,
}

impl std::fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha1 => "sha1",
            HashAlgorithm::Md5 => "md5",
        })
    }
}

/// The digests of one blob (lowercase hex); sha1/md5 only when they were computed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashes {
    /// SHA-256, always present.
    pub sha256: String,
    /// SHA-1, when a source announced one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    /// MD5, when a source announced one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
}

/// What a catalog entry announces about a blob, checked before anything lands under `blobs/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// Announced SHA-256 (any case; compared lowercase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Announced SHA-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    /// Announced MD5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// Announced size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl Expected {
    /// Checks `size` and `hashes` against the announcement: the FW-INT-001 gate.
    pub fn check(&self, size: u64, hashes: &Hashes) -> Result<(), StoreError> {
        if let Some(expected) = self.size
            && expected != size
        {
            return Err(StoreError::SizeMismatch {
                expected,
                actual: size,
            });
        }
        let pairs = [
            (HashAlgorithm::Sha256, &self.sha256, Some(&hashes.sha256)),
            (HashAlgorithm::Sha1, &self.sha1, hashes.sha1.as_ref()),
            (HashAlgorithm::Md5, &self.md5, hashes.md5.as_ref()),
        ];
        for (algorithm, expected, actual) in pairs {
            let Some(expected) = expected else { continue };
            let expected = expected.trim().to_ascii_lowercase();
            let actual = actual.cloned().unwrap_or_default();
            if expected != actual {
                return Err(StoreError::ChecksumMismatch {
                    algorithm,
                    expected,
                    actual,
                    actual_sha256: hashes.sha256.clone(),
                });
            }
        }
        Ok(())
    }
}

/// SHA-256 plus the optional weak hashes, fed chunk by chunk.
#[derive(Clone)]
pub(crate) struct MultiHasher {
    sha256: Sha256,
    sha1: Option<Sha1>,
    md5: Option<Md5>,
}

impl MultiHasher {
    /// A hasher computing SHA-256 and whichever weak hashes `expected` announces.
    pub(crate) fn for_expected(expected: &Expected) -> Self {
        MultiHasher {
            sha256: Sha256::new(),
            sha1: expected.sha1.as_ref().map(|_| Sha1::new()),
            md5: expected.md5.as_ref().map(|_| Md5::new()),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        if let Some(h) = self.sha1.as_mut() {
            h.update(data);
        }
        if let Some(h) = self.md5.as_mut() {
            h.update(data);
        }
    }

    pub(crate) fn finish(self) -> Hashes {
        Hashes {
            sha256: hex::encode(self.sha256.finalize()),
            sha1: self.sha1.map(|h| hex::encode(h.finalize())),
            md5: self.md5.map(|h| hex::encode(h.finalize())),
        }
    }
}

/// Checks that `s` is a SHA-256 digest in lowercase hex (it becomes part of object paths).
pub fn validate_sha256(s: &str) -> Result<(), StoreError> {
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(StoreError::InvalidDigest(s.chars().take(80).collect()))
    }
}
