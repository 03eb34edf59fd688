//! Syncing a catalog over HTTP: conditional GET (ETag / If-Modified-Since), parse into a
//! staging set, swap the snapshot atomically (temp file + fsync + rename, the last good copy
//! kept when anything fails), and the diff of added, changed and removed entries.
//!
//! For LVFS the jcat is fetched first and its item resolved by `Id`/`AliasId`: the metadata is
//! then fetched under the item's immutable name and checked against its SHA-256, so a CDN that
//! serves a newer `firmware.xml.gz` than its jcat (the LVFS race) fails cleanly.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{CatalogError, Result};
use crate::lvfs::{Jcat, JcatReport, basename, parse_jcat, verify_jcat};
use crate::model::CatalogEntry;
use automata_fwscan::{RulePack, TrustedRoot};

/// Which parser a source needs, with its format-specific settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "format")]
pub enum CatalogFormat {
    /// Dell `Catalog.xml(.gz)`.
    Dell,
    /// HPE SDR `fwrepo.json`; files are relative to `base_url` (default: the JSON's parent
    /// of `fwrepodata/`).
    HpeSdr {
        /// Where the files are.
        base_url: Option<String>,
    },
    /// LVFS metadata with its jcat.
    Lvfs {
        /// The `.jcat` URL (default: metadata URL + `.jcat`).
        jcat_url: Option<String>,
        /// `FirmwareBaseURI` for relative locations.
        firmware_base_url: Option<String>,
        /// Fail unless a PKCS#7 signature of the jcat item chains to `trust_roots`.
        require_signature: bool,
        /// Roots the jcat's PKCS#7 signatures are checked against; empty means the builtin
        /// rule pack's package roots (the LVFS CA).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        trust_roots: Vec<TrustedRoot>,
    },
    /// Generic YAML/JSON entries.
    Generic,
    /// A Lenovo UpdateXpress/OneCLI directory served over HTTP: the URL is the directory, whose
    /// listing (a web server's index page or a plain list of names) names the `lnvgy_fw_*.xml`
    /// descriptors and `*_comp.zip` packages; each is fetched and read in turn.
    Lenovo,
}

/// A catalog to sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogSource {
    /// Catalog name: the first half of every entry key.
    pub name: String,
    /// The catalog URL.
    pub url: String,
    /// How to read it.
    #[serde(flatten)]
    pub format: CatalogFormat,
    /// Where the last good snapshot lives; None keeps it in memory only.
    pub snapshot_path: Option<PathBuf>,
    /// The largest response body accepted (compressed).
    pub max_bytes: u64,
}

impl CatalogSource {
    /// A source with the default size cap (512 MiB) and no snapshot file.
    pub fn new(name: impl Into<String>, url: impl Into<String>, format: CatalogFormat) -> Self {
        CatalogSource {
            name: name.into(),
            url: url.into(),
            format,
            snapshot_path: None,
            max_bytes: 512 << 20,
        }
    }
}

/// The last good state of a catalog: entries by key plus the HTTP validators to revalidate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogSnapshot {
    /// Catalog name.
    pub source: String,
    /// The URL the body came from (for LVFS, the resolved immutable name).
    pub url: String,
    /// `ETag` of that response.
    pub etag: Option<String>,
    /// `Last-Modified` of that response, as sent.
    pub last_modified: Option<String>,
    /// When it was fetched (RFC 3339).
    pub fetched_at: String,
    /// SHA-256 of the body as fetched.
    pub sha256: String,
    /// The jcat check, for LVFS.
    pub jcat: Option<JcatReport>,
    /// Entries by `catalog/entry` key.
    pub entries: BTreeMap<String, CatalogEntry>,
}

/// One entry whose content changed between two syncs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryChange {
    /// The entry before.
    pub before: CatalogEntry,
    /// The entry after.
    pub after: CatalogEntry,
}

/// What a sync changed, for `firmware.catalog` (records and tombstones).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogDiff {
    /// New keys.
    pub added: Vec<CatalogEntry>,
    /// Same key, different content.
    pub changed: Vec<EntryChange>,
    /// Keys gone (tombstones).
    pub removed: Vec<CatalogEntry>,
}

impl CatalogDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The result of one sync.
// Returned once per sync and matched at once: boxing the snapshot would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SyncOutcome {
    /// 304: the previous snapshot stands.
    NotModified,
    /// A new snapshot was parsed (and saved, when the source has a path), with its diff.
    Updated {
        /// The new snapshot.
        snapshot: CatalogSnapshot,
        /// Against the previous one (all added when there was none).
        diff: CatalogDiff,
    },
    /// Fetching, verifying or parsing failed; the previous snapshot (file) is untouched.
    Failed {
        /// Why.
        error: CatalogError,
    },
}

/// Diffs two entry sets by key.
pub fn diff(
    previous: Option<&BTreeMap<String, CatalogEntry>>,
    next: &BTreeMap<String, CatalogEntry>,
) -> CatalogDiff {
    let empty = BTreeMap::new();
    let prev = previous.unwrap_or(&empty);
    let mut d = CatalogDiff::default();
    for (k, e) in next {
        match prev.get(k) {
            None => d.added.push(e.clone()),
            Some(old) if old != e => d.changed.push(EntryChange {
                before: old.clone(),
                after: e.clone(),
            }),
            Some(_) => {}
        }
    }
    for (k, e) in prev {
        if !next.contains_key(k) {
            d.removed.push(e.clone());
        }
    }
    d
}

/// Parses a catalog body with the source's parser (CPU-bound; call off the async runtime).
pub fn parse_body(source: &CatalogSource, url: &str, body: &[u8]) -> Result<Vec<CatalogEntry>> {
    match &source.format {
        CatalogFormat::Dell => crate::dell::parse(&source.name, body),
        CatalogFormat::HpeSdr { base_url } => {
            let base = base_url.clone().unwrap_or_else(|| {
                let dir = url.rsplit_once('/').map(|(d, _)| d).unwrap_or(url);
                dir.strip_suffix("/fwrepodata").unwrap_or(dir).to_string()
            });
            let json = crate::input::decompress(body, crate::input::MAX_DECOMPRESSED)?;
            crate::hpe::parse_fwrepo(&source.name, &base, &json)
        }
        CatalogFormat::Lvfs {
            firmware_base_url, ..
        } => crate::lvfs::parse_metadata(&source.name, firmware_base_url.as_deref(), body),
        CatalogFormat::Generic => {
            let text = crate::input::decompress(body, crate::input::MAX_DECOMPRESSED)?;
            crate::generic::parse(&source.name, &text)
        }
        CatalogFormat::Lenovo => Err(CatalogError::invalid(
            "lenovo",
            "a Lenovo directory is read file by file (sync), not from one body",
        )),
    }
}

/// Most files a Lenovo directory listing may name: a repository for every ThinkSystem model
/// holds a few thousand packages; more than this is a listing gone wrong.
const LENOVO_MAX_FILES: usize = 20_000;
/// Largest `lnvgy_fw_*.xml` descriptor read (they are a few KiB).
const LENOVO_MAX_DESCRIPTOR: u64 = 4 << 20;

/// The Lenovo package names a directory listing links to, deduplicated and sorted: `href`
/// targets of an index page, else one name per line of a plain list. Query strings, fragments,
/// parent links and absolute links to other hosts are ignored.
pub fn lenovo_listing(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let mut names: Vec<String> = if text.contains("href=") || text.contains("HREF=") {
        text.split("href=")
            .flat_map(|s| s.split("HREF="))
            .skip(1)
            .filter_map(|rest| {
                let rest = rest.trim_start();
                let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
                rest[1..].split(quote).next().map(str::to_string)
            })
            .collect()
    } else {
        text.lines().map(|l| l.trim().to_string()).collect()
    };
    names.retain_mut(|n| {
        if let Some(i) = n.find(['?', '#']) {
            n.truncate(i);
        }
        if n.contains("://") || n.contains("..") || n.contains('/') {
            return false;
        }
        let lower = n.to_ascii_lowercase();
        (lower.starts_with("lnvgy_fw_") && lower.ends_with(".xml")) || lower.ends_with("_comp.zip")
    });
    names.sort();
    names.dedup();
    names
}

/// Reads every package a Lenovo directory listing names, fetching each file beside it.
async fn sync_lenovo_files(
    client: &reqwest::Client,
    source: &CatalogSource,
    dir_url: &str,
    listing: &[u8],
) -> Result<Vec<CatalogEntry>> {
    let names = lenovo_listing(listing);
    if names.len() > LENOVO_MAX_FILES {
        return Err(CatalogError::TooLarge {
            what: format!("{dir_url} listing ({} packages)", names.len()),
            limit: LENOVO_MAX_FILES as u64,
        });
    }
    let base = dir_url.trim_end_matches('/').to_string();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let url = format!("{base}/{name}");
        let is_zip = name.to_ascii_lowercase().ends_with("_comp.zip");
        let max = if is_zip {
            source.max_bytes
        } else {
            LENOVO_MAX_DESCRIPTOR
        };
        let body = fetch(client, &url, None, max).await?.body;
        let (catalog, base) = (source.name.clone(), base.clone());
        let entry = tokio::task::spawn_blocking(move || {
            if is_zip {
                crate::lenovo::parse_comp_zip(&catalog, &name, &body, Some(&base))
            } else {
                crate::lenovo::parse_descriptor(&catalog, &name, &body, Some(&base))
            }
        })
        .await
        .map_err(|e| CatalogError::invalid("parser", format!("parser task failed: {e}")))??;
        out.push(entry);
    }
    Ok(out)
}

/// Writes a snapshot atomically: a temp file in the same directory, fsync, rename, fsync dir.
pub fn save_snapshot(path: &Path, snapshot: &CatalogSnapshot) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("snapshot");
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let json = serde_json::to_vec(snapshot).map_err(|e| CatalogError::json("snapshot", e))?;
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(CatalogError::from)
}

/// Reads a saved snapshot; None when there is none yet.
pub fn load_snapshot(path: &Path) -> Result<Option<CatalogSnapshot>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| CatalogError::json(path.display().to_string(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A client with the timeouts a catalog fetch wants.
pub fn default_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(600))
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(|e| CatalogError::Http {
            url: String::new(),
            detail: e.to_string(),
        })
}

struct Fetched {
    status: StatusCode,
    etag: Option<String>,
    last_modified: Option<String>,
    body: Vec<u8>,
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    validators: Option<(&Option<String>, &Option<String>)>,
    max: u64,
) -> Result<Fetched> {
    let http = |e: reqwest::Error| CatalogError::Http {
        url: url.to_string(),
        detail: e.to_string(),
    };
    let mut req = client.get(url);
    if let Some((etag, lm)) = validators {
        if let Some(e) = etag {
            req = req.header(IF_NONE_MATCH, e.as_str());
        }
        if let Some(l) = lm {
            req = req.header(IF_MODIFIED_SINCE, l.as_str());
        }
    }
    let mut resp = req.send().await.map_err(http)?;
    let status = resp.status();
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let etag = header(ETAG);
    let last_modified = header(LAST_MODIFIED);
    if status == StatusCode::NOT_MODIFIED {
        return Ok(Fetched {
            status,
            etag,
            last_modified,
            body: Vec::new(),
        });
    }
    if !status.is_success() {
        return Err(CatalogError::HttpStatus {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(CatalogError::TooLarge {
            what: url.to_string(),
            limit: max,
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(http)? {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(CatalogError::TooLarge {
                what: url.to_string(),
                limit: max,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        etag,
        last_modified,
        body,
    })
}

/// Syncs a catalog with a default client (see [`sync_with`]).
pub async fn sync(source: &CatalogSource, previous: Option<&CatalogSnapshot>) -> SyncOutcome {
    match default_client() {
        Ok(c) => sync_with(&c, source, previous).await,
        Err(error) => SyncOutcome::Failed { error },
    }
}

/// Syncs a catalog: conditional GET against `previous`, verify (LVFS jcat), parse into a
/// staging set, save atomically, and diff. Never leaves a half-written snapshot.
pub async fn sync_with(
    client: &reqwest::Client,
    source: &CatalogSource,
    previous: Option<&CatalogSnapshot>,
) -> SyncOutcome {
    match try_sync(client, source, previous).await {
        Ok(o) => o,
        Err(error) => {
            tracing::warn!(catalog = %source.name, kind = error.kind(), %error, "catalog sync failed; last good snapshot kept");
            SyncOutcome::Failed { error }
        }
    }
}

async fn try_sync(
    client: &reqwest::Client,
    source: &CatalogSource,
    previous: Option<&CatalogSnapshot>,
) -> Result<SyncOutcome> {
    let mut url = source.url.clone();
    let mut jcat: Option<(Jcat, bool, Vec<TrustedRoot>)> = None;
    if let CatalogFormat::Lvfs {
        jcat_url,
        require_signature,
        trust_roots,
        ..
    } = &source.format
    {
        let jurl = jcat_url
            .clone()
            .unwrap_or_else(|| format!("{}.jcat", source.url));
        let j = fetch(client, &jurl, None, 64 << 20).await?;
        let parsed = parse_jcat(&j.body)?;
        let name = basename(&source.url).to_string();
        let item = parsed
            .resolve(&name)
            .ok_or_else(|| CatalogError::JcatItemMissing {
                file: name.clone(),
                items: parsed.items.iter().map(|i| i.id.clone()).collect(),
            })?;
        if item.id != name && !item.id.contains('/') {
            // Fetch the immutable file the jcat signed, not the alias that may have moved on.
            let dir = source.url.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            url = format!("{dir}/{}", item.id);
        }
        let roots = if trust_roots.is_empty() {
            RulePack::builtin().package_roots
        } else {
            trust_roots.clone()
        };
        jcat = Some((parsed, *require_signature, roots));
    }
    let validators = previous
        .filter(|p| p.url == url)
        .map(|p| (&p.etag, &p.last_modified));
    let fetched = fetch(client, &url, validators, source.max_bytes).await?;
    if fetched.status == StatusCode::NOT_MODIFIED {
        return Ok(SyncOutcome::NotModified);
    }
    let jcat_report = match &jcat {
        Some((j, require, roots)) => Some(verify_jcat(j, &url, &fetched.body, *require, roots)?),
        None => None,
    };
    let sha256 = hex::encode(Sha256::digest(&fetched.body));
    let mut staged = if source.format == CatalogFormat::Lenovo {
        sync_lenovo_files(client, source, &url, &fetched.body).await?
    } else {
        let src = source.clone();
        let parse_url = url.clone();
        let body = fetched.body;
        tokio::task::spawn_blocking(move || parse_body(&src, &parse_url, &body))
            .await
            .map_err(|e| CatalogError::invalid("parser", format!("parser task failed: {e}")))??
    };
    if source.format == CatalogFormat::Generic {
        fill_from_checksum_txt(client, &mut staged).await;
    }
    let mut entries = BTreeMap::new();
    let mut dupes = 0usize;
    for e in staged {
        if entries.insert(e.key(), e).is_some() {
            dupes += 1;
        }
    }
    if dupes > 0 {
        tracing::warn!(catalog = %source.name, dupes, "catalog repeats entry keys; the last one wins");
    }
    let snapshot = CatalogSnapshot {
        source: source.name.clone(),
        url,
        etag: fetched.etag,
        last_modified: fetched.last_modified,
        fetched_at: chrono::Utc::now().to_rfc3339(),
        sha256,
        jcat: jcat_report,
        entries,
    };
    let diff = diff(previous.map(|p| &p.entries), &snapshot.entries);
    if let Some(path) = &source.snapshot_path {
        let path = path.clone();
        let snap = snapshot.clone();
        tokio::task::spawn_blocking(move || save_snapshot(&path, &snap))
            .await
            .map_err(|e| CatalogError::invalid("snapshot", format!("writer task failed: {e}")))??;
    }
    Ok(SyncOutcome::Updated { snapshot, diff })
}

/// Generic entries may point at a Supermicro `checksum.txt` (`checksum_url`) instead of giving a
/// digest: fetch each such file once and fill the entries' missing hashes. A checksum file that
/// cannot be fetched or read leaves its entries without hashes (they stay `unverified`); it does
/// not fail the sync.
async fn fill_from_checksum_txt(client: &reqwest::Client, entries: &mut [CatalogEntry]) {
    let mut urls: Vec<String> = entries
        .iter()
        .filter(|e| e.hashes.strength() == crate::model::HashStrength::None)
        .filter_map(|e| e.extra.get("checksum_url").cloned())
        .collect();
    urls.sort();
    urls.dedup();
    for url in urls {
        let files = match fetch(client, &url, None, 1 << 20).await {
            Ok(f) => crate::supermicro::parse_checksum_txt(&f.body),
            Err(e) => Err(e),
        };
        match files {
            Ok(files) => {
                for e in entries.iter_mut() {
                    if e.extra.get("checksum_url") == Some(&url) {
                        crate::supermicro::apply_checksums(std::slice::from_mut(e), &files);
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%url, %error, "checksum.txt unusable; its entries stay unverified")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lenovo_listing;

    #[test]
    fn a_plain_listing_names_one_package_per_line() {
        let got = lenovo_listing(
            b"lnvgy_fw_b-1.0_anyos_noarch.xml\r\n\nnotes.txt\nlnvgy_fw_a-2.0_anyos_comp.zip\n../lnvgy_fw_c-1_x.xml\nlnvgy_fw_b-1.0_anyos_noarch.xml\n",
        );
        assert_eq!(
            got,
            [
                "lnvgy_fw_a-2.0_anyos_comp.zip",
                "lnvgy_fw_b-1.0_anyos_noarch.xml"
            ]
        );
    }

    #[test]
    fn odd_listings_give_nothing_rather_than_fail() {
        for body in [
            &b""[..],
            b"href=",
            b"href=\"",
            b"<a href=x>",
            &[0xff, 0xfe, 0x00],
        ] {
            assert!(lenovo_listing(body).is_empty());
        }
    }
}
