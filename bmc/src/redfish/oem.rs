//! Vendor differences that change what an inventory means: which FirmwareInventory entries are
//! the running images, and where vendors put a component's location. Detected from the service
//! root's `Vendor` (or `Oem` keys) and the managers' `Manufacturer`/`Model`.

use serde_json::Value;

use automata_schemas::types::ComponentKind;

/// The BMC vendor, as far as the inventory cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// Anything without known quirks (DMTF mockups, OpenBMC, AMI).
    Generic,
    /// Dell iDRAC.
    Dell,
    /// HPE iLO.
    Hpe,
    /// Lenovo XClarity Controller.
    Lenovo,
    /// Supermicro.
    Supermicro,
}

/// Which vendor's BMC this is.
pub fn detect(root: &Value, managers: &[Value]) -> Vendor {
    let mut hints: Vec<String> = Vec::new();
    if let Some(v) = root.get("Vendor").and_then(Value::as_str) {
        hints.push(v.to_string());
    }
    if let Some(o) = root.get("Oem").and_then(Value::as_object) {
        hints.extend(o.keys().cloned());
    }
    for m in managers {
        if let Some(o) = m.get("Oem").and_then(Value::as_object) {
            hints.extend(o.keys().cloned());
        }
        for k in ["Manufacturer", "Model", "Name"] {
            if let Some(v) = m.get(k).and_then(Value::as_str) {
                hints.push(v.to_string());
            }
        }
    }
    let has = |needles: &[&str]| {
        hints
            .iter()
            .any(|h| needles.iter().any(|n| h.to_ascii_lowercase().contains(n)))
    };
    if has(&["dell", "idrac"]) {
        Vendor::Dell
    } else if has(&["hpe", "hewlett", "ilo"]) {
        Vendor::Hpe
    } else if has(&["lenovo", "xclarity", "xcc"]) {
        Vendor::Lenovo
    } else if has(&["supermicro"]) {
        Vendor::Supermicro
    } else {
        Vendor::Generic
    }
}

/// Whether a FirmwareInventory entry is the image that runs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirmwareImage {
    /// Running now.
    Running,
    /// The image before the last update (Dell `Previous-…`).
    Previous,
    /// Staged, not yet installed (Dell `Available-…`, pending images).
    Available,
    /// A redundant copy (Lenovo `…-Backup`, `StandbySpare`).
    Backup,
}

impl FirmwareImage {
    /// Lowercase name, the `image` property.
    pub fn as_str(self) -> &'static str {
        match self {
            FirmwareImage::Running => "running",
            FirmwareImage::Previous => "previous",
            FirmwareImage::Available => "available",
            FirmwareImage::Backup => "backup",
        }
    }
}

/// Classifies a FirmwareInventory entry: the running image, or a previous, staged or spare one.
pub fn firmware_image(vendor: Vendor, id: &str, v: &Value) -> FirmwareImage {
    // iDRAC lists a component as Installed-<ComponentID>-<version>__<FQDD> (running), often again
    // as Current-… (the same image; see `dedupe`), Previous-… (the rollback image) and
    // Available-… (staged in its repository).
    if id.starts_with("Previous-") {
        return FirmwareImage::Previous;
    }
    if id.starts_with("Available-") {
        return FirmwareImage::Available;
    }
    let lower = id.to_ascii_lowercase();
    let description = v
        .get("Description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    // Lenovo XCC: BMC-Backup (StandbySpare); Supermicro: Backup_/Golden_ images; HPE iLO: the
    // redundant ROM says so only in its Description ("SystemRomBackup").
    if lower.contains("backup") || lower.contains("golden") || description.contains("rombackup") {
        return FirmwareImage::Backup;
    }
    // Lenovo: *-Pending; Supermicro: Staging_BMC, Capsule_BIOS.
    if lower.contains("pending") || lower.contains("staging") || lower.starts_with("capsule") {
        return FirmwareImage::Available;
    }
    let _ = vendor;
    match v.pointer("/Status/State").and_then(Value::as_str) {
        Some("StandbySpare") | Some("StandbyOffline") => FirmwareImage::Backup,
        _ => FirmwareImage::Running,
    }
}

/// An entry that names a slot with no image in it (Lenovo "-*", Supermicro "Not Present", a
/// null Version): not firmware, so not inventory.
pub fn is_placeholder(v: &Value) -> bool {
    match v.get("Version").and_then(Value::as_str).map(str::trim) {
        None => true,
        Some(s) => s.is_empty() || matches!(s, "-*" | "Not Present" | "N/A" | "NA"),
    }
}

/// Drops entries that repeat another: Dell's Current-X beside Installed-X, Lenovo's
/// `Slot_N.Bundle` beside the slot's own entry with the same SoftwareId and version.
pub fn dedupe(entries: &[Value]) -> Vec<&Value> {
    let id = |v: &Value| {
        v.get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let ids: std::collections::HashSet<String> = entries.iter().map(id).collect();
    let key = |v: &Value| {
        (
            v.get("SoftwareId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            v.get("Version")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        )
    };
    let unbundled: std::collections::HashSet<(String, String)> = entries
        .iter()
        .filter(|v| !id(v).ends_with(".Bundle"))
        .map(key)
        .filter(|(sid, _)| !sid.is_empty())
        .collect();
    entries
        .iter()
        .filter(|v| {
            let i = id(v);
            if let Some(rest) = i.strip_prefix("Current-") {
                return !ids.contains(&format!("Installed-{rest}"));
            }
            if i.ends_with(".Bundle") {
                return !unbundled.contains(&key(v));
            }
            true
        })
        .collect()
}

/// What kind of component a FirmwareInventory entry is for, from its Id and Name.
pub fn firmware_kind(id: &str, name: Option<&str>) -> ComponentKind {
    let hay = format!("{id} {}", name.unwrap_or_default()).to_ascii_lowercase();
    let has = |n: &[&str]| n.iter().any(|x| hay.contains(x));
    if has(&["bios_me", "bios me", "management engine"]) {
        ComponentKind::Other
    } else if has(&["bios", "uefi", "system rom", "bios.setup"]) {
        ComponentKind::Bios
    } else if has(&["bmc", "idrac", "ilo ", "xcc", "imm2"]) && !has(&["nic"]) {
        ComponentKind::Bmc
    } else if has(&["nic", "ethernet", "network", "connectx", "broadcom"]) {
        ComponentKind::Nic
    } else if has(&["raid", "perc", "storage controller", "smart array", "hba"]) {
        ComponentKind::StorageController
    } else if has(&["nvme"]) {
        ComponentKind::Nvme
    } else if has(&["disk", "drive", "ssd", "hdd"]) {
        ComponentKind::Disk
    } else if has(&["power supply", "psu"]) {
        ComponentKind::Psu
    } else if has(&["cpld", "fpga"]) {
        ComponentKind::Baseboard
    } else if has(&["tpm"]) {
        ComponentKind::Tpm
    } else if has(&["gpu"]) {
        ComponentKind::Gpu
    } else {
        ComponentKind::Other
    }
}

/// Where the vendor says the firmware's device sits.
pub fn firmware_location(vendor: Vendor, v: &Value) -> Option<String> {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    match vendor {
        // iLO puts "System Board", "Slot 1", "Bay 3" in Oem.Hpe.DeviceContext.
        Vendor::Hpe => s("/Oem/Hpe/DeviceContext").or_else(|| s("/Oem/Hp/DeviceContext")),
        _ => None,
    }
    .or_else(|| s("/Location/PartLocation/ServiceLabel"))
}
