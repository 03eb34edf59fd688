//! Lenovo XClarity OneCLI / UpdateXpress directories: `lnvgy_fw_*.xml` package descriptors and
//! `*_comp.zip` packages with an `index.json`.
//!
//! The descriptor and `index.json` schemas could not be verified against real packages (see
//! the firmware notes), so this reader is deliberately tolerant and states its assumptions:
//! - the package naming `lnvgy_fw_<comp>_<buildid>-<version>_<os>_<arch>` is authoritative
//!   for the entry id, component, build id and version; descriptor fields only add to it;
//! - descriptor elements are matched by lowercase local name anywhere in the tree:
//!   `version`/`fixversion`, `buildid`/`build`, `name`/`title`/`description` (first),
//!   `machinetype(s)`/`mt`/`applicablemachinetypes` (4-character codes, comma or space
//!   separated), `severity`/`criticality`, `rebootrequired`/`reboot`, `sha256`/`sha1`/`md5`
//!   or `checksum`/`hash` with a `type`/`algorithm` attribute, `filename`/`payload`;
//! - `index.json` is searched the same way over its keys, case-insensitively.
//!
//! Unknown elements are ignored, never errors; malformed XML or JSON still is.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::Path;

use serde_json::Value;

use crate::error::{CatalogError, Result};
use crate::model::{CatalogEntry, Criticality, parse_bool, push_unique};
use crate::xml::{XmlEvent, walk};

/// What the package file name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageName {
    /// The name without extension (entry id).
    pub stem: String,
    /// `xcc`, `uefi`, `lxpm`…
    pub component: String,
    /// Lenovo build id (`cdi3a4e`).
    pub build_id: String,
    /// Version (`8.30`).
    pub version: String,
    /// `anyos`, `linux`…
    pub os: Option<String>,
}

/// Splits `lnvgy_fw_<comp>_<buildid>-<version>_<os>_<arch>[.ext]`; None if it is not one.
pub fn parse_package_name(file: &str) -> Option<PackageName> {
    let base = crate::lvfs::basename(file);
    let stem = base
        .strip_suffix(".xml")
        .or_else(|| base.strip_suffix(".zip"))
        .or_else(|| base.strip_suffix(".uxz"))
        .unwrap_or(base);
    let rest = stem.strip_prefix("lnvgy_fw_")?;
    let parts: Vec<&str> = rest.split('_').collect();
    let pos = parts.iter().position(|p| {
        p.split_once('-').is_some_and(|(b, v)| {
            !b.is_empty() && v.chars().next().is_some_and(|c| c.is_ascii_digit())
        })
    })?;
    if pos == 0 {
        return None;
    }
    let (build, version) = parts[pos].split_once('-')?;
    Some(PackageName {
        stem: stem.to_string(),
        component: parts[..pos].join("_"),
        build_id: build.to_string(),
        version: version.to_string(),
        os: parts.get(pos + 1).map(|s| s.to_string()),
    })
}

#[derive(Default)]
struct Fields {
    first: BTreeMap<String, String>,
    machine_types: Vec<String>,
    hashes: Vec<(String, String)>,
}

fn add_machine_types(f: &mut Fields, text: &str) {
    for mt in text.split(|c: char| c == ',' || c == ';' || c.is_whitespace()) {
        let mt = mt.trim();
        if mt.len() == 4 && mt.chars().all(|c| c.is_ascii_alphanumeric()) {
            push_unique(&mut f.machine_types, mt.to_ascii_uppercase());
        }
    }
}

fn note(f: &mut Fields, key: &str, text: &str, algo: Option<&str>) {
    let key = key.to_ascii_lowercase();
    match key.as_str() {
        "machinetype"
        | "machinetypes"
        | "mt"
        | "mts"
        | "applicablemachinetypes"
        | "machine_types" => add_machine_types(f, text),
        "sha256" | "sha1" | "md5" => f.hashes.push((key.clone(), text.to_string())),
        "checksum" | "hash" => f
            .hashes
            .push((algo.unwrap_or("").to_string(), text.to_string())),
        _ => {
            f.first.entry(key).or_insert_with(|| text.to_string());
        }
    }
}

fn get<'a>(f: &'a Fields, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| f.first.get(*k))
        .map(String::as_str)
}

fn build_entry(
    catalog: &str,
    file: &str,
    f: &Fields,
    base_url: Option<&str>,
) -> Result<CatalogEntry> {
    let pn = parse_package_name(file);
    let id = pn
        .as_ref()
        .map(|p| p.stem.clone())
        .unwrap_or_else(|| crate::lvfs::basename(file).to_string());
    let mut e = CatalogEntry::new(catalog, id, "Lenovo");
    e.component_type = pn
        .as_ref()
        .map(|p| p.component.clone())
        .or_else(|| get(f, &["component", "category", "type"]).map(str::to_string))
        .unwrap_or_default();
    e.version = pn
        .as_ref()
        .map(|p| p.version.clone())
        .or_else(|| get(f, &["version", "fixversion", "packageversion"]).map(str::to_string))
        .unwrap_or_default();
    if e.version.is_empty() {
        return Err(CatalogError::invalid(
            "version",
            format!("{file}: no version in name or descriptor"),
        ));
    }
    e.name = get(f, &["name", "title", "packagename", "description"])
        .unwrap_or(&e.entry_id)
        .to_string();
    if let Some(b) = pn
        .as_ref()
        .map(|p| p.build_id.as_str())
        .or_else(|| get(f, &["buildid", "build", "buildnumber"]))
    {
        e.extra.insert("build_id".into(), b.to_string());
    }
    e.criticality = get(f, &["severity", "criticality", "updateseverity"])
        .map(Criticality::from_word)
        .unwrap_or_default();
    e.reboot = get(f, &["rebootrequired", "reboot"]).and_then(parse_bool);
    e.release_date = get(f, &["releasedate", "date"])
        .map(|d| crate::model::normalize_date(d).unwrap_or_else(|| d.to_string()));
    for (algo, v) in &f.hashes {
        if !e.hashes.set(algo, v) {
            e.hashes.set_tagged(v);
        }
    }
    e.applies_to.system_ids = f.machine_types.clone();
    let payload = get(f, &["filename", "payload", "file"]).map(str::to_string);
    if let (Some(base), Some(p)) = (base_url, payload.as_deref().or(Some(file))) {
        e.url = Some(format!(
            "{}/{}",
            base.trim_end_matches('/'),
            crate::lvfs::basename(p)
        ));
    }
    if let Some(p) = payload {
        e.extra.insert("payload".into(), p);
    }
    Ok(e)
}

/// Reads one `lnvgy_fw_*.xml` descriptor.
pub fn parse_descriptor(
    catalog: &str,
    file_name: &str,
    bytes: &[u8],
    base_url: Option<&str>,
) -> Result<CatalogEntry> {
    let text = crate::input::open_text(bytes)?;
    let mut f = Fields::default();
    let mut stack: Vec<(String, Option<String>)> = Vec::new();
    walk(text, |ev| {
        match ev {
            XmlEvent::Start(name, a) => {
                let algo = a
                    .get_ci("type")
                    .or_else(|| a.get_ci("algorithm"))
                    .map(str::to_string);
                // Values carried as attributes count too (`<Version value="..."/>`).
                if let Some(v) = a.get_ci("value") {
                    note(&mut f, name, v, algo.as_deref());
                }
                for (k, v) in a.iter() {
                    if matches!(
                        k.to_ascii_lowercase().as_str(),
                        "sha256" | "md5" | "sha1" | "version" | "buildid" | "machinetype"
                    ) {
                        note(&mut f, k, v, None);
                    }
                }
                stack.push((name.to_string(), algo));
            }
            XmlEvent::Text(t) => {
                if let Some((name, algo)) = stack.last() {
                    note(&mut f, name, t, algo.as_deref());
                }
            }
            XmlEvent::End(_) => {
                stack.pop();
            }
        }
        Ok(())
    })?;
    build_entry(catalog, file_name, &f, base_url)
}

fn walk_json(f: &mut Fields, v: &Value, depth: usize) {
    if depth > 32 {
        return;
    }
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match v {
                    Value::String(s) => note(f, k, s, None),
                    Value::Number(n) => note(f, k, &n.to_string(), None),
                    Value::Bool(b) => note(f, k, &b.to_string(), None),
                    Value::Array(a)
                        if k.to_ascii_lowercase().contains("machinetype")
                            || k.eq_ignore_ascii_case("mt") =>
                    {
                        for x in a {
                            if let Value::String(s) = x {
                                add_machine_types(f, s);
                            }
                        }
                    }
                    other => walk_json(f, other, depth + 1),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk_json(f, x, depth + 1)),
        _ => {}
    }
}

/// Reads a `*_comp.zip`: its `index.json` (anywhere in the zip) and the zip's own name.
pub fn parse_comp_zip(
    catalog: &str,
    file_name: &str,
    bytes: &[u8],
    base_url: Option<&str>,
) -> Result<CatalogEntry> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| CatalogError::Zip(e.to_string()))?;
    let mut found = None;
    for i in 0..zip.len() {
        let name = zip
            .by_index(i)
            .map_err(|e| CatalogError::Zip(e.to_string()))?
            .name()
            .map_err(|e| CatalogError::Zip(e.to_string()))?
            .into_owned();
        if crate::lvfs::basename(&name).eq_ignore_ascii_case("index.json") {
            found = Some(i);
            break;
        }
    }
    let i = found
        .ok_or_else(|| CatalogError::invalid("comp zip", format!("{file_name}: no index.json")))?;
    let mut buf = Vec::new();
    zip.by_index(i)
        .map_err(|e| CatalogError::Zip(e.to_string()))?
        .take(16 << 20)
        .read_to_end(&mut buf)
        .map_err(|e| CatalogError::Zip(e.to_string()))?;
    let v: Value = serde_json::from_slice(&buf).map_err(|e| CatalogError::json("index.json", e))?;
    let mut f = Fields::default();
    walk_json(&mut f, &v, 0);
    let mut e = build_entry(catalog, file_name, &f, base_url)?;
    if let Some(base) = base_url {
        e.url = Some(format!(
            "{}/{}",
            base.trim_end_matches('/'),
            crate::lvfs::basename(file_name)
        ));
    }
    e.size = Some(bytes.len() as u64);
    use sha2::Digest;
    e.hashes.sha256 = Some(hex::encode(sha2::Sha256::digest(bytes)));
    Ok(e)
}

/// Reads an UpdateXpress/OneCLI directory: every `lnvgy_fw_*.xml` and `*_comp.zip`.
/// `base_url` is where the directory is served from, when it is.
pub fn parse_directory(
    catalog: &str,
    dir: &Path,
    base_url: Option<&str>,
) -> Result<Vec<CatalogEntry>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let lower = n.to_ascii_lowercase();
        if lower.starts_with("lnvgy_fw_") && lower.ends_with(".xml") {
            let bytes = std::fs::read(dir.join(&n))?;
            out.push(parse_descriptor(catalog, &n, &bytes, base_url)?);
        } else if lower.ends_with("_comp.zip") {
            let bytes = std::fs::read(dir.join(&n))?;
            out.push(parse_comp_zip(catalog, &n, &bytes, base_url)?);
        }
    }
    Ok(out)
}
