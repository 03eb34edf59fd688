//! Firmware blob scanning: archives (gzip, zstd, xz, zip, cab), capsules, PE images with their
//! Authenticode signatures, UEFI firmware volumes, FFS files and sections (with LZMA), edk2
//! variable stores and their Secure Boot signature lists, and the rules (YARA's among them) that
//! turn them into findings with evidence. Nothing read from a blob may panic: every length is
//! checked.

pub mod advisory;
pub mod archive;
pub mod authenticode;
pub mod bench;
pub mod capsule;
pub mod cert;
pub mod esl;
pub mod ffs;
pub mod fv;
pub mod guid;
pub mod jcat;
pub mod keys;
pub mod lzma;
pub mod package;
pub mod pe;
pub mod pkcs7;
pub mod report;
pub mod rot;
pub mod rules;
pub mod section;
pub mod signed;
pub mod testkit;
pub mod tiano;
pub mod vss;
pub mod yara;

mod der;
mod util;
mod walk;

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use authenticode::{AuthenticodeSignature, PeReport};
pub use esl::{SignatureData, SignatureEntry, parse_signature_lists};
pub use guid::Guid;
pub use report::{
    Evidence, Finding, Node, ScanIssue, ScanReport, SecureBootSummary, Severity, Source,
};
pub use rules::{
    RulePack, RulePackError, SecureBootDb, TrustedRoot, secure_boot_findings,
    secure_boot_findings_at,
};

/// Rule id for truncated or corrupt containers.
pub const FW_FMT_001: &str = "FW-FMT-001";
/// Rule id for unpack limits hit.
pub const FW_FMT_002: &str = "FW-FMT-002";

/// Rule id: an EFI binary without any Authenticode signature.
pub const PE_SIG_001: &str = "PE-SIG-001";
/// Rule id: an Authenticode signature that does not verify.
pub const PE_SIG_002: &str = "PE-SIG-002";
/// Rule id: a valid signature whose chain reaches none of the configured roots.
pub const PE_SIG_003: &str = "PE-SIG-003";
/// Rule id: the image's Authenticode hash is in the dbx reference.
pub const PE_DBX_001: &str = "PE-DBX-001";
/// Rule id: capsule header or FMP structure inconsistent with the file.
pub const CAP_001: &str = "CAP-001";
/// Rule id: FMP image without (valid) authentication.
pub const CAP_002: &str = "CAP-002";

/// Unpack bounds, so a hostile blob cannot exhaust memory or time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Deepest nesting of containers (FVs, compressed streams).
    pub max_depth: u32,
    /// Total bytes produced by decompression.
    pub max_total_bytes: u64,
    /// Largest output/input ratio of one decompression.
    pub max_ratio: u64,
    /// Most containers visited.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 8,
            max_total_bytes: 4 << 30,
            max_ratio: 100,
            max_entries: 10_000,
        }
    }
}

/// Why `scan_path` could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The current UNIX time (SB-CERT-001 compares certificate expiry to it).
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Scans one blob with the rules, now.
pub fn scan(bytes: &[u8], name: &str, rules: &RulePack, limits: &Limits) -> ScanReport {
    scan_at(bytes, name, rules, limits, now_unix())
}

/// Reads and scans a file (the `firmware scan FILE` entry point).
pub fn scan_path(path: &Path, rules: &RulePack, limits: &Limits) -> Result<ScanReport, ScanError> {
    let bytes = std::fs::read(path).map_err(|source| ScanError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(scan(&bytes, &name, rules, limits))
}

/// Scans one blob as of UNIX time `now` (deterministic tests, rescans of history).
pub fn scan_at(
    bytes: &[u8],
    name: &str,
    rules: &RulePack,
    limits: &Limits,
    now: i64,
) -> ScanReport {
    // A pack is checked when installed; one whose rules stopped compiling (or one built in
    // code with broken rules) scans without them, and the report says so.
    let (compiled, yara_note) = match yara::rules_for(&rules.yara) {
        Ok(c) => (c, None),
        Err(e) => (None, Some(format!("YARA rules not run: {e}"))),
    };
    let mut w = walk::Walker::new(limits, rules, compiled.as_deref());
    w.notes.extend(yara_note);
    w.yara_scan(bytes, "");
    let tree = w.scan_blob(bytes, "", 0);
    let mut report = ScanReport {
        name: name.to_string(),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
        rule_pack: rules.version.clone(),
        tree,
        ..Default::default()
    };
    let mut sb_issues = Vec::new();
    for (path, store) in &w.stores {
        if !store.has_secure_boot_state() {
            continue;
        }
        let db = store.secure_boot(path, &mut sb_issues);
        report.secure_boot.push(SecureBootSummary {
            path: path.clone(),
            variables: db.summary(),
        });
        report.findings.extend(secure_boot_findings_at(
            &db,
            Source::Blob,
            rules,
            now,
            Some(path),
        ));
    }
    w.corrupt.extend(sb_issues);
    report.findings.append(&mut w.findings);
    report.findings.extend(blob_rules(bytes, rules));
    for (rule, issues) in [(FW_FMT_001, &w.corrupt), (FW_FMT_002, &w.limited)] {
        for i in issues {
            report.findings.push(Finding {
                rule_id: rule.to_string(),
                severity: Severity::Medium,
                source: Source::Blob,
                subject: i.message.clone(),
                evidence: Evidence {
                    container_path: Some(if i.path.is_empty() {
                        "/".into()
                    } else {
                        i.path.clone()
                    }),
                    offset: Some(i.offset),
                    detail: Some(i.message.clone()),
                    ..Default::default()
                },
                rule_pack: rules.version.clone(),
            });
        }
    }
    report.package = w.package.take();
    report.errors = w.corrupt.into_iter().chain(w.limited).collect();
    report.notes = w.notes;
    let mut seen = BTreeSet::new();
    report.findings.retain(|f| {
        seen.insert((
            f.rule_id.clone(),
            f.subject.clone(),
            f.evidence.container_path.clone(),
            f.evidence.offset,
        ))
    });
    report
}

/// The rules that look at the blob's bytes as a whole: leaked keys (KEY-LEAK-001) and a full
/// SPI image's root of trust (HW-ROT-001). (YARA runs in the walker: over the blob and every
/// stream it decompresses.)
fn blob_rules(bytes: &[u8], rules: &RulePack) -> Vec<Finding> {
    let finding = |rule: &str, severity, subject: String, offset: u64, detail: String| Finding {
        rule_id: rule.to_string(),
        severity,
        source: Source::Blob,
        subject,
        evidence: Evidence {
            container_path: Some("/".into()),
            offset: Some(offset),
            detail: Some(detail),
            ..Default::default()
        },
        rule_pack: rules.version.clone(),
    };
    let mut out = Vec::new();
    let matcher = keys::matcher_for(&rules.leaked_keys);
    for hit in matcher.find(bytes) {
        if let Some(k) = rules.leaked_keys.get(hit.key) {
            out.push(finding(
                keys::KEY_LEAK_001,
                Severity::Critical,
                format!("leaked key material: {}", k.name),
                hit.offset,
                format!("{} ({})", k.description, k.source),
            ));
        }
    }
    if let Some(gap) = rot::check(bytes) {
        out.push(finding(
            rot::HW_ROT_001,
            Severity::Info,
            "full SPI image without a hardware root of trust configuration".into(),
            gap.offset,
            gap.detail,
        ));
    }
    out
}
