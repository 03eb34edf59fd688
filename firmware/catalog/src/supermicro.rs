//! Supermicro has no machine-readable catalog: each download has a free-text `checksum.txt`.
//! Three layouts are read (as in metal-toolbox/firmware-syncer's tests):
//! 1. a `softfiles/<id>/<file>` line followed by `CRC32 CheckSum: …`, `MD5 CheckSum: …`
//!    (and sometimes `SHA1 CheckSum: …`) lines, possibly several files in one text;
//! 2. `/softfiles/<id>/<file> MD5 = <hex>` and `… SHA1 = <hex>` lines;
//! 3. `md5sum`/`sha1sum` output: `<hex>  <file>`.

use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};
use crate::model::{CatalogEntry, Hashes};

/// The checksums `checksum.txt` gives for one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumFile {
    /// File name (basename).
    pub file_name: String,
    /// The path as written (`softfiles/14021/…zip`), when given.
    pub path: Option<String>,
    /// MD5 and SHA-1, lowercase hex.
    pub hashes: Hashes,
    /// CRC32, lowercase hex (not a hash: recorded for completeness only).
    pub crc32: Option<String>,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn file_of(path: &str) -> String {
    path.trim()
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .trim()
        .to_string()
}

/// Parses the text of a `checksum.txt` (bytes that are not UTF-8 are replaced, not fatal).
pub fn parse_checksum_txt(bytes: &[u8]) -> Result<Vec<ChecksumFile>> {
    let text = String::from_utf8_lossy(bytes);
    let mut out: Vec<ChecksumFile> = Vec::new();
    let mut current: Option<usize> = None;
    let find_or_add = |out: &mut Vec<ChecksumFile>, path: &str| -> usize {
        let name = file_of(path);
        if let Some(i) = out.iter().position(|f| f.file_name == name) {
            return i;
        }
        out.push(ChecksumFile {
            file_name: name,
            path: Some(path.trim().to_string()),
            ..ChecksumFile::default()
        });
        out.len() - 1
    };
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        // Layout 1: "MD5 CheckSum: <hex>" after a path line.
        if let Some((label, value)) = line.split_once(':')
            && lower.contains("checksum")
        {
            let value = value.trim().to_ascii_lowercase();
            let label = label.trim().to_ascii_lowercase();
            let idx = match current {
                Some(i) => i,
                None => {
                    out.push(ChecksumFile::default());
                    out.len() - 1
                }
            };
            current = Some(idx);
            let f = &mut out[idx];
            if label.starts_with("md5") {
                f.hashes.set("md5", &value);
            } else if label.starts_with("sha1") || label.starts_with("sha-1") {
                f.hashes.set("sha1", &value);
            } else if label.starts_with("sha256") || label.starts_with("sha-256") {
                f.hashes.set("sha256", &value);
            } else if label.starts_with("crc32") && is_hex(&value) {
                f.crc32 = Some(value);
            }
            continue;
        }
        // Layout 2: "<path> MD5 = <hex>".
        if let Some((left, value)) = line.split_once('=') {
            let mut words: Vec<&str> = left.split_whitespace().collect();
            if let (Some(algo), true) = (words.pop(), !words.is_empty()) {
                let path = words.join(" ");
                let idx = find_or_add(&mut out, &path);
                current = Some(idx);
                let value = value.trim();
                if algo.eq_ignore_ascii_case("crc32") {
                    if is_hex(value) {
                        out[idx].crc32 = Some(value.to_ascii_lowercase());
                    }
                } else {
                    out[idx].hashes.set(algo, value);
                }
            }
            continue;
        }
        // Layout 3: "<hex>  <file>".
        let mut parts = line.split_whitespace();
        if let (Some(h), Some(file)) = (parts.next(), parts.next())
            && is_hex(h)
            && matches!(h.len(), 32 | 40 | 64)
        {
            let file = file.trim_start_matches('*');
            let idx = find_or_add(&mut out, file);
            out[idx].hashes.set_tagged(h);
            current = Some(idx);
            continue;
        }
        // Layout 1: a path line starts a new file.
        if lower.starts_with("softfiles")
            || lower.starts_with("/softfiles")
            || lower.contains('/')
            || lower.contains('.')
        {
            current = Some(find_or_add(&mut out, line));
        }
    }
    out.retain(|f| f.hashes.md5.is_some() || f.hashes.sha1.is_some() || f.hashes.sha256.is_some());
    if out.is_empty() {
        return Err(CatalogError::invalid(
            "checksum.txt",
            "no MD5/SHA1/SHA256 checksum lines",
        ));
    }
    Ok(out)
}

/// Fills missing hashes of entries whose URL ends in a file named in `checksum.txt` (or, when
/// the text names no file, of the single entry given). Returns how many entries were filled.
pub fn apply_checksums(entries: &mut [CatalogEntry], files: &[ChecksumFile]) -> usize {
    let mut n = 0;
    let single = entries.len() == 1;
    for e in entries.iter_mut() {
        let base = e
            .url
            .as_deref()
            .map(crate::lvfs::basename)
            .unwrap_or_default()
            .to_string();
        let hit = files
            .iter()
            .find(|f| !f.file_name.is_empty() && f.file_name == base)
            .or_else(|| files.iter().find(|f| f.file_name.is_empty() && single));
        if let Some(f) = hit {
            if e.hashes.md5.is_none() {
                e.hashes.md5.clone_from(&f.hashes.md5);
            }
            if e.hashes.sha1.is_none() {
                e.hashes.sha1.clone_from(&f.hashes.sha1);
            }
            if e.hashes.sha256.is_none() {
                e.hashes.sha256.clone_from(&f.hashes.sha256);
            }
            n += 1;
        }
    }
    n
}
