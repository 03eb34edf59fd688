//! The one catalog model every vendor parser produces.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::CatalogError;

/// How urgently the vendor asks for an update (Dell `Criticality`, LVFS `urgency`, HPE/Lenovo severity).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "kebab-case")]
pub enum Criticality {
    /// The vendor gave none.
    #[default]
    Unknown,
    /// Dell 3 (and 0) "Optional", LVFS `low`.
    Optional,
    /// Dell 1 "Recommended", LVFS `medium`.
    Recommended,
    /// LVFS `high`.
    High,
    /// Dell 2 "Urgent/Critical", LVFS `critical`.
    Critical,
}

impl Criticality {
    /// Maps a free-text severity word (any vendor) to the scale.
    pub fn from_word(word: &str) -> Self {
        match word.trim().to_ascii_lowercase().as_str() {
            "critical" | "urgent" | "2" => Criticality::Critical,
            "high" | "important" => Criticality::High,
            "medium" | "recommended" | "1" | "suggested" => Criticality::Recommended,
            "low" | "optional" | "3" | "0" => Criticality::Optional,
            _ => Criticality::Unknown,
        }
    }
}

/// The digests a catalog publishes for an artifact, lowercase hex.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashes {
    /// SHA-256: the only strong digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// SHA-1 (weak provenance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    /// MD5 (weak provenance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
}

/// How much a catalog's own digests can prove about a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashStrength {
    /// A SHA-256 is published.
    Sha256,
    /// Only MD5 and/or SHA-1 (the store marks the blob `weak-md5-sha1`).
    WeakMd5Sha1,
    /// No digest at all.
    None,
}

impl Hashes {
    /// Sets a digest by algorithm name (`sha256`, `SHA-1`, `md5`...), normalising the hex;
    /// returns false for an unknown algorithm or a value that is not hex of the right length.
    pub fn set(&mut self, algorithm: &str, value: &str) -> bool {
        let hex = value.trim().to_ascii_lowercase();
        let algo = algorithm
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_'], "");
        let (slot, len) = match algo.as_str() {
            "sha256" => (&mut self.sha256, 64),
            "sha1" => (&mut self.sha1, 40),
            "md5" => (&mut self.md5, 32),
            _ => return false,
        };
        if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
        *slot = Some(hex);
        true
    }

    /// Sets a digest given as `algo:hex` (`sha256:…`, `md5sum:…`) or bare hex (algorithm by length).
    pub fn set_tagged(&mut self, value: &str) -> bool {
        let value = value.trim();
        if let Some((algo, hex)) = value.split_once(':') {
            let algo = algo.trim().trim_end_matches("sum");
            return self.set(algo, hex);
        }
        match value.len() {
            64 => self.set("sha256", value),
            40 => self.set("sha1", value),
            32 => self.set("md5", value),
            _ => false,
        }
    }

    /// The strength of the best digest present.
    pub fn strength(&self) -> HashStrength {
        if self.sha256.is_some() {
            HashStrength::Sha256
        } else if self.sha1.is_some() || self.md5.is_some() {
            HashStrength::WeakMd5Sha1
        } else {
            HashStrength::None
        }
    }
}

/// A PCI function an entry applies to: `vendor:device[:subvendor:subdevice]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PciId {
    /// PCI vendor id.
    pub vendor: u16,
    /// PCI device id.
    pub device: u16,
    /// Subsystem vendor id, when the entry is that specific.
    pub subvendor: Option<u16>,
    /// Subsystem device id, when the entry is that specific.
    pub subdevice: Option<u16>,
}

impl PciId {
    /// Whether this (catalog) id covers an installed device's id: vendor and device equal, and
    /// the subsystem equal when this id names one.
    pub fn covers(&self, installed: &PciId) -> bool {
        self.vendor == installed.vendor
            && self.device == installed.device
            && (self.subvendor.is_none() || self.subvendor == installed.subvendor)
            && (self.subdevice.is_none() || self.subdevice == installed.subdevice)
    }
}

impl fmt::Display for PciId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.device)?;
        if let (Some(sv), Some(sd)) = (self.subvendor, self.subdevice) {
            write!(f, ":{sv:04x}:{sd:04x}")?;
        }
        Ok(())
    }
}

fn hex16(s: &str) -> Result<u16, CatalogError> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u16::from_str_radix(t, 16)
        .map_err(|_| CatalogError::invalid("pci id", format!("{s:?} is not a 16-bit hex id")))
}

impl FromStr for PciId {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self, CatalogError> {
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [v, d] => Ok(PciId {
                vendor: hex16(v)?,
                device: hex16(d)?,
                subvendor: None,
                subdevice: None,
            }),
            [v, d, sv, sd] => Ok(PciId {
                vendor: hex16(v)?,
                device: hex16(d)?,
                subvendor: Some(hex16(sv)?),
                subdevice: Some(hex16(sd)?),
            }),
            _ => Err(CatalogError::invalid(
                "pci id",
                format!("{s:?} is not vendor:device[:subvendor:subdevice]"),
            )),
        }
    }
}

impl TryFrom<String> for PciId {
    type Error = CatalogError;
    fn try_from(s: String) -> Result<Self, CatalogError> {
        s.parse()
    }
}

impl From<PciId> for String {
    fn from(p: PciId) -> String {
        p.to_string()
    }
}

/// What hardware an entry is for; empty lists mean "not restricted by this axis".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliesTo {
    /// Vendor system ids (Dell 4-hex `systemID`, Lenovo machine types).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_ids: Vec<String>,
    /// Model names (`PowerEdge R750`, `X11SCH-F`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// PCI ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pci_ids: Vec<PciId>,
    /// Firmware GUIDs (LVFS/fwupd `provides`, HPE `Target`), lowercase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guids: Vec<String>,
    /// Redfish `SoftwareInventory.SoftwareId`s (Dell `componentID`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub software_ids: Vec<String>,
}

/// A detached signature that accompanies an artifact (HPE `.compsig`, Dell `.sign`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRef {
    /// `compsig`, `pkcs7`, `gpg`...
    pub kind: String,
    /// Where it is, when separate from the artifact.
    pub url: String,
}

/// One firmware artifact as a catalog lists it: the unit of sync, diff, download and matching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The catalog (source) name this entry came from.
    pub catalog: String,
    /// The vendor's id of the entry inside its catalog, stable across syncs.
    pub entry_id: String,
    /// Vendor (`Dell`, `HPE`, developer name for LVFS).
    pub vendor: String,
    /// Component type as the vendor names it (`FRMW`, `BIOS`, `bmc`…).
    pub component_type: String,
    /// Human name.
    pub name: String,
    /// The version the artifact installs, in the vendor's style.
    pub version: String,
    /// Release date, `YYYY-MM-DD` when the vendor's form could be read, else as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<String>,
    /// Vendor urgency.
    #[serde(default)]
    pub criticality: Criticality,
    /// Where to download it (absolute when the catalog gave a base).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Published digests.
    #[serde(default)]
    pub hashes: Hashes,
    /// Whether installing needs a reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot: Option<bool>,
    /// The hardware it is for.
    #[serde(default)]
    pub applies_to: AppliesTo,
    /// Detached signature, when the vendor publishes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureRef>,
    /// Vendor fields kept verbatim that have no slot above (`dellVersion`, `UpdatableBy`...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl CatalogEntry {
    /// An entry with only its identity set; parsers fill the rest.
    pub fn new(catalog: &str, entry_id: impl Into<String>, vendor: impl Into<String>) -> Self {
        CatalogEntry {
            catalog: catalog.to_string(),
            entry_id: entry_id.into(),
            vendor: vendor.into(),
            component_type: String::new(),
            name: String::new(),
            version: String::new(),
            release_date: None,
            criticality: Criticality::Unknown,
            url: None,
            size: None,
            hashes: Hashes::default(),
            reboot: None,
            applies_to: AppliesTo::default(),
            signature: None,
            extra: BTreeMap::new(),
        }
    }

    /// The stable key `catalog/entry`: the `firmware.catalog` topic key and the diff key.
    pub fn key(&self) -> String {
        format!("{}/{}", self.catalog, self.entry_id)
    }
}

/// Pushes a value into a list unless it is empty or already there (catalogs repeat themselves).
pub(crate) fn push_unique<T: PartialEq>(list: &mut Vec<T>, value: T) {
    if !list.contains(&value) {
        list.push(value);
    }
}

/// Normalises a GUID to lowercase without braces; None when it is not a GUID.
pub fn normalize_guid(s: &str) -> Option<String> {
    let g = s
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .to_ascii_lowercase();
    let ok = g.len() == 36
        && g.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    ok.then_some(g)
}

/// Reads the date forms vendors use (`2024-01-15`, `20240115`, `July 29, 2021`,
/// `2024-06-21T06:08:27`, `01/15/2024`) into `YYYY-MM-DD`; None when unreadable.
pub fn normalize_date(s: &str) -> Option<String> {
    use chrono::NaiveDate;
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let head = s.get(..10).unwrap_or(s);
    let forms: [(&str, &str); 6] = [
        (head, "%Y-%m-%d"),
        (s, "%Y%m%d"),
        (s, "%B %d, %Y"),
        (s, "%b %d, %Y"),
        (s, "%m/%d/%Y"),
        (s, "%d %B %Y"),
    ];
    forms
        .iter()
        .find_map(|(text, fmt)| NaiveDate::parse_from_str(text, fmt).ok())
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// A unix timestamp (LVFS `timestamp`) as `YYYY-MM-DD`.
pub fn date_from_unix(secs: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(secs, 0).map(|d| d.format("%Y-%m-%d").to_string())
}

/// `yes`/`no`/`true`/`false`/`1`/`0` as a bool.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "y" => Some(true),
        "no" | "false" | "0" | "n" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_ids_parse_print_and_cover() {
        let p: PciId = "8086:1572".parse().expect("pci");
        let q: PciId = "8086:1572:8086:0001".parse().expect("pci");
        assert_eq!(q.to_string(), "8086:1572:8086:0001");
        assert!(p.covers(&q));
        assert!(!q.covers(&p));
        assert!("8086".parse::<PciId>().is_err());
        assert!("zz:1".parse::<PciId>().is_err());
    }

    #[test]
    fn dates_and_hashes() {
        assert_eq!(
            normalize_date("July 29, 2021").as_deref(),
            Some("2021-07-29")
        );
        assert_eq!(normalize_date("20240115").as_deref(), Some("2024-01-15"));
        assert_eq!(
            normalize_date("2024-06-21T06:08:27").as_deref(),
            Some("2024-06-21")
        );
        assert_eq!(normalize_date("soon"), None);
        let mut h = Hashes::default();
        assert!(h.set_tagged("md5sum:1A18D5D94FAD55DC6FC51630383B1E7F"));
        assert_eq!(h.strength(), HashStrength::WeakMd5Sha1);
        assert!(!h.set("sha256", "abc"));
        assert!(h.set_tagged(&"a".repeat(64)));
        assert_eq!(h.strength(), HashStrength::Sha256);
        assert_eq!(
            normalize_guid("{B585990A-003E-5270-89D5-3705A17F9A43}").as_deref(),
            Some("b585990a-003e-5270-89d5-3705a17f9a43")
        );
        assert_eq!(normalize_guid("null"), None);
    }
}
