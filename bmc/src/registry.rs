//! The registered BMCs, with their credentials encrypted at rest.
//!
//! One JSON file (`bmcs.json`) lists the BMCs; each password is sealed with ChaCha20-Poly1305
//! under a key kept apart from it (`bmc-credentials.key`, mode 0600, made on first use, or given
//! as 64 hex digits in `METAL_AUTOMATA_CREDENTIALS_KEY`). The entry's name and user name are the
//! associated data, so a sealed password cannot be moved to another entry. Nothing here ever
//! reaches a topic: the collectors read credentials from this store when they connect.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Credentials, TlsPolicy};

/// Environment variable that supplies the credentials key instead of the key file.
pub const KEY_ENV: &str = "METAL_AUTOMATA_CREDENTIALS_KEY";

/// Why the registry could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Reading or writing the files failed.
    #[error("BMC registry {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The registry file is damaged.
    #[error("BMC registry {path} is damaged: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A password did not decrypt: the key changed or the entry was tampered with.
    #[error(
        "the stored password of BMC {0} does not decrypt with this key (was the credentials key replaced?)"
    )]
    Decrypt(String),
    /// No such BMC.
    #[error("no BMC named {0}")]
    NotFound(String),
    /// The key in the environment is not 32 bytes of hex.
    #[error("{KEY_ENV} must be 64 hex digits")]
    BadKey,
}

/// How a BMC is spoken to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Redfish over HTTPS (inventory, sensors, actions).
    #[default]
    Redfish,
    /// IPMI 2.0 over LAN (RMCP+): identity, BMC firmware and FRU inventory only.
    Ipmi,
}

/// A registered BMC as listed (no secret in it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BmcEntry {
    /// The operator's name for it (default: its host and port).
    pub name: String,
    /// Its address (`https://host[:port]`).
    pub address: String,
    /// The account used.
    pub username: String,
    /// Redfish or IPMI.
    #[serde(default)]
    pub protocol: Protocol,
    /// How its certificate is checked.
    pub tls: TlsPolicy,
    /// When it was registered, RFC 3339.
    pub added_at: String,
    /// Operator labels (rack, group, …).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    entry: BmcEntry,
    /// hex(nonce ‖ ciphertext).
    sealed_password: String,
}

#[derive(Serialize, Deserialize, Default)]
struct File {
    version: u32,
    bmcs: Vec<Stored>,
}

/// The registry on disk.
pub struct BmcRegistry {
    path: PathBuf,
    key: Zeroizing<[u8; 32]>,
    lock: std::sync::Mutex<()>,
}

impl std::fmt::Debug for BmcRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BmcRegistry")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a file atomically: a temporary beside it, fsync, rename.
fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), RegistryError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = private;
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

impl BmcRegistry {
    /// Opens (or starts) the registry in `dir`.
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key = match std::env::var(KEY_ENV) {
            Ok(hexkey) => {
                let bytes =
                    Zeroizing::new(hex::decode(hexkey.trim()).map_err(|_| RegistryError::BadKey)?);
                let arr: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| RegistryError::BadKey)?;
                Zeroizing::new(arr)
            }
            Err(_) => Self::key_file(&dir.join("bmc-credentials.key"))?,
        };
        Ok(BmcRegistry {
            path: dir.join("bmcs.json"),
            key,
            lock: std::sync::Mutex::new(()),
        })
    }

    fn key_file(path: &Path) -> Result<Zeroizing<[u8; 32]>, RegistryError> {
        match std::fs::read_to_string(path) {
            Ok(s) => {
                let bytes =
                    Zeroizing::new(hex::decode(s.trim()).map_err(|e| RegistryError::Corrupt {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    })?);
                let arr: [u8; 32] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| RegistryError::Corrupt {
                            path: path.to_path_buf(),
                            reason: "the key is not 32 bytes".into(),
                        })?;
                Ok(Zeroizing::new(arr))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = Zeroizing::new([0u8; 32]);
                rand::rng().fill_bytes(k.as_mut());
                write_atomic(path, hex::encode(k.as_ref()).as_bytes(), true)?;
                Ok(k)
            }
            Err(e) => Err(io(path)(e)),
        }
    }

    fn load(&self) -> Result<File, RegistryError> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| RegistryError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File {
                version: 1,
                bmcs: Vec::new(),
            }),
            Err(e) => Err(io(&self.path)(e)),
        }
    }

    fn save(&self, f: &File) -> Result<(), RegistryError> {
        let bytes = serde_json::to_vec_pretty(f).map_err(|e| RegistryError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&self.path, &bytes, true)
    }

    fn aad(entry: &BmcEntry) -> Vec<u8> {
        format!("metal-automata/bmc/{}/{}", entry.name, entry.username).into_bytes()
    }

    /// Adds a BMC, or replaces the one with the same name. Returns whether it replaced one.
    pub fn add(&self, entry: BmcEntry, password: &str) -> Result<bool, RegistryError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let cipher = ChaCha20Poly1305::new(Key::from_slice(self.key.as_ref()));
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let aad = Self::aad(&entry);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: password.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| RegistryError::Decrypt(entry.name.clone()))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ct);
        let mut f = self.load()?;
        let before = f.bmcs.len();
        f.bmcs.retain(|s| s.entry.name != entry.name);
        let replaced = f.bmcs.len() != before;
        f.bmcs.push(Stored {
            entry,
            sealed_password: hex::encode(sealed),
        });
        f.bmcs.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
        self.save(&f)?;
        Ok(replaced)
    }

    /// Removes a BMC.
    pub fn remove(&self, name: &str) -> Result<(), RegistryError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut f = self.load()?;
        let before = f.bmcs.len();
        f.bmcs.retain(|s| s.entry.name != name);
        if f.bmcs.len() == before {
            return Err(RegistryError::NotFound(name.to_string()));
        }
        self.save(&f)
    }

    /// Every registered BMC, without secrets.
    pub fn list(&self) -> Result<Vec<BmcEntry>, RegistryError> {
        Ok(self.load()?.bmcs.into_iter().map(|s| s.entry).collect())
    }

    /// Every registered BMC with its decrypted credentials, for the collectors.
    pub fn list_with_credentials(&self) -> Result<Vec<(BmcEntry, Credentials)>, RegistryError> {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(self.key.as_ref()));
        self.load()?
            .bmcs
            .into_iter()
            .map(|s| {
                let raw = hex::decode(&s.sealed_password)
                    .map_err(|_| RegistryError::Decrypt(s.entry.name.clone()))?;
                if raw.len() < 12 {
                    return Err(RegistryError::Decrypt(s.entry.name.clone()));
                }
                let (nonce, ct) = raw.split_at(12);
                let aad = Self::aad(&s.entry);
                let pt = Zeroizing::new(
                    cipher
                        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
                        .map_err(|_| RegistryError::Decrypt(s.entry.name.clone()))?,
                );
                let password = String::from_utf8(pt.to_vec())
                    .map_err(|_| RegistryError::Decrypt(s.entry.name.clone()))?;
                let creds = Credentials::new(s.entry.username.clone(), password);
                Ok((s.entry, creds))
            })
            .collect()
    }
}

/// The default name of a BMC: its host and, when not the default, its port.
pub fn default_name(address: &url::Url) -> String {
    let host = address.host_str().unwrap_or("bmc");
    match address.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// The outcome of the last collection from one BMC, for `bmc list` (in memory, per process).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BmcStatus {
    /// When the last attempt finished, RFC 3339.
    pub last_attempt: Option<String>,
    /// When the last successful collection finished, RFC 3339.
    pub last_success: Option<String>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// Detected vendor.
    pub vendor: Option<String>,
    /// Server ids found behind it.
    pub servers: Vec<String>,
    /// Duration of the last attempt, ms.
    pub duration_ms: Option<u64>,
    /// HTTP requests of the last attempt.
    pub requests: Option<u64>,
}

/// Collection status per BMC name, shared by the collector (writer) and the API (reader).
pub type StatusBoard =
    std::sync::Arc<std::sync::RwLock<std::collections::BTreeMap<String, BmcStatus>>>;
