//! Object paths of the store layout; the only place that spells them.

use object_store::path::Path;
use uuid::Uuid;

/// `blobs/sha256/<aa>/<bb>/<sha256>`: immutable, written once.
pub fn blob_path(sha256: &str) -> Path {
    Path::from(format!(
        "blobs/sha256/{}/{}/{}",
        &sha256[0..2],
        &sha256[2..4],
        sha256
    ))
}

/// `manifests/<sha256>.json`.
pub fn manifest_path(sha256: &str) -> Path {
    Path::from(format!("manifests/{sha256}.json"))
}

/// `staging/<uuid>`: bytes being written, never read by anyone but the writer.
pub fn staging_path(id: Uuid) -> Path {
    Path::from(format!("staging/{id}"))
}

/// The staging prefix, for cleaning abandoned uploads.
pub fn staging_prefix() -> Path {
    Path::from("staging")
}

/// The manifest prefix, for listing.
pub fn manifest_prefix() -> Path {
    Path::from("manifests")
}

/// The blob prefix, for garbage collection.
pub fn blob_prefix() -> Path {
    Path::from("blobs/sha256")
}
