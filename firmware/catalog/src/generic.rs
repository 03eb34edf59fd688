//! The generic catalog: operator-written YAML or JSON entries
//! `{url, sha256|sha1|md5|checksum, vendor, component, version, models[], system_ids[],
//! pci_ids[], guids[]}`. Also accepted as is: Ironic's `firmware_images` list
//! (`{url, checksum, source, wait}`) and metal-toolbox `modeldata.json`
//! (`[{model, manufacturer, firmware: {<component>: [{filename, firmware_version, md5sum,
//! vendor_uri, build_date, latest, install_inband, oem}]}}]`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{CatalogError, Result};
use crate::model::{CatalogEntry, Criticality, PciId, normalize_date, normalize_guid, push_unique};

/// One generic entry, in the field names operators write (a superset of Ironic's).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GenericItem {
    /// Stable id; defaults to `<component>/<file name or version>`.
    pub id: Option<String>,
    /// Download URL.
    pub url: Option<String>,
    /// SHA-256 hex.
    pub sha256: Option<String>,
    /// SHA-1 hex.
    pub sha1: Option<String>,
    /// MD5 hex.
    pub md5: Option<String>,
    /// Ironic/fleetdb style `algo:hex` or bare hex.
    pub checksum: Option<String>,
    /// Where a Supermicro `checksum.txt` for this file is.
    pub checksum_url: Option<String>,
    /// Vendor.
    #[serde(alias = "manufacturer")]
    pub vendor: Option<String>,
    /// Component kind (`bios`, `bmc`, `nic`…).
    pub component: Option<String>,
    /// Human name.
    pub name: Option<String>,
    /// Version installed by the file.
    #[serde(alias = "firmware_version")]
    pub version: Option<String>,
    /// Release date.
    #[serde(alias = "build_date")]
    pub release_date: Option<String>,
    /// Criticality word.
    pub criticality: Option<String>,
    /// Reboot needed.
    pub reboot: Option<bool>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// File name (fleetdb).
    pub filename: Option<String>,
    /// Single model (fleetdb).
    pub model: Option<String>,
    /// Models.
    #[serde(default)]
    pub models: Vec<String>,
    /// System ids.
    #[serde(default)]
    pub system_ids: Vec<String>,
    /// PCI ids `vvvv:dddd[:ssss:ssss]`.
    #[serde(default)]
    pub pci_ids: Vec<String>,
    /// Firmware GUIDs.
    #[serde(default)]
    pub guids: Vec<String>,
    /// Redfish SoftwareIds.
    #[serde(default)]
    pub software_ids: Vec<String>,
    /// Ironic `source` (http, local, swift): kept in `extra`.
    pub source: Option<String>,
    /// Ironic `wait` seconds: kept in `extra`.
    pub wait: Option<u64>,
    /// metal-toolbox `vendor_uri` (used as url when `url` is absent).
    pub vendor_uri: Option<String>,
    /// metal-toolbox `md5sum`.
    pub md5sum: Option<String>,
    /// metal-toolbox `latest`.
    pub latest: Option<bool>,
    /// metal-toolbox `install_inband`.
    pub install_inband: Option<bool>,
    /// metal-toolbox `oem`.
    pub oem: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct ModelData {
    model: Option<String>,
    manufacturer: Option<String>,
    firmware: BTreeMap<String, Vec<GenericItem>>,
}

fn to_value(bytes: &[u8]) -> Result<Value> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if matches!(first, Some(b'{') | Some(b'[')) {
        serde_json::from_slice(bytes).map_err(|e| CatalogError::json("generic catalog", e))
    } else {
        serde_norway::from_slice(bytes).map_err(|e| CatalogError::Yaml {
            context: "generic catalog".into(),
            source: e,
        })
    }
}

fn item(v: Value, ctx: &str) -> Result<GenericItem> {
    serde_json::from_value(v).map_err(|e| CatalogError::json(ctx, e))
}

/// Parses a generic catalog (YAML or JSON; list, `{entries: [...]}`, `{firmware_images: [...]}`
/// or `modeldata.json`).
pub fn parse(catalog: &str, bytes: &[u8]) -> Result<Vec<CatalogEntry>> {
    let v = to_value(bytes)?;
    let mut items: Vec<(GenericItem, Option<String>, Option<String>)> = Vec::new();
    let list = match v {
        Value::Array(a) => a,
        Value::Object(mut o) => match o.remove("entries").or_else(|| o.remove("firmware_images")) {
            Some(Value::Array(a)) => a,
            _ => {
                return Err(CatalogError::invalid(
                    "generic catalog",
                    "expected a list, `entries: [...]` or `firmware_images: [...]`",
                ));
            }
        },
        _ => {
            return Err(CatalogError::invalid(
                "generic catalog",
                "expected a list or a map",
            ));
        }
    };
    for (i, v) in list.into_iter().enumerate() {
        let ctx = format!("entry {i}");
        if v.get("firmware").is_some() {
            let md: ModelData =
                serde_json::from_value(v).map_err(|e| CatalogError::json(&ctx, e))?;
            for (component, list) in md.firmware {
                for mut it in list {
                    it.component.get_or_insert_with(|| component.clone());
                    items.push((it, md.model.clone(), md.manufacturer.clone()));
                }
            }
        } else {
            items.push((item(v, &ctx)?, None, None));
        }
    }
    let mut out: Vec<CatalogEntry> = Vec::with_capacity(items.len());
    for (it, model, maker) in items {
        out.push(to_entry(catalog, it, model, maker)?);
    }
    // Keys must be unique for the diff: suffix repeats.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for e in &mut out {
        let n = seen.entry(e.entry_id.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            e.entry_id = format!("{}#{}", e.entry_id, n);
        }
    }
    Ok(out)
}

fn to_entry(
    catalog: &str,
    it: GenericItem,
    model: Option<String>,
    maker: Option<String>,
) -> Result<CatalogEntry> {
    let url = it.url.clone().or(it.vendor_uri.clone());
    let file = it
        .filename
        .clone()
        .or_else(|| url.as_deref().map(|u| crate::lvfs::basename(u).to_string()))
        .filter(|f| !f.is_empty());
    let component = it.component.clone().unwrap_or_default();
    let version = it.version.clone().unwrap_or_default();
    let id = it.id.clone().unwrap_or_else(|| {
        let tail = file.clone().unwrap_or_else(|| version.clone());
        if component.is_empty() {
            tail
        } else {
            format!("{component}/{tail}")
        }
    });
    if id.is_empty() {
        return Err(CatalogError::invalid(
            "entry",
            "needs one of id, url, filename or version",
        ));
    }
    let mut e = CatalogEntry::new(catalog, id, it.vendor.clone().or(maker).unwrap_or_default());
    e.component_type = component;
    e.version = version;
    e.name = it.name.clone().or(file.clone()).unwrap_or_default();
    e.url = url;
    e.size = it.size;
    e.reboot = it.reboot;
    e.criticality = it
        .criticality
        .as_deref()
        .map(Criticality::from_word)
        .unwrap_or_default();
    e.release_date = it
        .release_date
        .as_deref()
        .map(|d| normalize_date(d).unwrap_or_else(|| d.to_string()));
    for (algo, v) in [
        ("sha256", &it.sha256),
        ("sha1", &it.sha1),
        ("md5", &it.md5),
        ("md5", &it.md5sum),
    ] {
        if let Some(v) = v
            && !e.hashes.set(algo, v)
        {
            return Err(CatalogError::invalid(
                algo,
                format!("{v:?} is not a {algo} hex digest"),
            ));
        }
    }
    if let Some(c) = &it.checksum
        && !e.hashes.set_tagged(c)
    {
        return Err(CatalogError::invalid(
            "checksum",
            format!("{c:?} is not algo:hex or a known digest length"),
        ));
    }
    let mut models = it.models.clone();
    if let Some(m) = it.model.clone().or(model) {
        models.push(m);
    }
    for m in models {
        push_unique(&mut e.applies_to.models, m);
    }
    for s in &it.system_ids {
        push_unique(&mut e.applies_to.system_ids, s.to_ascii_uppercase());
    }
    for p in &it.pci_ids {
        push_unique(&mut e.applies_to.pci_ids, p.parse::<PciId>()?);
    }
    for g in &it.guids {
        let n = normalize_guid(g)
            .ok_or_else(|| CatalogError::invalid("guids", format!("{g:?} is not a GUID")))?;
        push_unique(&mut e.applies_to.guids, n);
    }
    for s in &it.software_ids {
        push_unique(&mut e.applies_to.software_ids, s.clone());
    }
    if let Some(u) = &it.checksum_url {
        e.extra.insert("checksum_url".into(), u.clone());
    }
    if let Some(s) = &it.source {
        e.extra.insert("source".into(), s.clone());
    }
    if let Some(w) = it.wait {
        e.extra.insert("wait".into(), w.to_string());
    }
    for (k, v) in [
        ("latest", it.latest),
        ("install_inband", it.install_inband),
        ("oem", it.oem),
    ] {
        if let Some(v) = v {
            e.extra.insert(k.into(), v.to_string());
        }
    }
    Ok(e)
}
