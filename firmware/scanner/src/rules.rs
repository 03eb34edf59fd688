//! The rule pack (operator-updatable data) and the Secure Boot rules run on blobs and live servers.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::cert::CertInfo;
use crate::esl::{SignatureData, SignatureEntry};
use crate::report::{Evidence, Finding, Severity, Source, VariableSummary};
use crate::util::rfc3339;

/// SHA-256 of the empty string: the placeholder dbx entry of edk2/ovmf builds.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const BUILTIN_PACK: &str = include_str!("../rules/rulepack.json");
const BUILTIN_DBX_SEED: &str = include_str!("../rules/dbx_seed_msft.json");

/// Why a rule pack or dbx reference file could not be loaded.
#[derive(Debug, Error)]
pub enum RulePackError {
    /// The file could not be read.
    #[error("reading rule pack {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The JSON does not have the expected shape.
    #[error("rule pack JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A YARA source does not compile (or cannot be read); names the file.
    #[error(transparent)]
    Yara(#[from] crate::yara::YaraError),
    /// A hash or thumbprint is not hex of the right length.
    #[error("rule pack: bad {what} {value:?}")]
    BadValue {
        /// Which field.
        what: &'static str,
        /// The offending value.
        value: String,
    },
}

/// A known test or leaked key, matched by certificate SHA-1 (SB-PK-001).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestKey {
    /// Certificate SHA-1, lowercase hex without separators.
    pub sha1: String,
    /// What it is and where it leaked.
    pub name: String,
}

/// An image hash every current dbx should hold (SB-DBX-002).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbxImage {
    /// Authenticode SHA-256, lowercase hex.
    pub sha256: String,
    /// File name from the reference.
    #[serde(default)]
    pub filename: String,
    /// Description (CVEs).
    #[serde(default)]
    pub description: String,
}

/// A certificate every current dbx should revoke (SB-DBX-003).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbxCert {
    /// Certificate SHA-1 thumbprint, lowercase hex.
    pub sha1: String,
    /// Subject as given by the reference.
    #[serde(default)]
    pub subject: String,
}

/// The dbx reference list the pack carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbxReference {
    /// Revoked image hashes.
    #[serde(default)]
    pub images: Vec<DbxImage>,
    /// Revoked certificates.
    #[serde(default)]
    pub certificates: Vec<DbxCert>,
}

/// A certificate Authenticode chains may end at (PE-SIG-003), like an entry of db.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedRoot {
    /// Certificate SHA-1, lowercase hex: a chain certificate with it is trusted.
    pub sha1: String,
    /// Name shown in evidence.
    pub name: String,
    /// The DER, hex; lets a chain end at a root the signature does not carry.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub der: String,
}

impl TrustedRoot {
    /// A root from a PEM certificate file's text, named by its subject.
    pub fn from_pem(text: &[u8]) -> Result<TrustedRoot, RulePackError> {
        let bad = |why: String| RulePackError::BadValue {
            what: "PEM certificate",
            value: why,
        };
        let (_, pem) = x509_parser::pem::parse_x509_pem(text).map_err(|e| bad(e.to_string()))?;
        let info = crate::cert::CertInfo::from_der(&pem.contents)
            .ok_or_else(|| bad("not an X.509 certificate".into()))?;
        Ok(TrustedRoot {
            sha1: info.sha1,
            name: info.subject,
            der: hex::encode(&pem.contents),
        })
    }
}

/// Versioned rule data an operator can replace (`firmware rules update FILE`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulePack {
    /// Version recorded in every finding and manifest.
    pub version: String,
    /// Days before notAfter at which SB-CERT-001 starts reporting.
    #[serde(default = "default_expiry_days")]
    pub cert_expiry_warning_days: u32,
    /// Known test/leaked PK and KEK certificates.
    #[serde(default)]
    pub test_keys: Vec<TestKey>,
    /// What a current dbx holds.
    #[serde(default)]
    pub dbx_reference: DbxReference,
    /// Roots Authenticode signatures must chain to (the platform db an operator expects).
    #[serde(default)]
    pub authenticode_roots: Vec<TrustedRoot>,
    /// Roots package signatures must chain to (PKG-SIG-003): a cab's jcat PKCS#7, a DUP's
    /// Authenticode, an LVFS catalog's jcat. The builtin pack holds the LVFS CA.
    #[serde(default)]
    pub package_roots: Vec<TrustedRoot>,
    /// Public keys whose private halves leaked (KEY-LEAK-001); FwHunt's list unless the pack
    /// names its own.
    #[serde(default = "crate::keys::builtin_leaked_keys")]
    pub leaked_keys: Vec<crate::keys::LeakedKey>,
    /// Version-range advisories (VULN-<id>), for artifacts and installed firmware alike; the
    /// shipped ones unless the pack names its own, so a pack that only adds test keys or a dbx
    /// list does not withdraw them from the fleet (`"advisories": []` does).
    #[serde(default = "builtin_advisories")]
    pub advisories: Vec<crate::advisory::Advisory>,
    /// YARA sources (YARA-<rule>); the shipped rules unless the pack names its own, so an older
    /// pack still gets them and `"yara": []` turns them off.
    #[serde(default = "crate::yara::builtin_yara")]
    pub yara: Vec<crate::yara::YaraSource>,
}

fn default_expiry_days() -> u32 {
    180
}

/// The built-in pack's advisories (its JSON is checked by the unit tests).
fn builtin_advisories() -> Vec<crate::advisory::Advisory> {
    #[derive(Deserialize)]
    struct Advisories {
        advisories: Vec<crate::advisory::Advisory>,
    }
    serde_json::from_str::<Advisories>(BUILTIN_PACK)
        .map(|p| p.advisories)
        .unwrap_or_default()
}

/// Checks a root's DER hex and fills its SHA-1 from the DER when the pack left it out.
fn normalise_root(what: &'static str, r: &mut TrustedRoot) -> Result<(), RulePackError> {
    if !r.der.is_empty() {
        let der = hex::decode(r.der.trim()).map_err(|_| RulePackError::BadValue {
            what,
            value: r.name.clone(),
        })?;
        r.der = hex::encode(&der);
        if r.sha1.is_empty() {
            r.sha1 = hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&der));
        }
    }
    r.sha1 = norm_hex(what, &r.sha1, 20)?;
    Ok(())
}

/// Microsoft's `dbx_info_msft_latest.json` (microsoft/secureboot_objects), the fields we use.
/// `images` is required: a document without it is not a dbx list (so `{"version": 3}`, a
/// broken rule pack, is refused rather than read as an empty dbx).
#[derive(Deserialize)]
struct MsftDbx {
    images: std::collections::BTreeMap<String, Vec<MsftImage>>,
    #[serde(default)]
    certificates: Vec<MsftCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MsftImage {
    authenticode_hash: String,
    #[serde(default)]
    hash_type: String,
    #[serde(default)]
    filename: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MsftCert {
    thumbprint: String,
    #[serde(default)]
    subject_name: String,
}

fn norm_hex(what: &'static str, value: &str, len: usize) -> Result<String, RulePackError> {
    let v: String = value
        .chars()
        .filter(|c| !matches!(c, ':' | ' '))
        .collect::<String>()
        .to_lowercase();
    if v.len() != len * 2 || hex::decode(&v).is_err() {
        return Err(RulePackError::BadValue {
            what,
            value: value.to_string(),
        });
    }
    Ok(v)
}

impl RulePack {
    /// The pack compiled into the binary: test keys plus a seed of Microsoft's dbx reference.
    pub fn builtin() -> RulePack {
        // Both files are checked by the unit tests (the YARA too), so the fallback below is
        // never taken; the YARA is compiled by the first scan, not by every use of the pack.
        let mut pack =
            RulePack::from_json_data(BUILTIN_PACK).unwrap_or_else(|_| RulePack::empty("builtin"));
        let _ = pack.merge_msft_dbx(BUILTIN_DBX_SEED, "x64");
        pack
    }

    /// A pack with no data (tests, or operators starting from scratch).
    pub fn empty(version: &str) -> RulePack {
        RulePack {
            version: version.to_string(),
            cert_expiry_warning_days: default_expiry_days(),
            test_keys: Vec::new(),
            dbx_reference: DbxReference::default(),
            authenticode_roots: Vec::new(),
            package_roots: Vec::new(),
            leaked_keys: Vec::new(),
            advisories: Vec::new(),
            yara: Vec::new(),
        }
    }

    /// Parses a pack in our JSON format, normalising hashes, and checks its YARA compiles.
    pub fn from_json(text: &str) -> Result<RulePack, RulePackError> {
        let pack = RulePack::from_json_data(text)?;
        // Compiled here (and cached for the scans) so a pack whose rules do not compile is
        // refused when installed, not discovered at the next scan.
        crate::yara::check(&pack.yara)?;
        Ok(pack)
    }

    /// Parses a pack without compiling its YARA: for the uses that run none (the live Secure
    /// Boot check, the fleet's advisories), which a YARA source that stopped compiling (say,
    /// under a newer yara-x) must not stop. Scans still compile, and report, it.
    pub fn from_json_data(text: &str) -> Result<RulePack, RulePackError> {
        let mut pack: RulePack = serde_json::from_str(text)?;
        for k in &mut pack.test_keys {
            k.sha1 = norm_hex("test key sha1", &k.sha1, 20)?;
        }
        for i in &mut pack.dbx_reference.images {
            i.sha256 = norm_hex("dbx image sha256", &i.sha256, 32)?;
        }
        for c in &mut pack.dbx_reference.certificates {
            c.sha1 = norm_hex("dbx certificate sha1", &c.sha1, 20)?;
        }
        for k in &mut pack.leaked_keys {
            for p in &mut k.patterns {
                let bytes = hex::decode(p.trim()).ok().filter(|b| b.len() >= 16);
                let Some(bytes) = bytes else {
                    return Err(RulePackError::BadValue {
                        what: "leaked key pattern (hex, 16 bytes or more)",
                        value: p.chars().take(40).collect(),
                    });
                };
                *p = hex::encode(bytes);
            }
        }
        for a in &pack.advisories {
            let ok_id = !a.id.is_empty()
                && a.id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok_id || a.ranges.is_empty() {
                return Err(RulePackError::BadValue {
                    what: "advisory (an id of letters, digits, '-', '_', '.' and at least one range)",
                    value: a.id.clone(),
                });
            }
        }
        for (what, roots) in [
            ("authenticode root", &mut pack.authenticode_roots),
            ("package root", &mut pack.package_roots),
        ] {
            for r in roots.iter_mut() {
                normalise_root(what, r)?;
            }
        }
        Ok(pack)
    }

    /// Adds a YARA source, replacing the pack's source of the same file name (an operator's
    /// `private_keys.yar` overrides the shipped one).
    pub fn put_yara(&mut self, source: crate::yara::YaraSource) {
        match self.yara.iter_mut().find(|s| s.name == source.name) {
            Some(slot) => *slot = source,
            None => self.yara.push(source),
        }
    }

    /// The pack with the operator's YARA files added (`<data>/firmware/yara/`), checked to
    /// compile together, its version tagged `+yara-<digest>` so every finding tells which rule
    /// set judged it. No files: the pack unchanged.
    pub fn with_operator_yara(
        mut self,
        sources: Vec<crate::yara::YaraSource>,
    ) -> Result<RulePack, RulePackError> {
        if sources.is_empty() {
            return Ok(self);
        }
        let mut digest = <sha2::Sha256 as sha2::Digest>::new();
        for s in &sources {
            for part in [s.name.as_bytes(), &[0], s.source.as_bytes(), &[0]] {
                sha2::Digest::update(&mut digest, part);
            }
        }
        let tag = hex::encode(sha2::Digest::finalize(digest));
        for s in sources {
            self.put_yara(s);
        }
        crate::yara::check(&self.yara)?;
        self.version = format!("{}+yara-{}", self.version, tag.get(..8).unwrap_or(&tag));
        Ok(self)
    }

    /// Loads a pack file; a file in Microsoft's dbx format updates the builtin pack's reference.
    pub fn load(path: &Path) -> Result<RulePack, RulePackError> {
        RulePack::load_with(path, RulePack::from_json)
    }

    /// [`Self::load`] without compiling the pack's YARA (see [`Self::from_json_data`]).
    pub fn load_data(path: &Path) -> Result<RulePack, RulePackError> {
        RulePack::load_with(path, RulePack::from_json_data)
    }

    fn load_with(
        path: &Path,
        parse: fn(&str) -> Result<RulePack, RulePackError>,
    ) -> Result<RulePack, RulePackError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulePackError::Io {
            path: path.display().to_string(),
            source,
        })?;
        match parse(&text) {
            Ok(p) => Ok(p),
            Err(e) => {
                let mut pack = RulePack::builtin();
                pack.dbx_reference = DbxReference::default();
                if pack.merge_msft_dbx(&text, "x64").is_ok() {
                    pack.version = format!("{}+dbx", pack.version);
                    Ok(pack)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Adds the image hashes for `arch` and the certificates of a `dbx_info_msft_latest.json`;
    /// returns how many new entries it added.
    pub fn merge_msft_dbx(&mut self, text: &str, arch: &str) -> Result<usize, RulePackError> {
        let msft: MsftDbx = serde_json::from_str(text)?;
        let mut added = 0;
        let mut have: BTreeSet<String> = self
            .dbx_reference
            .images
            .iter()
            .map(|i| i.sha256.clone())
            .collect();
        for img in msft.images.get(arch).into_iter().flatten() {
            if !img.hash_type.is_empty() && !img.hash_type.eq_ignore_ascii_case("SHA256") {
                continue;
            }
            let sha256 = norm_hex("authenticodeHash", &img.authenticode_hash, 32)?;
            if have.insert(sha256.clone()) {
                self.dbx_reference.images.push(DbxImage {
                    sha256,
                    filename: img.filename.trim().to_string(),
                    description: img.description.clone(),
                });
                added += 1;
            }
        }
        for c in &msft.certificates {
            let sha1 = norm_hex("thumbprint", &c.thumbprint, 20)?;
            if !self
                .dbx_reference
                .certificates
                .iter()
                .any(|x| x.sha1 == sha1)
            {
                let subject = c.subject_name.replace(" = ", "=");
                self.dbx_reference
                    .certificates
                    .push(DbxCert { sha1, subject });
                added += 1;
            }
        }
        Ok(added)
    }

    /// Serialises the pack (what `firmware rules update` stores).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// PK, KEK, db and dbx of one platform; `None` means the variable does not exist.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecureBootDb {
    /// Platform Key.
    pub pk: Option<Vec<SignatureEntry>>,
    /// Key Exchange Keys.
    pub kek: Option<Vec<SignatureEntry>>,
    /// Allowed signatures.
    pub db: Option<Vec<SignatureEntry>>,
    /// Forbidden signatures.
    pub dbx: Option<Vec<SignatureEntry>>,
}

/// A parsed certificate with the variable it sits in.
struct Cert<'a> {
    var: &'static str,
    info: CertInfo,
    _entry: &'a SignatureEntry,
}

impl SecureBootDb {
    fn vars(&self) -> [(&'static str, Option<&Vec<SignatureEntry>>); 4] {
        [
            ("PK", self.pk.as_ref()),
            ("KEK", self.kek.as_ref()),
            ("db", self.db.as_ref()),
            ("dbx", self.dbx.as_ref()),
        ]
    }

    fn certs(&self, var: &'static str) -> Vec<Cert<'_>> {
        let list = match var {
            "PK" => self.pk.as_ref(),
            "KEK" => self.kek.as_ref(),
            "db" => self.db.as_ref(),
            _ => self.dbx.as_ref(),
        };
        list.into_iter()
            .flatten()
            .filter_map(|e| match &e.data {
                SignatureData::X509 { der } => CertInfo::from_der(der).map(|info| Cert {
                    var,
                    info,
                    _entry: e,
                }),
                _ => None,
            })
            .collect()
    }

    fn hashes(list: Option<&Vec<SignatureEntry>>) -> BTreeSet<String> {
        list.into_iter()
            .flatten()
            .filter_map(|e| match &e.data {
                SignatureData::Sha256 { hash } => Some(hex::encode(hash)),
                _ => None,
            })
            .collect()
    }

    /// Per-variable certificate subjects and hash counts (the `firmware.secureboot` summary).
    pub fn summary(&self) -> Vec<VariableSummary> {
        self.vars()
            .into_iter()
            .map(|(name, list)| {
                let mut v = VariableSummary {
                    name: name.to_string(),
                    present: list.is_some(),
                    ..Default::default()
                };
                for e in list.into_iter().flatten() {
                    match &e.data {
                        SignatureData::X509 { der } => v.cert_subjects.push(
                            CertInfo::from_der(der)
                                .map_or_else(|| "<unparsable certificate>".into(), |c| c.subject),
                        ),
                        SignatureData::Sha256 { .. } => v.sha256_count += 1,
                        SignatureData::Other { .. } => v.other_count += 1,
                    }
                }
                v
            })
            .collect()
    }
}

/// Certificate names the rollover rules look for.
const KEK_2011: &str = "Microsoft Corporation KEK CA 2011";
const KEK_2023: &str = "Microsoft Corporation KEK 2K CA 2023";
const UEFI_CA_2011: &str = "Microsoft Corporation UEFI CA 2011";
const UEFI_CA_2023: &str = "Microsoft UEFI CA 2023";
const PCA_2011: &str = "Microsoft Windows Production PCA 2011";
const WINDOWS_CA_2023: &str = "Windows UEFI CA 2023";

/// Builds findings with shared source, pack version and location.
struct Emitter<'a> {
    source: Source,
    pack: &'a RulePack,
    path: Option<&'a str>,
    out: Vec<Finding>,
}

impl Emitter<'_> {
    fn emit(&mut self, rule_id: &str, severity: Severity, subject: String, mut evidence: Evidence) {
        if evidence.container_path.is_none() {
            evidence.container_path = self.path.map(str::to_string);
        }
        self.out.push(Finding {
            rule_id: rule_id.to_string(),
            severity,
            source: self.source,
            subject,
            evidence,
            rule_pack: self.pack.version.clone(),
        });
    }
}

/// The first certificate whose CN is `name`.
fn has<'c, 'a>(certs: &'c [Cert<'a>], name: &str) -> Option<&'c Cert<'a>> {
    certs.iter().find(|c| c.info.is_named(name))
}

fn cert_evidence(c: &Cert<'_>) -> Evidence {
    Evidence {
        variable: Some(c.var.to_string()),
        cert_subject: Some(c.info.subject.clone()),
        cert_issuer: Some(c.info.issuer.clone()),
        cert_sha1: Some(c.info.sha1.clone()),
        cert_not_after: Some(rfc3339(c.info.not_after)),
        ..Default::default()
    }
}

/// Runs the SB-* rules on one platform's Secure Boot variables, now.
pub fn secure_boot_findings(db: &SecureBootDb, source: Source, pack: &RulePack) -> Vec<Finding> {
    secure_boot_findings_at(db, source, pack, crate::now_unix(), None)
}

/// Runs the SB-* rules at a given UNIX time; `path` locates the variable store inside a blob.
pub fn secure_boot_findings_at(
    db: &SecureBootDb,
    source: Source,
    pack: &RulePack,
    now: i64,
    path: Option<&str>,
) -> Vec<Finding> {
    let mut em = Emitter {
        source,
        pack,
        path,
        out: Vec::new(),
    };
    let pk = db.certs("PK");
    let kek = db.certs("KEK");
    let dbc = db.certs("db");
    let dbxc = db.certs("dbx");

    // SB-PK-003: no PK means setup mode: anyone can enroll keys.
    if db.pk.as_ref().is_none_or(|l| l.is_empty()) {
        em.emit(
            "SB-PK-003",
            Severity::Medium,
            "no Platform Key: Secure Boot is in setup mode".into(),
            Evidence {
                variable: Some("PK".into()),
                ..Default::default()
            },
        );
    }
    for c in pk.iter().chain(kek.iter()) {
        if let Some(k) = pack.test_keys.iter().find(|k| k.sha1 == c.info.sha1) {
            em.emit(
                "SB-PK-001",
                Severity::Critical,
                format!(
                    "{} certificate is a known test/leaked key: {}",
                    c.var, k.name
                ),
                cert_evidence(c),
            );
        }
        let text = format!("{}\n{}", c.info.subject, c.info.issuer).to_uppercase();
        if text.contains("DO NOT TRUST") || text.contains("DO NOT SHIP") {
            em.emit(
                "SB-PK-002",
                Severity::Critical,
                format!(
                    "{} certificate is marked as a test key: {}",
                    c.var, c.info.subject
                ),
                cert_evidence(c),
            );
        }
    }
    if let (Some(old), None) = (has(&kek, KEK_2011), has(&kek, KEK_2023)) {
        em.emit(
            "SB-KEK-001",
            Severity::High,
            format!(
                "KEK holds \"{KEK_2011}\" without \"{KEK_2023}\": no dbx/db updates after June 2026"
            ),
            cert_evidence(old),
        );
    }
    if let (Some(old), None) = (has(&dbc, UEFI_CA_2011), has(&dbc, UEFI_CA_2023)) {
        em.emit(
            "SB-DB-001",
            Severity::High,
            format!("db holds \"{UEFI_CA_2011}\" without \"{UEFI_CA_2023}\": third-party loaders signed after 2026 fail"),
            cert_evidence(old),
        );
    }
    if let (Some(old), None) = (has(&dbc, PCA_2011), has(&dbc, WINDOWS_CA_2023)) {
        em.emit(
            "SB-DB-002",
            Severity::High,
            format!("db holds \"{PCA_2011}\" without \"{WINDOWS_CA_2023}\": Windows boot managers signed after 2026 fail"),
            cert_evidence(old),
        );
    }
    let horizon = now.saturating_add(i64::from(pack.cert_expiry_warning_days) * 86_400);
    for c in pk.iter().chain(&kek).chain(&dbc) {
        if c.info.not_after <= horizon {
            let state = if c.info.not_after <= now {
                "expired"
            } else {
                "expires soon"
            };
            em.emit(
                "SB-CERT-001",
                Severity::Info,
                format!(
                    "{} certificate {state}: {} (UEFI does not enforce time)",
                    c.var, c.info.subject
                ),
                cert_evidence(c),
            );
        }
    }

    let dbx_hashes = SecureBootDb::hashes(db.dbx.as_ref());
    let dbx_len = db.dbx.as_ref().map_or(0, Vec::len);
    let placeholder = dbx_len == 0
        || (dbx_hashes.len() == dbx_len && dbx_hashes.iter().all(|h| h == EMPTY_SHA256));
    if placeholder {
        let detail = if db.dbx.is_none() {
            "dbx variable absent"
        } else if dbx_len == 0 {
            "dbx is empty"
        } else {
            "dbx holds only the SHA-256 of the empty string (build placeholder)"
        };
        em.emit(
            "SB-DBX-001",
            Severity::Medium,
            "dbx is empty or a placeholder: no revoked boot loader is blocked".into(),
            Evidence {
                variable: Some("dbx".into()),
                hash: (dbx_len > 0).then(|| EMPTY_SHA256.to_string()),
                detail: Some(detail.into()),
                ..Default::default()
            },
        );
    } else {
        let missing: Vec<&DbxImage> = pack
            .dbx_reference
            .images
            .iter()
            .filter(|i| !dbx_hashes.contains(&i.sha256))
            .collect();
        if let Some(first) = missing.first() {
            em.emit(
                "SB-DBX-002",
                Severity::High,
                format!(
                    "dbx lacks {} of {} reference hashes (rule pack {})",
                    missing.len(),
                    pack.dbx_reference.images.len(),
                    pack.version
                ),
                Evidence {
                    variable: Some("dbx".into()),
                    hash: Some(first.sha256.clone()),
                    detail: Some(format!(
                        "first missing: {} {}",
                        first.filename, first.description
                    )),
                    ..Default::default()
                },
            );
        }
    }
    // SB-DBX-003: the 2023 Windows CA is trusted but the PCA 2011 (BlackLotus) is not revoked.
    if let (Some(pca), Some(_)) = (has(&dbc, PCA_2011), has(&dbc, WINDOWS_CA_2023)) {
        let revoked = dbxc
            .iter()
            .any(|c| c.info.sha1 == pca.info.sha1 || c.info.is_named(PCA_2011));
        if !revoked {
            em.emit(
                "SB-DBX-003",
                Severity::Info,
                format!("\"{PCA_2011}\" is trusted in db and not revoked in dbx although \"{WINDOWS_CA_2023}\" is present (CVE-2023-24932)"),
                cert_evidence(pca),
            );
        }
    }
    em.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_pack_loads() {
        let pack = RulePack::from_json(BUILTIN_PACK).expect("builtin pack");
        assert_eq!(pack.test_keys.len(), 2);
        let mut pack = pack;
        let n = pack.merge_msft_dbx(BUILTIN_DBX_SEED, "x64").expect("seed");
        assert_eq!(n, 7);
        assert_eq!(RulePack::builtin().dbx_reference.images.len(), 6);
        assert_eq!(
            RulePack::builtin().dbx_reference.certificates[0].sha1,
            "580a6f4cc4e4b669b9ebdc1b2b3e087b80d0678d"
        );
    }

    #[test]
    fn a_pack_naming_no_advisories_keeps_the_shipped_ones() {
        let shipped = RulePack::builtin().advisories;
        assert!(!shipped.is_empty());
        let keys_only = RulePack::from_json(r#"{"version": "keys-only"}"#).expect("pack");
        assert_eq!(keys_only.advisories, shipped);
        let none = RulePack::from_json(r#"{"version": "none", "advisories": []}"#).expect("pack");
        assert!(none.advisories.is_empty());
    }

    #[test]
    fn a_file_that_is_neither_a_pack_nor_a_dbx_list_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        for (name, text) in [("v.json", r#"{"version": 3}"#), ("e.json", "{}")] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            assert!(RulePack::load(&path).is_err(), "{text}");
        }
        let path = dir.path().join("dbx.json");
        std::fs::write(&path, BUILTIN_DBX_SEED).expect("write");
        assert!(
            RulePack::load(&path)
                .expect("dbx")
                .version
                .ends_with("+dbx")
        );
    }

    #[test]
    fn pack_round_trips_and_rejects_bad_hex() {
        let pack = RulePack::builtin();
        assert_eq!(
            RulePack::from_json(&pack.to_json()).expect("round trip"),
            pack
        );
        let bad = r#"{"version":"x","test_keys":[{"sha1":"zz","name":"n"}]}"#;
        assert!(matches!(
            RulePack::from_json(bad),
            Err(RulePackError::BadValue { .. })
        ));
    }

    #[test]
    fn empty_db_is_setup_mode_and_empty_dbx() {
        let f = secure_boot_findings_at(
            &SecureBootDb::default(),
            Source::Redfish,
            &RulePack::builtin(),
            0,
            None,
        );
        let ids: BTreeSet<_> = f.iter().map(|f| f.rule_id.as_str()).collect();
        assert_eq!(ids, BTreeSet::from(["SB-PK-003", "SB-DBX-001"]));
        assert!(f.iter().all(|f| f.source == Source::Redfish));
    }
}
