//! The content-addressed firmware store (issue 9, "Downloads and store").
//!
//! Layout under the store root (local directory or S3 prefix):
//! - `blobs/sha256/<aa>/<bb>/<sha256>`: immutable, created once (`CopyMode::Create` from staging:
//!   a hard link on local disk, a conditional multipart copy on S3); a racing writer is a no-op;
//! - `staging/<uuid>`: bytes being written (plain writes + fsync on local disk, a multipart
//!   upload on S3), deleted after commit;
//! - `manifests/<sha256>.json`: provenance, integrity, signature, last scan, quarantine.
//!
//! Nothing reaches `blobs/` before its size and hashes match what the catalog announced
//! (a mismatch is `FW-INT-001`, [`StoreError::ChecksumMismatch`]).

mod bench;
mod download;
mod error;
mod hash;
mod layout;
mod local;
mod manifest;
mod serve;
mod store;
mod token;

pub use bench::{
    IngestFigure, bench_ingest, bench_ingest_figure, bench_ingest_file, bench_sha256_file,
    bench_write_ceiling, generate_input,
};
pub use download::{DownloadConfig, Downloader, FetchRequest, MAX_REDIRECTS};
pub use error::{FW_INT_001, StoreError};
pub use hash::{Expected, HashAlgorithm, Hashes, validate_sha256};
pub use layout::{blob_path, manifest_path};
pub use manifest::{
    IntegrityState, Manifest, Quarantine, QuarantineEvent, ScanRecord, SignatureState,
    SignatureStatus, Source, SourceKind, is_installable,
};
pub use serve::{BlobBody, BlobRange};
pub use store::{FirmwareStore, S3Location, StoreLocation};
pub use token::{BlobUrlSigner, TokenError};
