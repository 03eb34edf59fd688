//! Matching an installed component against catalog entries: is a newer version available
//! (and how urgent), is it current, or is it running a version the catalog no longer lists.
//!
//! An entry is a candidate when it names the component (a common GUID, its Redfish SoftwareId,
//! a PCI id that covers one of its PCI ids, or, for entries with none of those, the same
//! component type and a matching model/system id) and, where the component reports a system id
//! or a model, the entry's system ids/models (when it has any) include them.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::model::{CatalogEntry, Criticality, PciId};
use crate::version::compare_versions;

/// What the inventory knows about one installed component.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledComponent {
    /// Component kind (`bios`, `bmc`, `nic`…), compared with the entry's component type.
    pub kind: String,
    /// Server model (`PowerEdge R750`).
    pub model: Option<String>,
    /// Vendor system id (Dell 4-hex, Lenovo machine type).
    pub system_id: Option<String>,
    /// PCI ids of the device.
    pub pci_ids: Vec<PciId>,
    /// Firmware GUIDs (fwupd, HPE targets).
    pub guids: Vec<String>,
    /// Redfish `SoftwareInventory.SoftwareId`.
    pub software_id: Option<String>,
    /// The running version.
    pub firmware_version: String,
}

/// The answer for one component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
pub enum MatchVerdict {
    /// A newer version is listed.
    UpdateAvailable {
        /// The running version.
        installed: String,
        /// The newest listed version.
        latest: String,
        /// Key of the newest entry.
        entry_key: String,
        /// The highest criticality among the entries newer than the running version.
        criticality: Criticality,
        /// Whether the running version is itself listed.
        installed_listed: bool,
    },
    /// The running version is the newest listed.
    Current {
        /// The running version.
        version: String,
        /// Key of its entry.
        entry_key: String,
    },
    /// The running version is not listed and nothing newer is: withdrawn or unknown firmware.
    NotListed {
        /// The running version.
        installed: String,
        /// The newest version the catalog does list for the component.
        latest: String,
    },
    /// No entry applies to this component.
    NoMatch,
}

fn eq_ci(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn model_matches(entry_models: &[String], model: &str) -> bool {
    let m = model.trim().to_ascii_lowercase();
    entry_models.iter().any(|e| {
        let e = e.trim().to_ascii_lowercase();
        !e.is_empty() && (e == m || m.ends_with(&format!(" {e}")) || e.ends_with(&format!(" {m}")))
    })
}

/// Whether an entry applies to a component (see the module doc).
pub fn applies(e: &CatalogEntry, c: &InstalledComponent) -> bool {
    let a = &e.applies_to;
    let identity = a.guids.iter().any(|g| c.guids.iter().any(|h| eq_ci(g, h)))
        || c.software_id
            .as_deref()
            .is_some_and(|s| a.software_ids.iter().any(|x| eq_ci(x, s)))
        || a.pci_ids
            .iter()
            .any(|p| c.pci_ids.iter().any(|q| p.covers(q)));
    let has_identity = !(a.guids.is_empty() && a.software_ids.is_empty() && a.pci_ids.is_empty());
    let system_ok = match (&c.system_id, a.system_ids.is_empty()) {
        (Some(s), false) => a.system_ids.iter().any(|x| eq_ci(x, s)),
        _ => true,
    };
    let model_ok = match (&c.model, a.models.is_empty()) {
        (Some(m), false) => model_matches(&a.models, m),
        _ => true,
    };
    if has_identity {
        return identity && system_ok && model_ok;
    }
    // Entries without device identity (generic, Supermicro, Lenovo): kind plus a positive
    // model or system match.
    let positive = (c.system_id.is_some() && !a.system_ids.is_empty() && system_ok)
        || (c.model.is_some() && !a.models.is_empty() && model_ok);
    !c.kind.is_empty() && eq_ci(&e.component_type, &c.kind) && positive && system_ok && model_ok
}

/// Answers whether a component is current, behind (with criticality), or running a version the
/// catalog no longer lists.
pub fn match_component<'a>(
    entries: impl IntoIterator<Item = &'a CatalogEntry>,
    c: &InstalledComponent,
) -> MatchVerdict {
    let candidates: Vec<&CatalogEntry> = entries
        .into_iter()
        .filter(|e| !e.version.trim().is_empty() && applies(e, c))
        .collect();
    let Some(latest) = candidates.iter().copied().max_by(|a, b| {
        compare_versions(&a.version, &b.version).then_with(|| b.key().cmp(&a.key()))
    }) else {
        return MatchVerdict::NoMatch;
    };
    let installed = c.firmware_version.trim();
    let listed = candidates
        .iter()
        .any(|e| compare_versions(&e.version, installed) == Ordering::Equal);
    match compare_versions(&latest.version, installed) {
        Ordering::Greater => MatchVerdict::UpdateAvailable {
            installed: installed.to_string(),
            latest: latest.version.clone(),
            entry_key: latest.key(),
            criticality: candidates
                .iter()
                .filter(|e| compare_versions(&e.version, installed) == Ordering::Greater)
                .map(|e| e.criticality)
                .max()
                .unwrap_or_default(),
            installed_listed: listed,
        },
        Ordering::Equal => MatchVerdict::Current {
            version: installed.to_string(),
            entry_key: latest.key(),
        },
        Ordering::Less => MatchVerdict::NotListed {
            installed: installed.to_string(),
            latest: latest.version.clone(),
        },
    }
}
