//! Package signatures (PKG-SIG-001/002/003): the signature a vendor puts on the whole package,
//! as opposed to the EFI binaries inside it. An LVFS `.cab` carries a `.jcat` whose PKCS#7
//! blobs sign each payload member; a Dell DUP is a Windows PE signed with Authenticode. Both are
//! checked against the rule pack's package roots, and the top-level verdict feeds the store's
//! `verified-signature` integrity state.

use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::signed::Verdict;

/// Rule id: a package without a signature of its own.
pub const PKG_SIG_001: &str = "PKG-SIG-001";
/// Rule id: a package signature that does not verify.
pub const PKG_SIG_002: &str = "PKG-SIG-002";
/// Rule id: a package signature under none of the configured roots (or one we cannot check).
pub const PKG_SIG_003: &str = "PKG-SIG-003";

/// The package's own signature, as the top-level container of a scan found it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSignature {
    /// `cab-jcat` or `dup-authenticode`.
    pub format: String,
    /// The verdict; `None` when the package carries no signature.
    pub verdict: Option<Verdict>,
    /// Signer subject of the signature the verdict rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// The configured root it chains to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
    /// What was checked, or what failed.
    pub detail: String,
}

impl PackageSignature {
    /// `missing`, `invalid`, `untrusted`, `unsupported-algorithm` or `valid`.
    pub fn state(&self) -> &'static str {
        self.verdict.map_or("missing", Verdict::as_str)
    }
}

/// The digests a detached signature over one member may ask for, computed once per member.
#[derive(Clone, Debug)]
pub(crate) struct Digests {
    sha1: Vec<u8>,
    sha256: Vec<u8>,
    sha384: Vec<u8>,
    sha512: Vec<u8>,
}

impl Digests {
    pub(crate) fn of(data: &[u8]) -> Self {
        Digests {
            sha1: Sha1::digest(data).to_vec(),
            sha256: Sha256::digest(data).to_vec(),
            sha384: Sha384::digest(data).to_vec(),
            sha512: Sha512::digest(data).to_vec(),
        }
    }

    /// By algorithm name, the shape `signed::verify_detached` asks for.
    pub(crate) fn get(&self, alg: &str) -> Option<Vec<u8>> {
        Some(
            match alg {
                "sha1" => &self.sha1,
                "sha256" => &self.sha256,
                "sha384" => &self.sha384,
                "sha512" => &self.sha512,
                _ => return None,
            }
            .clone(),
        )
    }

    /// SHA-256, lowercase hex (what a jcat's Kind 1 blob holds).
    pub(crate) fn sha256_hex(&self) -> String {
        hex::encode(&self.sha256)
    }
}

/// The rule a verdict gives, with its severity; `None` for a valid signature.
pub(crate) fn rule_for(verdict: Option<Verdict>) -> Option<(&'static str, crate::Severity)> {
    use crate::Severity;
    match verdict {
        None => Some((PKG_SIG_001, Severity::Medium)),
        Some(Verdict::Invalid) => Some((PKG_SIG_002, Severity::High)),
        Some(Verdict::Untrusted | Verdict::UnsupportedAlgorithm) => {
            Some((PKG_SIG_003, Severity::Medium))
        }
        Some(Verdict::Valid) => None,
    }
}
