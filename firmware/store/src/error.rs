//! The store's one error type.

use std::time::Duration;

use crate::hash::HashAlgorithm;

/// The rule id of a checksum mismatch: the blob is rejected and never stored.
pub const FW_INT_001: &str = "FW-INT-001";

/// Everything the store, the downloader and the token check can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// FW-INT-001 (critical): the bytes do not hash to what the catalog announced; nothing was stored.
    #[error("FW-INT-001 checksum mismatch ({algorithm}): expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// Which hash disagreed.
        algorithm: HashAlgorithm,
        /// What the catalog announced (lowercase hex).
        expected: String,
        /// What the bytes hash to (lowercase hex).
        actual: String,
        /// The SHA-256 of the rejected bytes, for the finding's evidence.
        actual_sha256: String,
    },
    /// The body's size is not the size the catalog announced.
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The announced size.
        expected: u64,
        /// The size received.
        actual: u64,
    },
    /// The body exceeds the cap (configured cap, or catalog size × 1.1); it was cut and discarded.
    #[error("body exceeds the size cap of {cap} bytes")]
    TooLarge {
        /// The cap that was hit.
        cap: u64,
    },
    /// A digest string that is not 64 lowercase hex characters.
    #[error("not a SHA-256 digest: {0:?}")]
    InvalidDigest(String),
    /// No blob or manifest under this digest.
    #[error("not in the store: {0}")]
    NotFound(String),
    /// The requested byte range lies outside the blob.
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable {
        /// The blob's size, for a `Content-Range: bytes */size` answer.
        size: u64,
    },
    /// A `Range` header this store does not serve (several ranges, bad syntax).
    #[error("unsupported Range header: {0}")]
    BadRange(String),
    /// A blob already stored under this digest has another size: the store is damaged.
    #[error("blob {sha256} exists with {existing} bytes, expected {expected}")]
    BlobConflict {
        /// The digest.
        sha256: String,
        /// Size found in the store.
        existing: u64,
        /// Size of the bytes being committed.
        expected: u64,
    },
    /// The object store failed (disk, S3).
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// Local file I/O failed (`.part` files, imports, staging fsync).
    #[error("i/o on {path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A manifest that does not parse.
    #[error("manifest {sha256}: {source}")]
    Manifest {
        /// The digest whose manifest is bad.
        sha256: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// Invalid configuration (URL, proxy, S3 options).
    #[error("configuration: {0}")]
    Config(String),
    /// The server answered 404/410.
    #[error("{url}: not found (HTTP {status})")]
    HttpNotFound {
        /// The URL asked.
        url: String,
        /// 404 or 410.
        status: u16,
    },
    /// The server answered with an error status.
    #[error("{url}: HTTP {status}")]
    HttpStatus {
        /// The URL asked.
        url: String,
        /// The status code.
        status: u16,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// More than the allowed redirects (5).
    #[error("{url}: too many redirects")]
    TooManyRedirects {
        /// The URL asked.
        url: String,
    },
    /// Connecting or reading failed at the transport level.
    #[error("{url}: {message}")]
    Transport {
        /// The URL asked.
        url: String,
        /// reqwest's description.
        message: String,
        /// Whether it was a connect failure.
        connect: bool,
    },
    /// No byte arrived within the idle timeout.
    #[error("{url}: no data for {idle:?}")]
    IdleTimeout {
        /// The URL asked.
        url: String,
        /// The idle timeout.
        idle: Duration,
    },
    /// The transfer ran slower than the configured minimum rate (slowloris).
    #[error("{url}: {rate} B/s is below the minimum of {min} B/s")]
    TooSlow {
        /// The URL asked.
        url: String,
        /// Observed rate over the window.
        rate: u64,
        /// The configured minimum.
        min: u64,
    },
    /// The body ended before its announced length.
    #[error("{url}: body ended at {got} of {announced} bytes")]
    Truncated {
        /// The URL asked.
        url: String,
        /// Bytes held.
        got: u64,
        /// Announced total.
        announced: u64,
    },
    /// A background task (hashing, upload) failed or panicked.
    #[error("internal: {0}")]
    Internal(String),
    /// The server answered 416 to a request that was not a resume.
    #[error("{url}: 416 range not satisfiable")]
    Http416 {
        /// The URL asked.
        url: String,
    },
}

impl StoreError {
    /// The finding rule this error stands for, if any (`FW-INT-001` for checksum mismatches).
    pub fn rule_id(&self) -> Option<&'static str> {
        match self {
            StoreError::ChecksumMismatch { .. } => Some(FW_INT_001),
            _ => None,
        }
    }

    /// Whether a download may be retried after this error (connect errors, 5xx, 429, stalls).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::HttpStatus { status, .. } => *status == 429 || *status >= 500,
            StoreError::Transport { .. }
            | StoreError::IdleTimeout { .. }
            | StoreError::TooSlow { .. }
            | StoreError::Truncated { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_string(),
            source,
        }
    }
}
