//! The one error type of the crate: every bad input ends in a named variant, never a panic.

use thiserror::Error;

/// Why a catalog could not be read, fetched or verified.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// Reading a file or a stream failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The byte-order mark (or its absence) does not match the content, or UTF-16 is malformed.
    #[error("encoding: {0}")]
    Encoding(String),
    /// The XML is malformed or ends early (a truncated download).
    #[error("xml at byte {position}: {detail}")]
    Xml {
        /// Byte offset in the (transcoded) document.
        position: u64,
        /// What the parser said.
        detail: String,
    },
    /// The XML declares a DTD with entities (an entity bomb or external entity); rejected.
    #[error("xml declares a DTD with entities (possible entity bomb); rejected")]
    XmlEntityDeclaration,
    /// The document ended before its root element was closed.
    #[error("document truncated: {0}")]
    Truncated(String),
    /// JSON did not match the expected shape (wrong types, missing fields).
    #[error("json ({context}): {source}")]
    Json {
        /// Which document or field was being read.
        context: String,
        /// The serde_json error with line and column.
        source: serde_json::Error,
    },
    /// YAML did not match the expected shape.
    #[error("yaml ({context}): {source}")]
    Yaml {
        /// Which document was being read.
        context: String,
        /// The YAML error with its location.
        source: serde_norway::Error,
    },
    /// A required field is missing or has an unusable value.
    #[error("invalid {field}: {detail}")]
    Invalid {
        /// The field (vendor's name) that was bad.
        field: String,
        /// Why it was rejected.
        detail: String,
    },
    /// A gzip/zstd stream could not be decompressed.
    #[error("decompress: {0}")]
    Decompress(String),
    /// A zip archive (HPE `.fwpkg`, Lenovo `*_comp.zip`) could not be read.
    #[error("zip: {0}")]
    Zip(String),
    /// A cabinet (LVFS `.cab`) could not be read.
    #[error("cab: {0}")]
    Cab(String),
    /// An input exceeded a size limit (decompression bombs, oversized responses).
    #[error("too large: {what} exceeds {limit} bytes")]
    TooLarge {
        /// What grew too large.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The jcat has no item whose `Id` or `AliasId` names the file (the LVFS CDN race).
    #[error("jcat has no item for {file} (items: {items:?}); metadata and jcat are out of step")]
    JcatItemMissing {
        /// The file name looked up.
        file: String,
        /// The item ids the jcat does have.
        items: Vec<String>,
    },
    /// The file's SHA-256 differs from the jcat's (a changed or corrupt download).
    #[error("jcat sha256 mismatch for {file}: jcat {expected}, file {actual}")]
    JcatChecksumMismatch {
        /// The file name.
        file: String,
        /// The digest in the jcat.
        expected: String,
        /// The digest of the bytes we have.
        actual: String,
    },
    /// The jcat item carries no checksum blob to compare against.
    #[error("jcat item {file} has no sha256 blob")]
    JcatNoChecksum {
        /// The file name.
        file: String,
    },
    /// A PKCS#7 signature of the item does not verify, and none does.
    #[error("jcat signature over {file} does not verify: {detail}")]
    JcatSignatureInvalid {
        /// The file.
        file: String,
        /// What each signature blob gave.
        detail: String,
    },
    /// The item is signed, but no signature chains to the configured roots.
    #[error("jcat item {file} has no signature under the configured roots: {detail}")]
    JcatUntrusted {
        /// The file.
        file: String,
        /// What each signature blob gave.
        detail: String,
    },
    /// The jcat item carries no signature blob (PKCS#7, GPG) while one is required.
    #[error("jcat item {file} is unsigned")]
    JcatUnsigned {
        /// The file name.
        file: String,
    },
    /// The HTTP request failed before a response.
    #[error("http {url}: {detail}")]
    Http {
        /// The requested URL.
        url: String,
        /// The transport error.
        detail: String,
    },
    /// The server answered with an unexpected status.
    #[error("http {url}: status {status}")]
    HttpStatus {
        /// The requested URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
}

/// The crate's result type.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

impl CatalogError {
    /// A JSON error with the document it came from.
    pub(crate) fn json(context: impl Into<String>, source: serde_json::Error) -> Self {
        CatalogError::Json {
            context: context.into(),
            source,
        }
    }

    /// An invalid-field error.
    pub(crate) fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        CatalogError::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// A short stable name for the error, for metrics and the `firmware.catalog.syncs` record.
    pub fn kind(&self) -> &'static str {
        match self {
            CatalogError::Io(_) => "io",
            CatalogError::Encoding(_) => "encoding",
            CatalogError::Xml { .. } => "xml",
            CatalogError::XmlEntityDeclaration => "xml-entity-declaration",
            CatalogError::Truncated(_) => "truncated",
            CatalogError::Json { .. } => "json",
            CatalogError::Yaml { .. } => "yaml",
            CatalogError::Invalid { .. } => "invalid",
            CatalogError::Decompress(_) => "decompress",
            CatalogError::Zip(_) => "zip",
            CatalogError::Cab(_) => "cab",
            CatalogError::TooLarge { .. } => "too-large",
            CatalogError::JcatItemMissing { .. } => "jcat-item-missing",
            CatalogError::JcatChecksumMismatch { .. } => "jcat-checksum-mismatch",
            CatalogError::JcatNoChecksum { .. } => "jcat-no-checksum",
            CatalogError::JcatUnsigned { .. } => "jcat-unsigned",
            CatalogError::JcatSignatureInvalid { .. } => "jcat-signature-invalid",
            CatalogError::JcatUntrusted { .. } => "jcat-untrusted",
            CatalogError::Http { .. } => "http",
            CatalogError::HttpStatus { .. } => "http-status",
        }
    }
}
