//! LVFS / fwupd: AppStream metadata (`firmware.xml(.gz|.zst)`), `.metainfo.xml` inside `.cab`
//! archives, and `.jcat` signature catalogs (item `Id`/`AliasId` resolution, SHA-256 check,
//! signature classification).
//!
//! PKCS#7 and GPG blobs are classified, not verified: their status is `not-verified` (no trust
//! root check was done) or `unsupported-algorithm` (an ML-DSA signature, LVFS CA 2025PQ). No
//! code path here reports a signature as valid.

use std::io::{Cursor, Read};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{CatalogError, Result};
use crate::input::{MAX_DECOMPRESSED, decompress, open_text};
use crate::model::{
    CatalogEntry, Criticality, date_from_unix, normalize_date, normalize_guid, push_unique,
};
use crate::xml::{XmlEvent, walk};

/// The most a single file read out of a `.cab` may be.
const MAX_CAB_MEMBER: u64 = 64 << 20;

#[derive(Default)]
struct Release {
    version: String,
    date: Option<String>,
    urgency: Option<String>,
    location: Option<String>,
    container: Vec<(String, String)>,
    content: Vec<(String, String)>,
    size: Option<u64>,
    artifact_location: Option<String>,
    artifact_checksums: Vec<(String, String)>,
}

#[derive(Default)]
struct Component {
    id: String,
    name: String,
    developer: String,
    guids: Vec<String>,
    custom: Vec<(String, String)>,
    releases: Vec<Release>,
}

fn resolve_location(base_url: Option<&str>, loc: &str) -> String {
    if loc.contains("://") {
        return loc.to_string();
    }
    match base_url {
        Some(b) => format!(
            "{}/{}",
            b.trim_end_matches('/'),
            loc.trim_start_matches("./").trim_start_matches('/')
        ),
        None => loc.to_string(),
    }
}

fn to_entries(catalog: &str, base_url: Option<&str>, c: Component, out: &mut Vec<CatalogEntry>) {
    for r in c.releases {
        let mut e = CatalogEntry::new(
            catalog,
            format!("{}/{}", c.id, r.version),
            c.developer.clone(),
        );
        e.name = if c.name.is_empty() {
            c.id.clone()
        } else {
            c.name.clone()
        };
        e.component_type = "firmware".into();
        e.version = r.version;
        e.release_date = r.date;
        e.criticality = r
            .urgency
            .as_deref()
            .map(Criticality::from_word)
            .unwrap_or_default();
        e.size = r.size;
        let loc = r.artifact_location.or(r.location);
        e.url = loc.map(|l| resolve_location(base_url, &l));
        for (t, v) in r.container.iter().chain(r.artifact_checksums.iter()) {
            e.hashes.set(t, v);
        }
        for (t, v) in &r.content {
            e.extra
                .insert(format!("content_{}", t.to_ascii_lowercase()), v.clone());
        }
        e.applies_to.guids = c.guids.clone();
        e.extra.insert("appstream_id".into(), c.id.clone());
        for (k, v) in &c.custom {
            e.extra.insert(k.clone(), v.clone());
        }
        out.push(e);
    }
}

/// Parses LVFS metadata (`<components>`) or a single `.metainfo.xml` (`<component>`);
/// `base_url` (`FirmwareBaseURI`) makes relative `location`s absolute. One entry per release.
pub fn parse_metadata(
    catalog: &str,
    base_url: Option<&str>,
    bytes: &[u8],
) -> Result<Vec<CatalogEntry>> {
    let text = open_text(bytes)?;
    let mut out = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut comp: Option<Component> = None;
    let mut rel: Option<Release> = None;
    let mut checksum: Option<(String, String)> = None; // (type, target)
    let mut size_download = false;
    let mut custom_key: Option<String> = None;
    let mut firmware_flashed = false;
    let mut artifact_binary = false;
    let mut root: Option<String> = None;
    walk(text, |ev| {
        match ev {
            XmlEvent::Start(name, a) => {
                if root.is_none() {
                    root = Some(name.to_string());
                    if name != "components" && name != "component" {
                        return Err(CatalogError::invalid(
                            "root",
                            format!("<{name}> is not AppStream metadata"),
                        ));
                    }
                }
                match name {
                    "component" => {
                        let fw = a.get("type").is_none_or(|t| t == "firmware");
                        comp = fw.then(Component::default);
                    }
                    "release" if comp.is_some() => {
                        let date = a
                            .get("timestamp")
                            .and_then(|t| t.trim().parse::<i64>().ok())
                            .and_then(date_from_unix)
                            .or_else(|| a.get("date").and_then(normalize_date));
                        rel = Some(Release {
                            version: a.get("version").unwrap_or_default().to_string(),
                            date,
                            urgency: a.get("urgency").map(str::to_string),
                            ..Release::default()
                        });
                    }
                    "checksum" => {
                        checksum = Some((
                            a.get("type").unwrap_or_default().to_string(),
                            a.get("target").unwrap_or("container").to_string(),
                        ));
                    }
                    "size" => size_download = a.get("type") == Some("download"),
                    "value" => custom_key = a.get("key").map(str::to_string),
                    "firmware" => firmware_flashed = a.get("type").is_none_or(|t| t == "flashed"),
                    "artifact" => artifact_binary = a.get("type") == Some("binary"),
                    _ => {}
                }
                stack.push(name.to_string());
            }
            XmlEvent::Text(t) => {
                let n = stack.len();
                let top = stack.last().map(String::as_str);
                let parent = if n >= 2 {
                    Some(stack[n - 2].as_str())
                } else {
                    None
                };
                let in_artifact = stack.iter().any(|s| s == "artifact");
                if let Some(c) = comp.as_mut() {
                    match (top, parent) {
                        (Some("id"), Some("component")) => c.id = t.to_string(),
                        (Some("name"), Some("component")) => c.name = t.to_string(),
                        (Some("developer_name"), Some("component")) => c.developer = t.to_string(),
                        (Some("firmware"), Some("provides")) if firmware_flashed => {
                            if let Some(g) = normalize_guid(t) {
                                push_unique(&mut c.guids, g);
                            }
                        }
                        (Some("value"), Some("custom")) => {
                            if let Some(k) = custom_key.take() {
                                c.custom.push((k, t.to_string()));
                            }
                        }
                        _ => {}
                    }
                }
                if let Some(r) = rel.as_mut() {
                    match top {
                        Some("location") if !in_artifact => r.location = Some(t.to_string()),
                        Some("location") if artifact_binary => {
                            r.artifact_location = Some(t.to_string())
                        }
                        Some("size") if size_download => r.size = t.trim().parse().ok(),
                        Some("checksum") => {
                            if let Some((ty, target)) = checksum.take() {
                                if in_artifact {
                                    if artifact_binary {
                                        r.artifact_checksums.push((ty, t.to_string()));
                                    }
                                } else if target == "content" {
                                    r.content.push((ty, t.to_string()));
                                } else {
                                    r.container.push((ty, t.to_string()));
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            XmlEvent::End(name) => {
                stack.pop();
                match name {
                    "release" => {
                        if let (Some(r), Some(c)) = (rel.take(), comp.as_mut()) {
                            c.releases.push(r);
                        }
                    }
                    "component" => {
                        if let Some(c) = comp.take() {
                            if c.id.is_empty() {
                                return Err(CatalogError::invalid(
                                    "component",
                                    "firmware component without <id>",
                                ));
                            }
                            to_entries(catalog, base_url, c, &mut out);
                        }
                    }
                    "artifact" => artifact_binary = false,
                    _ => {}
                }
            }
        }
        Ok(())
    })?;
    Ok(out)
}

use automata_fwscan::TrustedRoot;
use automata_fwscan::jcat::check_signatures;
pub use automata_fwscan::jcat::{
    BlobKind, Jcat, JcatBlob, JcatItem, JcatSignature, SignatureStatus, basename,
};
use automata_fwscan::signed::Verdict;

/// Parses a jcat (gzip JSON, or plain JSON).
pub fn parse_jcat(bytes: &[u8]) -> Result<Jcat> {
    let json = decompress(bytes, 64 << 20)?;
    Jcat::from_json(&json).map_err(|e| CatalogError::json("jcat", e))
}

/// The outcome of checking a file against its jcat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JcatReport {
    /// The item `Id` the file resolved to (the immutable file name).
    pub item_id: String,
    /// The verified SHA-256 of the file.
    pub sha256: String,
    /// The best signature verdict (`valid`, `untrusted`, `unsupported-algorithm`, …); `None`
    /// when the item is not signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// The signature blobs found.
    pub signatures: Vec<JcatSignature>,
}

/// Checks `data` (the bytes of `file`) against a jcat: resolves the item by `Id`/`AliasId`,
/// compares the SHA-256 blob, and verifies the PKCS#7 blobs against `roots` (GPG blobs are
/// reported, not verified). A PKCS#7 signature that fails, with none that verifies, is
/// [`CatalogError::JcatSignatureInvalid`]. With `require_signature`, an item with no signature
/// blob is [`CatalogError::JcatUnsigned`], and one without a signature chaining to `roots` is
/// [`CatalogError::JcatUntrusted`].
pub fn verify_jcat(
    jcat: &Jcat,
    file: &str,
    data: &[u8],
    require_signature: bool,
    roots: &[TrustedRoot],
) -> Result<JcatReport> {
    let name = basename(file);
    let item = jcat
        .resolve(name)
        .ok_or_else(|| CatalogError::JcatItemMissing {
            file: name.to_string(),
            items: jcat.items.iter().map(|i| i.id.clone()).collect(),
        })?;
    let actual = hex::encode(Sha256::digest(data));
    let expected = item.sha256().ok_or_else(|| CatalogError::JcatNoChecksum {
        file: name.to_string(),
    })?;
    if expected != actual {
        return Err(CatalogError::JcatChecksumMismatch {
            file: name.to_string(),
            expected,
            actual,
        });
    }
    let signatures = check_signatures(
        item,
        &|alg| automata_fwscan::signed::digest(alg, data),
        roots,
    );
    let verdict = automata_fwscan::jcat::summarise(&signatures);
    let problems = || {
        signatures
            .iter()
            .map(|s| serde_json::to_string(&s.status).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("; ")
    };
    match verdict {
        Some(Verdict::Invalid) => {
            return Err(CatalogError::JcatSignatureInvalid {
                file: name.to_string(),
                detail: problems(),
            });
        }
        None if require_signature => {
            return Err(CatalogError::JcatUnsigned {
                file: name.to_string(),
            });
        }
        Some(v) if require_signature && v != Verdict::Valid => {
            return Err(CatalogError::JcatUntrusted {
                file: name.to_string(),
                detail: problems(),
            });
        }
        _ => {}
    }
    Ok(JcatReport {
        item_id: item.id.clone(),
        sha256: actual,
        verdict: verdict.map(Verdict::as_str).map(str::to_string),
        signatures,
    })
}

/// What a `.cab` holds: its file names, the entries from its `.metainfo.xml`, and its own jcat.
#[derive(Debug, Clone)]
pub struct CabContents {
    /// All member names.
    pub files: Vec<String>,
    /// Entries from every `*.metainfo.xml` (with the cab's own SHA-256 as hash).
    pub entries: Vec<CatalogEntry>,
    /// The embedded `.jcat`, when there is one.
    pub jcat: Option<Jcat>,
}

fn read_member<R: Read + std::io::Seek>(cab: &mut cab::Cabinet<R>, name: &str) -> Result<Vec<u8>> {
    let r = cab
        .read_file(name)
        .map_err(|e| CatalogError::Cab(format!("{name}: {e}")))?;
    let mut buf = Vec::new();
    r.take(MAX_CAB_MEMBER + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CatalogError::Cab(format!("{name}: {e}")))?;
    if buf.len() as u64 > MAX_CAB_MEMBER {
        return Err(CatalogError::TooLarge {
            what: name.to_string(),
            limit: MAX_CAB_MEMBER,
        });
    }
    Ok(buf)
}

/// Opens a cabinet through [`automata_cabinet::open`] (never a panic on a hostile layout).
fn open_cab(bytes: &[u8]) -> Result<cab::Cabinet<Cursor<&[u8]>>> {
    automata_cabinet::open(bytes).map_err(CatalogError::Cab)
}

/// Unpacks an LVFS `.cab` and reads its `.metainfo.xml` (and `.jcat` when present).
pub fn read_cab(catalog: &str, bytes: &[u8]) -> Result<CabContents> {
    let mut cab = open_cab(bytes)?;
    let files: Vec<String> = cab
        .folder_entries()
        .flat_map(|f| {
            f.file_entries()
                .map(|e| e.name().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let sha256 = hex::encode(Sha256::digest(bytes));
    let mut entries = Vec::new();
    let mut jcat = None;
    for f in &files {
        let lower = f.to_ascii_lowercase();
        if lower.ends_with(".metainfo.xml") {
            let xml = read_member(&mut cab, f)?;
            let mut es = parse_metadata(catalog, None, &xml)?;
            for e in &mut es {
                e.hashes.sha256 = Some(sha256.clone());
                e.size = Some(bytes.len() as u64);
            }
            entries.extend(es);
        } else if lower.ends_with(".jcat") {
            jcat = Some(parse_jcat(&read_member(&mut cab, f)?)?);
        }
    }
    if entries.is_empty() {
        return Err(CatalogError::invalid(
            "cab",
            "no .metainfo.xml with a firmware component",
        ));
    }
    Ok(CabContents {
        files,
        entries,
        jcat,
    })
}

/// Reads one member of a `.cab` by name (for verifying payloads against the embedded jcat).
pub fn read_cab_member(bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    let mut cab = open_cab(bytes)?;
    read_member(&mut cab, name)
}

/// Decompresses metadata as fetched (`.gz`/`.zst`) within the crate-wide limit.
pub fn metadata_bytes(raw: &[u8]) -> Result<Vec<u8>> {
    decompress(raw, MAX_DECOMPRESSED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cab_file_past_its_folder_is_an_error_not_a_panic() {
        // Found by `cargo fuzz run archive` (the scanner reads cabs with the same crate): a file
        // at 0x1eb8 of a folder without data blocks; cab 0.6 indexed past its block list.
        let crash = b"MSCF\0\0\0\0\xb8\x1e\0\0\0\0\0\0\x04\0\0\0\0\0\0\0\x03\x01\x01\0\x02\0\0\0\
                      \0\0X\0\0\0\0\0\0\0\0\x1e";
        let e = read_cab("l", crash).expect_err("corrupt");
        assert!(
            matches!(&e, CatalogError::Cab(m) if m.contains("starts at 0x1eb8")),
            "{e}"
        );
        assert!(read_cab_member(crash, "x").is_err());
    }

    #[test]
    fn cab_stored_block_claiming_more_than_it_holds_is_an_error() {
        // One folder, one stored 10-byte block whose cbUncomp says 20, and `a.bin` at 12 in it:
        // cab 0.6 sliced past the block.
        let mut b = b"MSCF".to_vec();
        for v in [0u32, 84, 0, 44, 0] {
            b.extend(v.to_le_bytes());
        }
        b.extend([3, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        b.extend(66u32.to_le_bytes());
        b.extend([1, 0, 0, 0]);
        b.extend(10u32.to_le_bytes());
        b.extend(12u32.to_le_bytes());
        b.extend(b"\0\0\x21\x5a\0\0\x20\0a.bin\0");
        b.extend(0u32.to_le_bytes());
        b.extend(10u16.to_le_bytes());
        b.extend(20u16.to_le_bytes());
        b.extend(b"0123456789");
        let e = read_cab_member(&b, "a.bin").expect_err("corrupt");
        assert!(
            matches!(&e, CatalogError::Cab(m) if m.contains("claims 20")),
            "{e}"
        );
        // The same cabinet with honest sizes reads.
        b[72..74].copy_from_slice(&10u16.to_le_bytes());
        b[48..52].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(read_cab_member(&b, "a.bin").expect("ok"), b"0123456789");
    }
}
