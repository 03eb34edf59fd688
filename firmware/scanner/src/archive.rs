//! Archives and compressed streams vendors ship firmware in (gzip, zstd, xz, zip/.fwpkg, cab),
//! unpacked one entry at a time with every output capped before it is read, so a bomb costs at
//! most its cap.

use std::io::{Cursor, Read};

use serde::{Deserialize, Serialize};

/// Below this, outputs are allowed whatever the ratio (small files compress well).
pub const RATIO_FLOOR: u64 = 1 << 20;

/// The container formats this module opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveKind {
    /// RFC 1952, possibly several members.
    Gzip,
    /// Zstandard frames.
    Zstd,
    /// xz streams.
    Xz,
    /// PKZIP (also HPE `.fwpkg`, Lenovo `*_comp.zip`).
    Zip,
    /// Microsoft cabinet (LVFS).
    Cab,
}

impl ArchiveKind {
    /// Format name used in the scan tree.
    pub fn name(self) -> &'static str {
        match self {
            ArchiveKind::Gzip => "gzip",
            ArchiveKind::Zstd => "zstd",
            ArchiveKind::Xz => "xz",
            ArchiveKind::Zip => "zip",
            ArchiveKind::Cab => "cab",
        }
    }
}

/// Recognises an archive by its magic bytes.
pub fn detect(buf: &[u8]) -> Option<ArchiveKind> {
    if buf.starts_with(&[0x1F, 0x8B]) {
        Some(ArchiveKind::Gzip)
    } else if buf.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
        Some(ArchiveKind::Zstd)
    } else if buf.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(ArchiveKind::Xz)
    } else if buf.starts_with(b"PK\x03\x04") || buf.starts_with(b"PK\x05\x06") {
        Some(ArchiveKind::Zip)
    } else if buf.starts_with(b"MSCF") {
        Some(ArchiveKind::Cab)
    } else {
        None
    }
}

/// What limited or broke an unpack: limits and escapes are FW-FMT-002, corruption FW-FMT-001.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Problem {
    /// An output cap (ratio, total bytes) or the entry count was reached.
    Limit(String),
    /// An entry name is absolute or climbs out with `..`: refused.
    PathEscape(String),
    /// The archive or stream is corrupt.
    Corrupt(String),
}

/// One unpacked entry handed to the caller.
#[derive(Debug)]
pub struct Entry {
    /// Entry name (`""` for a compressed stream).
    pub name: String,
    /// The bytes, at most the cap.
    pub data: Vec<u8>,
    /// Held uncompressed in the archive: its bytes are already in the archive's own buffer,
    /// so a byte-pattern scan of that buffer has seen them.
    pub stored: bool,
}

/// Output bounds for one archive.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Bytes this archive may still produce (the scan's total budget left).
    pub remaining: u64,
    /// Largest output/input ratio.
    pub max_ratio: u64,
    /// Most entries handed out.
    pub max_entries: usize,
}

impl Budget {
    /// The output this archive of `len` bytes may produce in total.
    fn cap(&self, len: usize) -> u64 {
        (len as u64)
            .saturating_mul(self.max_ratio)
            .max(RATIO_FLOOR)
            .min(self.remaining)
    }
}

/// Whether an entry name stays inside the unpack tree (no absolute path, drive, or `..`).
pub fn safe_name(name: &str) -> bool {
    let n = name.replace('\\', "/");
    !n.starts_with('/')
        && n.as_bytes().get(1).is_none_or(|&c| c != b':')
        && !n.split('/').any(|c| c == "..")
        && !n.contains('\0')
}

/// Reads at most `cap` bytes; `Err(Limit)` if there is more, `Err(Corrupt)` on a decode error.
fn read_capped(r: impl Read, cap: u64, what: &str) -> Result<Vec<u8>, Problem> {
    let mut out = Vec::new();
    r.take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Problem::Corrupt(format!("{what}: {e}")))?;
    if out.len() as u64 > cap {
        return Err(Problem::Limit(format!(
            "{what}: output exceeds {cap} bytes (ratio or total-size limit)"
        )));
    }
    Ok(out)
}

/// Decodes gzip members one after the other; trailing bytes that are not a member are ignored,
/// as gzip(1) does (LVFS appends `IHATECDN` to its jcat files).
pub(crate) fn gunzip(buf: &[u8], cap: u64) -> Result<Vec<u8>, Problem> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.starts_with(&[0x1F, 0x8B]) {
        let left = cap.saturating_sub(out.len() as u64);
        let mut d = flate2::bufread::GzDecoder::new(rest);
        (&mut d)
            .take(left.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| Problem::Corrupt(format!("gzip: {e}")))?;
        if out.len() as u64 > cap {
            return Err(Problem::Limit(format!(
                "gzip: output exceeds {cap} bytes (ratio or total-size limit)"
            )));
        }
        let next = d.into_inner();
        if next.len() == rest.len() {
            break;
        }
        rest = next;
    }
    Ok(out)
}

/// Unpacks `buf`, calling `f` per entry (it returns false to stop); returns the problems met.
pub fn for_each_entry(
    kind: ArchiveKind,
    buf: &[u8],
    budget: Budget,
    f: &mut dyn FnMut(Entry) -> bool,
) -> Vec<Problem> {
    let cap = budget.cap(buf.len());
    let stream = |r: Result<Vec<u8>, Problem>, f: &mut dyn FnMut(Entry) -> bool| match r {
        Ok(data) => {
            f(Entry {
                name: String::new(),
                data,
                stored: false,
            });
            Vec::new()
        }
        Err(p) => vec![p],
    };
    match kind {
        ArchiveKind::Gzip => stream(gunzip(buf, cap), f),
        ArchiveKind::Zstd => {
            let r = zstd::stream::read::Decoder::with_buffer(buf)
                .and_then(|mut d| {
                    // 32 MiB windows at most: a hostile frame may not reserve more memory.
                    d.window_log_max(25)?;
                    Ok(d)
                })
                .map_err(|e| Problem::Corrupt(format!("zstd: {e}")))
                .and_then(|d| read_capped(d, cap, "zstd"));
            stream(r, f)
        }
        ArchiveKind::Xz => {
            let r = liblzma::stream::Stream::new_stream_decoder(
                256 << 20,
                liblzma::stream::CONCATENATED,
            )
            .map_err(|e| Problem::Corrupt(format!("xz: {e}")))
            .and_then(|s| read_capped(liblzma::read::XzDecoder::new_stream(buf, s), cap, "xz"));
            stream(r, f)
        }
        ArchiveKind::Zip => zip_entries(buf, budget, cap, f),
        ArchiveKind::Cab => cab_entries(buf, budget, cap, f),
    }
}

fn zip_entries(
    buf: &[u8],
    budget: Budget,
    cap: u64,
    f: &mut dyn FnMut(Entry) -> bool,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut zip = match zip::ZipArchive::new(Cursor::new(buf)) {
        Ok(z) => z,
        Err(e) => return vec![Problem::Corrupt(format!("zip: {e}"))],
    };
    let mut used = 0u64;
    if zip.len() > budget.max_entries {
        problems.push(Problem::Limit(format!(
            "zip: {} entries, more than {}",
            zip.len(),
            budget.max_entries
        )));
    }
    for i in 0..zip.len().min(budget.max_entries) {
        let mut file = match zip.by_index(i) {
            Ok(file) => file,
            Err(e) => {
                problems.push(Problem::Corrupt(format!("zip entry {i}: {e}")));
                continue;
            }
        };
        let name = file
            .name()
            .map_or_else(|_| format!("<entry {i}>"), |n| n.to_string());
        if file.enclosed_name().is_none() || !safe_name(&name) {
            problems.push(Problem::PathEscape(format!(
                "zip entry {name:?} escapes the tree"
            )));
            continue;
        }
        if file.is_dir() {
            continue;
        }
        let stored = file.compression() == zip::CompressionMethod::Stored;
        let left = cap.saturating_sub(used);
        if file.size() > left {
            problems.push(Problem::Limit(format!(
                "zip entry {name:?}: {} bytes declared, {left} allowed (ratio or total-size limit)",
                file.size()
            )));
            break;
        }
        match read_capped(&mut file, left, &format!("zip entry {name:?}")) {
            Ok(data) => {
                used += data.len() as u64;
                if !f(Entry { name, data, stored }) {
                    break;
                }
            }
            Err(p @ Problem::Limit(_)) => {
                problems.push(p);
                break;
            }
            Err(p) => problems.push(p),
        }
    }
    problems
}

fn cab_entries(
    buf: &[u8],
    budget: Budget,
    cap: u64,
    f: &mut dyn FnMut(Entry) -> bool,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut cab = match automata_cabinet::open(buf) {
        Ok(c) => c,
        Err(e) => return vec![Problem::Corrupt(format!("cab: {e}"))],
    };
    let files: Vec<(String, u32, bool)> = cab
        .folder_entries()
        .flat_map(|folder| {
            let stored = folder.compression_type() == automata_cabinet::CompressionType::None;
            folder
                .file_entries()
                .map(|e| (e.name().to_string(), e.uncompressed_size(), stored))
                .collect::<Vec<_>>()
        })
        .collect();
    if files.len() > budget.max_entries {
        problems.push(Problem::Limit(format!(
            "cab: {} files, more than {}",
            files.len(),
            budget.max_entries
        )));
    }
    let mut used = 0u64;
    for (name, size, stored) in files.into_iter().take(budget.max_entries) {
        if !safe_name(&name) {
            problems.push(Problem::PathEscape(format!(
                "cab file {name:?} escapes the tree"
            )));
            continue;
        }
        let left = cap.saturating_sub(used);
        if u64::from(size) > left {
            problems.push(Problem::Limit(format!(
                "cab file {name:?}: {size} bytes declared, {left} allowed (ratio or total-size limit)"
            )));
            break;
        }
        let r = cab
            .read_file(&name)
            .map_err(|e| Problem::Corrupt(format!("cab file {name:?}: {e}")))
            .and_then(|r| read_capped(r, left, &format!("cab file {name:?}")));
        match r {
            Ok(data) => {
                used += data.len() as u64;
                if !f(Entry { name, data, stored }) {
                    break;
                }
            }
            Err(p @ Problem::Limit(_)) => {
                problems.push(p);
                break;
            }
            Err(p) => problems.push(p),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(safe_name("a/b.bin"));
        assert!(!safe_name("../x"));
        assert!(!safe_name("a/../../x"));
        assert!(!safe_name("/etc/passwd"));
        assert!(!safe_name("..\\x"));
        assert!(!safe_name("C:\\x"));
    }

    fn unpack(kind: ArchiveKind, buf: &[u8]) -> (usize, Vec<Problem>) {
        let budget = Budget {
            remaining: 1 << 20,
            max_ratio: 100,
            max_entries: 16,
        };
        let mut n = 0;
        let problems = for_each_entry(kind, buf, budget, &mut |_| {
            n += 1;
            true
        });
        (n, problems)
    }

    #[test]
    fn cab_file_past_its_folder_is_corrupt_not_a_panic() {
        // Found by `cargo fuzz run archive`: a file at 0x1eb8 of a folder without data blocks;
        // cab 0.6 indexed past its block list.
        let crash = b"MSCF\0\0\0\0\xb8\x1e\0\0\0\0\0\0\x04\0\0\0\0\0\0\0\x03\x01\x01\0\x02\0\0\0\
                      \0\0X\0\0\0\0\0\0\0\0\x1e";
        let (n, problems) = unpack(ArchiveKind::Cab, crash);
        assert_eq!(n, 0);
        assert!(
            matches!(&problems[..], [Problem::Corrupt(m)] if m.contains("starts at 0x1eb8")),
            "{problems:?}"
        );
    }

    /// A one-folder stored cabinet holding `data` as `a.bin`, with the first block's cbUncomp.
    fn stored_cab(data: &[u8], unpacked: u16, file_start: u32) -> Vec<u8> {
        let mut b = b"MSCF".to_vec();
        let total = 36 + 8 + 16 + 6 + 8 + data.len();
        for v in [0u32, total as u32, 0, 44, 0] {
            b.extend(v.to_le_bytes());
        }
        b.extend([3, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        b.extend((36u32 + 8 + 16 + 6).to_le_bytes());
        b.extend([1, 0, 0, 0]);
        b.extend((data.len() as u32).to_le_bytes());
        b.extend(file_start.to_le_bytes());
        b.extend([0, 0, 0x21, 0x5a, 0, 0, 0x20, 0]);
        b.extend(b"a.bin\0");
        b.extend(0u32.to_le_bytes());
        b.extend((data.len() as u16).to_le_bytes());
        b.extend(unpacked.to_le_bytes());
        b.extend(data);
        b
    }

    #[test]
    fn cab_stored_block_sizes_must_agree() {
        let good = stored_cab(b"0123456789", 10, 0);
        let (n, problems) = unpack(ArchiveKind::Cab, &good);
        assert_eq!((n, problems), (1, vec![]));
        // A stored block claiming more than it holds made cab 0.6 slice past its data.
        let short = stored_cab(b"0123456789", 20, 12);
        let (n, problems) = unpack(ArchiveKind::Cab, &short);
        assert_eq!(n, 0);
        assert!(
            matches!(&problems[..], [Problem::Corrupt(m)] if m.contains("claims 20")),
            "{problems:?}"
        );
        // A file past the folder's data.
        let past = stored_cab(b"0123456789", 10, 11);
        let (_, problems) = unpack(ArchiveKind::Cab, &past);
        assert!(
            matches!(&problems[..], [Problem::Corrupt(m)] if m.contains("starts at 0xb")),
            "{problems:?}"
        );
    }
}
