//! HPE: the SDR `fwrepodata/fwrepo.json` index and the `.fwpkg` package (a zip with
//! `payload.json`), with the detached `.compsig` signature recorded when present.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{CatalogError, Result};
use crate::model::{
    CatalogEntry, SignatureRef, normalize_date, normalize_guid, parse_bool, push_unique,
};

/// The most a `payload.json` may be (they are a few KiB).
const MAX_PAYLOAD_JSON: u64 = 16 << 20;

/// One value of the SDR `fwrepo.json` map, in HPE's field names.
#[derive(Debug, Clone, Deserialize)]
pub struct FwrepoItem {
    /// `YYYYMMDD`.
    pub date: Option<String>,
    /// Free-text description.
    pub description: Option<String>,
    /// Device class GUID.
    pub deviceclass: Option<String>,
    /// Lowest version this can update from; the string `null` means none.
    pub minimum_active_version: Option<String>,
    /// `yes` / `no`.
    pub reboot_required: Option<String>,
    /// `True` / `False`.
    pub server_power_off: Option<String>,
    /// Target device GUIDs (`null` entries are skipped).
    #[serde(default)]
    pub target: Vec<String>,
    /// Version the file installs.
    pub version: Option<String>,
}

fn not_null(s: &Option<String>) -> Option<&str> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("null"))
}

/// Parses `fwrepo.json`; `base_url` is the directory the files sit in (`…/current/`).
pub fn parse_fwrepo(catalog: &str, base_url: &str, bytes: &[u8]) -> Result<Vec<CatalogEntry>> {
    let map: BTreeMap<String, FwrepoItem> =
        serde_json::from_slice(bytes).map_err(|e| CatalogError::json("fwrepo.json", e))?;
    let base = base_url.trim_end_matches('/');
    let mut out = Vec::with_capacity(map.len());
    for (file, item) in &map {
        if file.to_ascii_lowercase().ends_with(".compsig") {
            continue;
        }
        let mut e = CatalogEntry::new(catalog, file.clone(), "HPE");
        e.version = not_null(&item.version).unwrap_or_default().to_string();
        e.name = not_null(&item.description).unwrap_or(file).to_string();
        e.component_type = not_null(&item.deviceclass).unwrap_or_default().to_string();
        e.release_date =
            not_null(&item.date).map(|d| normalize_date(d).unwrap_or_else(|| d.to_string()));
        e.reboot = not_null(&item.reboot_required).and_then(parse_bool);
        e.url = Some(format!("{base}/{file}"));
        for t in &item.target {
            if let Some(g) = normalize_guid(t) {
                push_unique(&mut e.applies_to.guids, g);
            }
        }
        if let Some(v) = not_null(&item.minimum_active_version) {
            e.extra
                .insert("minimum_active_version".into(), v.to_string());
        }
        if let Some(v) = not_null(&item.server_power_off) {
            e.extra.insert("server_power_off".into(), v.to_string());
        }
        let sig = format!("{file}.compsig");
        if map.contains_key(&sig) {
            e.signature = Some(SignatureRef {
                kind: "compsig".into(),
                url: format!("{base}/{sig}"),
            });
        }
        out.push(e);
    }
    Ok(out)
}

/// `FirmwareImages[]` of a device in `payload.json`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct FirmwareImage {
    /// The image file inside the fwpkg.
    pub file_name: String,
    /// Whether iLO can flash it directly (type A/B).
    pub direct_flash_ok: Option<bool>,
    /// Whether a reset is needed.
    pub reset_required: Option<bool>,
    /// Whether UEFI flashes it on reboot (type C).
    pub uefi_flashable: Option<bool>,
    /// Whether it is a PLDM image.
    #[serde(rename = "PLDMImage")]
    pub pldm_image: Option<bool>,
    /// Expected install time.
    pub install_duration_sec: Option<u64>,
}

/// `Devices.Device[]` of `payload.json`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct FwpkgDevice {
    /// Device name.
    pub device_name: Option<String>,
    /// Target GUID (matches Redfish/iLO inventory).
    pub target: Option<String>,
    /// Version of the images.
    pub version: Option<String>,
    /// The images.
    #[serde(default)]
    pub firmware_images: Vec<FirmwareImage>,
}

#[derive(Debug, Clone, Deserialize)]
struct Devices {
    #[serde(rename = "Device", default)]
    device: Vec<FwpkgDevice>,
}

#[derive(Debug, Clone, Deserialize)]
struct Installation {
    reboot_required: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Localized {
    lang: Option<String>,
    x_late: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct PackageInfo {
    #[serde(alias = "ReleaseDate")]
    release_date: Option<String>,
    #[serde(alias = "Name", default)]
    name: Vec<Localized>,
    #[serde(alias = "Installation")]
    installation: Option<Installation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PayloadJson {
    package_format: Option<String>,
    #[serde(default)]
    updatable_by: Vec<String>,
    devices: Option<Devices>,
    #[serde(alias = "package", rename = "Package")]
    package: Option<PackageInfo>,
}

/// What a `.fwpkg` says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fwpkg {
    /// `PackageFormat` (`FWPKG-v2`).
    pub package_format: Option<String>,
    /// `UpdatableBy` (`Bmc`, `Uefi`, `RuntimeAgent`).
    pub updatable_by: Vec<String>,
    /// `Devices.Device[]`.
    pub devices: Vec<FwpkgDevice>,
    /// English package name.
    pub name: Option<String>,
    /// Package release date, `YYYY-MM-DD`.
    pub release_date: Option<String>,
    /// `installation.reboot_required`.
    pub reboot_required: Option<bool>,
    /// `.compsig` files inside the zip (large components are split, each part signed).
    pub compsigs: Vec<String>,
    /// SHA-256 of the whole fwpkg.
    pub sha256: String,
}

/// Parses a `payload.json` on its own (for tests and for iLO repository listings).
pub fn parse_payload_json(bytes: &[u8]) -> Result<Fwpkg> {
    let p: PayloadJson =
        serde_json::from_slice(bytes).map_err(|e| CatalogError::json("payload.json", e))?;
    let pkg = p.package.as_ref();
    let name = pkg.and_then(|p| {
        p.name
            .iter()
            .find(|l| l.lang.as_deref() == Some("en"))
            .or_else(|| p.name.first())
            .and_then(|l| l.x_late.clone())
    });
    Ok(Fwpkg {
        package_format: p.package_format,
        updatable_by: p.updatable_by,
        devices: p.devices.map(|d| d.device).unwrap_or_default(),
        name,
        release_date: pkg
            .and_then(|p| p.release_date.as_deref())
            .and_then(normalize_date),
        reboot_required: pkg
            .and_then(|p| p.installation.as_ref())
            .and_then(|i| i.reboot_required.as_deref())
            .and_then(parse_bool),
        compsigs: Vec::new(),
        sha256: String::new(),
    })
}

/// Reads a downloaded `.fwpkg` (zip): its `payload.json`, the `.compsig`s inside and its SHA-256.
pub fn read_fwpkg(bytes: &[u8]) -> Result<Fwpkg> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| CatalogError::Zip(e.to_string()))?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| CatalogError::Zip(e.to_string()))?;
    let payload_name = names
        .iter()
        .find(|n| {
            n.rsplit('/')
                .next()
                .is_some_and(|b| b.eq_ignore_ascii_case("payload.json"))
        })
        .ok_or_else(|| CatalogError::invalid("fwpkg", "no payload.json in the zip"))?
        .clone();
    let mut buf = Vec::new();
    {
        let f = zip
            .by_name(&payload_name)
            .map_err(|e| CatalogError::Zip(e.to_string()))?;
        f.take(MAX_PAYLOAD_JSON + 1)
            .read_to_end(&mut buf)
            .map_err(|e| CatalogError::Zip(e.to_string()))?;
    }
    if buf.len() as u64 > MAX_PAYLOAD_JSON {
        return Err(CatalogError::TooLarge {
            what: "payload.json".into(),
            limit: MAX_PAYLOAD_JSON,
        });
    }
    let mut pkg = parse_payload_json(&buf)?;
    pkg.compsigs = names
        .into_iter()
        .filter(|n| n.to_ascii_lowercase().ends_with(".compsig"))
        .collect();
    pkg.sha256 = hex::encode(Sha256::digest(bytes));
    Ok(pkg)
}

/// Turns a read `.fwpkg` into entries, one per target device.
pub fn fwpkg_entries(
    catalog: &str,
    file_name: &str,
    url: Option<&str>,
    pkg: &Fwpkg,
) -> Vec<CatalogEntry> {
    pkg.devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let target = d.target.as_deref().and_then(normalize_guid);
            let id = match &target {
                Some(t) => format!("{file_name}#{t}"),
                None => format!("{file_name}#{i}"),
            };
            let mut e = CatalogEntry::new(catalog, id, "HPE");
            e.name = d
                .device_name
                .clone()
                .or_else(|| pkg.name.clone())
                .unwrap_or_default();
            e.version = d.version.clone().unwrap_or_default();
            e.release_date = pkg.release_date.clone();
            e.url = url.map(str::to_string);
            e.hashes.sha256 = Some(pkg.sha256.clone()).filter(|s| !s.is_empty());
            let reset = d
                .firmware_images
                .iter()
                .any(|im| im.reset_required == Some(true));
            e.reboot = pkg.reboot_required.map(|r| r || reset).or(Some(reset));
            if let Some(t) = target {
                e.applies_to.guids.push(t);
            }
            if !pkg.updatable_by.is_empty() {
                e.extra
                    .insert("UpdatableBy".into(), pkg.updatable_by.join(","));
            }
            if let Some(f) = &pkg.package_format {
                e.extra.insert("PackageFormat".into(), f.clone());
            }
            let images: Vec<&str> = d
                .firmware_images
                .iter()
                .map(|im| im.file_name.as_str())
                .collect();
            if !images.is_empty() {
                e.extra.insert("FirmwareImages".into(), images.join(","));
            }
            if let Some(sig) = pkg.compsigs.first() {
                e.signature = Some(SignatureRef {
                    kind: "compsig".into(),
                    url: format!("fwpkg:{sig}"),
                });
            }
            e
        })
        .collect()
}
