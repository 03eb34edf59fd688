//! Reading files under a root path without ever panicking, with errors that name the system path.

use std::io;
use std::path::{Path, PathBuf};

/// Why a file under the root could not be read; displays as `/sys/...: reason`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", shown.display(), describe(source))]
pub struct ReadError {
    /// The path as it is on the live system (relative to the root, with a leading `/`).
    pub shown: PathBuf,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

impl ReadError {
    /// Wraps an I/O error on `rel` (a path relative to the root).
    pub fn new(rel: impl AsRef<Path>, source: io::Error) -> Self {
        Self {
            shown: Path::new("/").join(strip(rel.as_ref())),
            source,
        }
    }
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied (run as root)".to_string(),
        io::ErrorKind::NotFound => "not found".to_string(),
        _ => e.to_string(),
    }
}

fn strip(rel: &Path) -> &Path {
    rel.strip_prefix("/").unwrap_or(rel)
}

/// `root` joined with `rel`, where `rel` may start with `/` (it never escapes the root that way).
pub fn at(root: &Path, rel: impl AsRef<Path>) -> PathBuf {
    root.join(strip(rel.as_ref()))
}

/// Reads a file's bytes; `Ok(None)` when it does not exist.
pub fn read_bytes(root: &Path, rel: impl AsRef<Path>) -> Result<Option<Vec<u8>>, ReadError> {
    let rel = rel.as_ref();
    match std::fs::read(at(root, rel)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ReadError::new(rel, e)),
    }
}

/// Reads a text file (lossy UTF-8), trimmed of whitespace and NULs; `Ok(None)` when missing.
pub fn read_trimmed(root: &Path, rel: impl AsRef<Path>) -> Result<Option<String>, ReadError> {
    Ok(read_bytes(root, rel)?.map(|b| clean_text(&b)))
}

/// A sysfs attribute as text, `None` if missing, unreadable or empty (for optional facts).
pub fn attr(root: &Path, rel: impl AsRef<Path>) -> Option<String> {
    read_trimmed(root, rel)
        .ok()
        .flatten()
        .filter(|s| !s.is_empty())
}

/// Lossy UTF-8, trimmed of whitespace and NUL padding.
pub fn clean_text(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .to_string()
}

/// The last component of a symlink's target (e.g. the driver name from `device/driver`).
pub fn link_name(root: &Path, rel: impl AsRef<Path>) -> Option<String> {
    let target = std::fs::read_link(at(root, rel)).ok()?;
    target.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Names of the entries in a directory, sorted; `Ok(empty)` when the directory does not exist.
pub fn list_dir(root: &Path, rel: impl AsRef<Path>) -> Result<Vec<String>, ReadError> {
    let rel = rel.as_ref();
    let rd = match std::fs::read_dir(at(root, rel)) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ReadError::new(rel, e)),
    };
    let mut names: Vec<String> = rd
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// Parses a sysfs number written in decimal or `0x` hex.
pub fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The PCI address (`dddd:bb:dd.f`) nearest to the device in a sysfs device path, if any:
/// `/sys/devices/pci0000:00/0000:00:03.0/virtio2` gives `0000:00:03.0`.
pub fn pci_address_in(path: &Path) -> Option<String> {
    path.components()
        .filter_map(|c| c.as_os_str().to_str())
        .rfind(|s| is_pci_address(s))
        .map(str::to_string)
}

/// True for `dddd:bb:dd.f` (hex digits).
pub fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10) || c.is_ascii_hexdigit())
}

/// The canonical sysfs path a `device` link points to, relative to the root when possible.
pub fn device_path(root: &Path, rel: impl AsRef<Path>) -> Option<PathBuf> {
    let p = std::fs::canonicalize(at(root, rel)).ok()?;
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    Some(p.strip_prefix(&root).map(Path::to_path_buf).unwrap_or(p))
}
