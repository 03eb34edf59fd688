//! Where log collection got to on each BMC, kept in one small JSON file so a restart neither
//! republishes old entries nor skips new ones.
//!
//! The file (`<data>/bmc/log-cursors.json` under `serve`) maps each BMC's registry name to its
//! cursors: one [`LogCursor`] per Redfish LogService (keyed by log id) and the last IPMI SEL
//! record id. It is written whole, atomically (a temporary beside it, fsync, rename), and only
//! after the entries the new cursors account for were appended to the log. A crash between the
//! append and the write therefore re-reads those entries on the next start: at-least-once at
//! worst, never a gap. A BMC whose address changed under the same name starts afresh.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use automata_bmc::redfish::logs::LogCursor;
use serde::{Deserialize, Serialize};

/// Why the cursor file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CursorFileError {
    /// Reading or writing failed.
    #[error("log cursor file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what this version writes.
    #[error("log cursor file {path} is damaged: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One BMC's log positions, persisted between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BmcCursors {
    /// The address the cursors were taken on (another address: another BMC, start afresh).
    pub address: String,
    /// Redfish: one cursor per LogService, keyed by log id (`redfish:<uri>`).
    #[serde(default)]
    pub redfish: HashMap<String, LogCursor>,
    /// IPMI: whether the SEL was ever read (a first read takes only the newest entries).
    #[serde(default)]
    pub sel_read: bool,
    /// IPMI: the last SEL record id read (None: the SEL was empty).
    #[serde(default)]
    pub sel_last: Option<u16>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    bmcs: BTreeMap<String, BmcCursors>,
}

const VERSION: u32 = 1;

/// Reads the cursor file; a missing file is an empty map.
pub fn load(path: &Path) -> Result<BTreeMap<String, BmcCursors>, CursorFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(CursorFileError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let f: File = serde_json::from_slice(&bytes).map_err(|e| CursorFileError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if f.version != VERSION {
        return Err(CursorFileError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("version {} (this build reads {VERSION})", f.version),
        });
    }
    Ok(f.bmcs)
}

/// Writes the cursor file atomically: a temporary beside it, fsync, rename, fsync the directory.
pub fn save(path: &Path, bmcs: &BTreeMap<String, BmcCursors>) -> Result<(), CursorFileError> {
    use std::io::Write;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| CursorFileError::Io { path: p, source }
    };
    let bytes = serde_json::to_vec(&FileRef {
        version: VERSION,
        bmcs,
    })
    .map_err(|e| CursorFileError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    // The rename itself is durable only once the directory is synced (best effort).
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[derive(Serialize)]
struct FileRef<'a> {
    version: u32,
    bmcs: &'a BTreeMap<String, BmcCursors>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_and_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("bmc").join("log-cursors.json");
        assert!(load(&p).expect("missing is empty").is_empty());
        let mut m = BTreeMap::new();
        let mut c = BmcCursors {
            address: "https://10.0.0.1".into(),
            sel_read: true,
            sel_last: Some(7),
            ..Default::default()
        };
        c.redfish.insert("redfish:/x".into(), LogCursor::default());
        m.insert("bmc-1".to_string(), c);
        save(&p, &m).expect("save");
        assert_eq!(load(&p).expect("load"), m);
        std::fs::write(&p, b"{not json").expect("write");
        assert!(matches!(load(&p), Err(CursorFileError::Corrupt { .. })));
    }
}
