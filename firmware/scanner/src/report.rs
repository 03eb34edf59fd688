//! What a scan returns: the container tree, findings with evidence, and parse errors, all serde.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// How bad a finding is; the order is the escalation order (critical quarantines an artifact).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, no action required (UEFI does not enforce certificate time).
    Info,
    /// Weakens the platform; fix in the normal update cycle.
    Medium,
    /// Exposes the platform to a known attack or imminent breakage.
    High,
    /// Secure Boot is void (test or leaked keys) or the blob is not what it claims.
    Critical,
}

impl Severity {
    /// The lowercase name used in topics, tables and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl Source {
    /// The lowercase name used in topics, tables and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Blob => "blob",
            Source::Redfish => "redfish",
            Source::Efivars => "efivars",
            Source::Inventory => "inventory",
        }
    }
}

/// Where the Secure Boot data came from, so one rule set serves blobs and live servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A firmware image or variable store scanned offline.
    Blob,
    /// A BMC's Redfish `SecureBootDatabases`.
    Redfish,
    /// The in-band agent's `/sys/firmware/efi/efivars`.
    Efivars,
    /// A server's installed firmware versions from the inventory (VULN-* advisories).
    Inventory,
}

/// The facts behind a finding; every field optional because sources differ in what they know.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Container path inside the blob (`fv[0]/file …/section[1]`), or the variable for live data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_path: Option<String>,
    /// Byte offset inside the buffer named by `container_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The Secure Boot variable (`PK`, `KEK`, `db`, `dbx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variable: Option<String>,
    /// Certificate subject (RFC 4514 style).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_subject: Option<String>,
    /// Certificate issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_issuer: Option<String>,
    /// Certificate SHA-1 fingerprint, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha1: Option<String>,
    /// Certificate notAfter, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_not_after: Option<String>,
    /// A hash the rule is about (dbx entries), lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Free-text detail (counts, the parse error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One rule hit, in the shape of the `firmware.findings` topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Fixed rule id (`SB-PK-001`, `FW-FMT-001`, …).
    pub rule_id: String,
    /// The rule's fixed severity.
    pub severity: Severity,
    /// Blob, Redfish or efivars.
    pub source: Source,
    /// What the finding is about, in one line.
    pub subject: String,
    /// The facts.
    pub evidence: Evidence,
    /// Version of the rule pack that produced it.
    pub rule_pack: String,
}

/// One container in the unpacked tree (FV, FFS file, section, variable store, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Format name: `fv`, `ffs`, `section:pe32`, `vss2`, `esl`, ….
    pub format: String,
    /// Path from the blob root.
    pub path: String,
    /// Offset inside the buffer of the parent container (decompressed data starts a new buffer).
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// FV file-system GUID, FFS file name GUID, or GUID-defined section GUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guid: Option<String>,
    /// A human name when the firmware carries one (UI section, variable name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Format-specific detail (file type, state, compression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Contained nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

/// A structural problem met while walking; each also becomes an `FW-FMT-00x` finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanIssue {
    /// Container path where it happened.
    pub path: String,
    /// Offset inside that container's buffer.
    pub offset: u64,
    /// What was wrong.
    pub message: String,
}

/// The PK/KEK/db/dbx summary of one variable store (feeds `firmware.secureboot`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecureBootSummary {
    /// Path of the variable store.
    pub path: String,
    /// Certificates and hashes per variable.
    pub variables: Vec<VariableSummary>,
}

/// One Secure Boot variable's content in short.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariableSummary {
    /// `PK`, `KEK`, `db` or `dbx`.
    pub name: String,
    /// Whether the variable exists at all.
    pub present: bool,
    /// Certificate subjects, in order.
    pub cert_subjects: Vec<String>,
    /// Number of SHA-256 entries.
    pub sha256_count: usize,
    /// Number of entries of other types.
    pub other_count: usize,
}

/// Everything one scan found about one blob.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    /// The name the caller gave (file name or sha256).
    pub name: String,
    /// Blob size in bytes.
    pub size: u64,
    /// SHA-256 of the blob, lowercase hex.
    pub sha256: String,
    /// Rule pack version used.
    pub rule_pack: String,
    /// Top-level containers found.
    pub tree: Vec<Node>,
    /// Rule hits.
    pub findings: Vec<Finding>,
    /// Structural problems.
    pub errors: Vec<ScanIssue>,
    /// Things skipped without a finding (unsupported compression, …).
    pub notes: Vec<String>,
    /// Secure Boot summary of each variable store found.
    pub secure_boot: Vec<SecureBootSummary>,
    /// The top-level package's own signature (a cab's jcat, a DUP's Authenticode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<crate::package::PackageSignature>,
}

impl ScanReport {
    /// The distinct rule ids hit, sorted: what expected-findings files compare.
    pub fn rule_ids(&self) -> BTreeSet<String> {
        self.findings.iter().map(|f| f.rule_id.clone()).collect()
    }

    /// The worst severity, `None` when there is no finding.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// All nodes depth-first, for listings and agreement tests.
    pub fn nodes(&self) -> Vec<&Node> {
        fn walk<'a>(n: &'a Node, out: &mut Vec<&'a Node>) {
            out.push(n);
            for c in &n.children {
                walk(c, out);
            }
        }
        let mut out = Vec::new();
        for n in &self.tree {
            walk(n, &mut out);
        }
        out
    }

    /// GUIDs of every node of `format` (`fv` or `ffs`), depth-first.
    pub fn guids_of(&self, format: &str) -> Vec<String> {
        self.nodes()
            .into_iter()
            .filter(|n| n.format == format)
            .filter_map(|n| n.guid.clone())
            .collect()
    }
}
