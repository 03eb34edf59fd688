//! The firmware store as an LVFS-format fwupd remote (issue 9, "Serving").
//!
//! In-band fwupd agents point a download remote at the service: `metadata.xml.zst` lists the
//! store's installable `.cab` blobs as LVFS lists its own (each cab's `.metainfo.xml`, with the
//! download location, container checksums and size added), `metadata.xml.zst.jcat` carries its
//! SHA-256 and a PKCS#7 signature made with the remote's own key, and the cabs are served
//! beside them as `<sha256>-<name>.cab`. Operators trust the remote by installing its certificate in
//! `/etc/pki/fwupd-metadata/`. Quarantined and unverified blobs are never offered.

mod jcat;
pub mod metadata;
mod signing;
mod view;

pub use jcat::signed_jcat;
pub use signing::{CERT_FILE, KEY_FILE, SigningIdentity};
pub use view::{JCAT_FILE, MAX_CAB, METADATA_FILE, RemoteBuilder, RemoteView};

use automata_fwstore::StoreError;

/// Why the remote could not be built or served.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A file of the signing identity or the view could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Making or using the key, certificate or signature failed.
    #[error("{what}: {detail}")]
    Crypto {
        /// The step.
        what: &'static str,
        /// The library's message.
        detail: String,
    },
    /// A cab's `.metainfo.xml` cannot be published.
    #[error("metainfo: {0}")]
    Metainfo(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
