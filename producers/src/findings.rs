//! `firmware.findings` records, for stored blobs and live servers, and the live Secure Boot
//! check: a BMC's Redfish keys go through the same `SB-*` rules as a blob's variable store.
//!
//! A server's findings are published when they change: a new finding as `open`, one that went
//! away (the KEK 2023 was enrolled) as `resolved`. The newest record per server, rule and
//! subject is the finding's state; the collector remembers what it published so a sweep that
//! finds the same keys publishes nothing. After a restart the open findings are published once
//! again (same state, a new `first_seen`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use automata_agent::efivars::EfiSecureBoot;
use automata_bmc::redfish::secureboot::SecureBootState;
use automata_fwscan::{
    Finding, Guid, RulePack, SecureBootDb, SignatureData, SignatureEntry, Source,
    parse_signature_lists, secure_boot_findings,
};
use automata_schemas::types::{FirmwareFinding, SecureBootSnapshot, SecureBootVariable};

/// `EFI_CERT_SHA256_GUID`.
const EFI_CERT_SHA256: &str = "c1c41626-504c-4092-aca9-41f936934328";

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A stored firmware blob (target: its SHA-256).
    Blob,
    /// A live server (target: its SMBIOS UUID).
    Server,
}

/// One scanner finding as a `firmware.findings` record.
pub fn finding_record(
    target: &str,
    kind: TargetKind,
    f: &Finding,
    first_seen: i64,
) -> FirmwareFinding {
    let e = &f.evidence;
    FirmwareFinding {
        target: target.to_string(),
        target_kind: match kind {
            TargetKind::Blob => "blob",
            TargetKind::Server => "server",
        }
        .into(),
        rule_id: f.rule_id.clone(),
        severity: f.severity.as_str().into(),
        source: f.source.as_str().into(),
        subject: f.subject.clone(),
        container_path: e.container_path.clone(),
        offset: e.offset.and_then(|o| i64::try_from(o).ok()),
        variable: e.variable.clone(),
        cert_subject: e.cert_subject.clone(),
        cert_issuer: e.cert_issuer.clone(),
        cert_sha1: e.cert_sha1.clone(),
        cert_not_after: e.cert_not_after.clone(),
        hash: e.hash.clone(),
        detail: e.detail.clone(),
        rule_pack: f.rule_pack.clone(),
        first_seen,
        state: "open".into(),
    }
}

/// A BMC's Secure Boot databases as the scanner's [`SecureBootDb`]: certificates as X.509
/// entries, SHA-256 signatures as hashes; a database the BMC does not report is absent.
pub fn redfish_db(state: &SecureBootState) -> SecureBootDb {
    let list = |id: &str| {
        state.database(id).map(|d| {
            let certs = d.certificates.iter().map(|der| SignatureEntry {
                owner: Guid([0; 16]),
                data: SignatureData::X509 { der: der.clone() },
            });
            let sigs = d.signatures.iter().map(|s| SignatureEntry {
                owner: Guid([0; 16]),
                data: if is_sha256(&s.signature_type) && s.data.len() == 32 {
                    SignatureData::Sha256 {
                        hash: s.data.clone(),
                    }
                } else {
                    SignatureData::Other {
                        signature_type: Guid::parse(&s.signature_type).unwrap_or(Guid([0; 16])),
                        data: s.data.clone(),
                    }
                },
            });
            certs.chain(sigs).collect::<Vec<_>>()
        })
    };
    SecureBootDb {
        pk: list("PK"),
        kek: list("KEK"),
        db: list("db"),
        dbx: list("dbx"),
    }
}

/// One live server's Secure Boot keys and state, from whichever side read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveKeys {
    /// Redfish (out of band) or efivars (the agent).
    pub source: Source,
    /// PK, KEK, db, dbx.
    pub db: SecureBootDb,
    /// Whether Secure Boot is enabled.
    pub enabled: Option<bool>,
    /// Enabled or Disabled for the current boot.
    pub current_boot: Option<String>,
    /// SetupMode, UserMode, AuditMode, DeployedMode.
    pub mode: Option<String>,
}

impl LiveKeys {
    /// The keys a BMC reported over Redfish.
    pub fn from_redfish(state: &SecureBootState) -> Self {
        LiveKeys {
            source: Source::Redfish,
            db: redfish_db(state),
            enabled: state.enabled,
            current_boot: state.current_boot.clone(),
            mode: state.mode.clone(),
        }
    }

    /// The keys the agent read from efivarfs, with a note per variable that did not parse (its
    /// entries up to the damage are kept).
    pub fn from_efivars(efi: &EfiSecureBoot) -> (Self, Vec<String>) {
        let mut notes = Vec::new();
        let mut list = |name: &str| {
            let data = efi.variables.get(name).cloned().flatten()?;
            match parse_signature_lists(&data) {
                Ok(entries) => Some(entries),
                Err(e) => {
                    notes.push(format!("efivars {name}: {e}"));
                    Some(Vec::new())
                }
            }
        };
        let db = SecureBootDb {
            pk: list("PK"),
            kek: list("KEK"),
            db: list("db"),
            dbx: list("dbx"),
        };
        let keys = LiveKeys {
            source: Source::Efivars,
            db,
            enabled: efi.secure_boot,
            current_boot: efi
                .secure_boot
                .map(|on| if on { "Enabled" } else { "Disabled" }.to_string()),
            mode: efi
                .setup_mode
                .map(|setup| if setup { "SetupMode" } else { "UserMode" }.to_string()),
        };
        (keys, notes)
    }
}

/// Redfish names the type (`EFI_CERT_SHA256_GUID`); some BMCs give the GUID itself.
fn is_sha256(kind: &str) -> bool {
    kind.eq_ignore_ascii_case("EFI_CERT_SHA256_GUID") || kind.eq_ignore_ascii_case(EFI_CERT_SHA256)
}

/// What was last published for one server.
#[derive(Debug, Default)]
struct Published {
    findings: BTreeMap<(String, String), FirmwareFinding>,
    snapshot: Option<SecureBootSnapshot>,
}

/// What a check of one server's keys has to publish; both empty when nothing changed.
#[derive(Debug, Default)]
pub struct SecureBootOutcome {
    /// The new summary (`firmware.secureboot`), when it or the findings changed.
    pub snapshot: Option<SecureBootSnapshot>,
    /// New (`open`) and gone (`resolved`) findings (`firmware.findings`).
    pub findings: Vec<FirmwareFinding>,
}

/// The live Secure Boot check: the rule pack, and what was last published per server.
#[derive(Debug)]
pub struct SecureBootCheck {
    rules: RulePack,
    published: Mutex<HashMap<String, Published>>,
}

impl Default for SecureBootCheck {
    fn default() -> Self {
        SecureBootCheck::new(RulePack::builtin())
    }
}

impl SecureBootCheck {
    /// A check with `rules` and nothing published yet.
    pub fn new(rules: RulePack) -> Self {
        SecureBootCheck {
            rules,
            published: Mutex::new(HashMap::new()),
        }
    }

    /// Judges `server`'s keys as read over Redfish: what to publish.
    pub fn check(&self, server: &str, state: &SecureBootState, now_ms: i64) -> SecureBootOutcome {
        self.check_keys(server, &LiveKeys::from_redfish(state), now_ms)
    }

    /// Judges `server`'s keys from any source: what to publish.
    pub fn check_keys(&self, server: &str, keys: &LiveKeys, now_ms: i64) -> SecureBootOutcome {
        let db = &keys.db;
        let findings = secure_boot_findings(db, keys.source, &self.rules);
        let snapshot = SecureBootSnapshot {
            server_id: server.to_string(),
            source: keys.source.as_str().into(),
            observed_at: now_ms,
            enabled: keys.enabled,
            current_boot: keys.current_boot.clone(),
            mode: keys.mode.clone(),
            variables: db
                .summary()
                .into_iter()
                .map(|v| SecureBootVariable {
                    name: v.name,
                    present: v.present,
                    cert_subjects: v.cert_subjects,
                    sha256_count: v.sha256_count as i64,
                    other_count: v.other_count as i64,
                })
                .collect(),
            open_findings: {
                let ids: BTreeSet<&str> = findings.iter().map(|f| f.rule_id.as_str()).collect();
                ids.into_iter().map(str::to_string).collect()
            },
            worst_severity: findings
                .iter()
                .map(|f| f.severity)
                .max()
                .map(|s| s.as_str().to_string()),
            rule_pack: self.rules.version.clone(),
        };
        let findings = self.changes(server, &findings, now_ms);
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        let last = published.entry(server.to_string()).or_default();
        let same = last.snapshot.as_ref().is_some_and(|l| {
            SecureBootSnapshot {
                observed_at: now_ms,
                ..l.clone()
            } == snapshot
        });
        if same && findings.is_empty() {
            return SecureBootOutcome::default();
        }
        last.snapshot = Some(snapshot.clone());
        SecureBootOutcome {
            snapshot: Some(snapshot),
            findings,
        }
    }

    /// What changed for `server` given its current `findings`.
    pub fn changes(&self, server: &str, findings: &[Finding], now_ms: i64) -> Vec<FirmwareFinding> {
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        let entry = published.entry(server.to_string()).or_default();
        let before = std::mem::take(&mut entry.findings);
        let mut now: BTreeMap<(String, String), FirmwareFinding> = BTreeMap::new();
        let mut out = Vec::new();
        for f in findings {
            let key = (f.rule_id.clone(), f.subject.clone());
            match before.get(&key) {
                Some(old) => {
                    now.insert(key, old.clone());
                }
                None => {
                    let r = finding_record(server, TargetKind::Server, f, now_ms);
                    out.push(r.clone());
                    now.insert(key, r);
                }
            }
        }
        for (key, mut old) in before {
            if !now.contains_key(&key) {
                old.state = "resolved".into();
                out.push(old);
            }
        }
        entry.findings = now;
        out
    }

    /// Forgets what was published for `server` (the publish failed): the next check
    /// publishes its state again.
    pub fn forget(&self, server: &str) {
        self.published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(server);
    }

    /// The rule pack's version.
    pub fn rule_pack(&self) -> &str {
        &self.rules.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automata_fwscan::{Evidence, Severity};

    fn finding(rule: &str) -> Finding {
        Finding {
            rule_id: rule.into(),
            severity: Severity::High,
            source: Source::Redfish,
            subject: format!("{rule} subject"),
            evidence: Evidence::default(),
            rule_pack: "test".into(),
        }
    }

    #[test]
    fn only_changes_are_published() {
        let c = SecureBootCheck::default();
        let first = c.changes("s1", &[finding("SB-KEK-001"), finding("SB-DB-001")], 1);
        assert_eq!(first.len(), 2);
        assert!(
            first
                .iter()
                .all(|f| f.state == "open" && f.target_kind == "server")
        );
        assert!(
            c.changes("s1", &[finding("SB-KEK-001"), finding("SB-DB-001")], 2)
                .is_empty()
        );
        let next = c.changes("s1", &[finding("SB-DB-001")], 3);
        assert_eq!(next.len(), 1);
        assert_eq!(
            (next[0].rule_id.as_str(), next[0].state.as_str()),
            ("SB-KEK-001", "resolved")
        );
        assert_eq!(next[0].first_seen, 1);
        assert_eq!(c.changes("s2", &[finding("SB-DB-001")], 4).len(), 1);
    }
}
