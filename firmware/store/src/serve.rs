//! Serving helpers for the API: byte ranges of a blob as a stream.

use std::ops::Range;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::{GetOptions, GetRange, ObjectStoreExt};

use crate::error::StoreError;
use crate::hash::validate_sha256;
use crate::layout::blob_path;
use crate::store::FirmwareStore;

/// The part of a blob a client asked for (one HTTP `Range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobRange {
    /// The whole blob.
    Full,
    /// `bytes=start-end` (end inclusive, as in HTTP).
    Inclusive(u64, u64),
    /// `bytes=start-`.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl BlobRange {
    /// Parses one `Range` header value (`bytes=…`; several ranges are refused).
    pub fn parse(header: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::BadRange(header.chars().take(100).collect());
        let spec = header.trim().strip_prefix("bytes=").ok_or_else(bad)?.trim();
        if spec.contains(',') {
            return Err(bad());
        }
        let (a, b) = spec.split_once('-').ok_or_else(bad)?;
        let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
        match (a.trim().is_empty(), b.trim().is_empty()) {
            (true, false) => Ok(BlobRange::Suffix(num(b)?)),
            (false, true) => Ok(BlobRange::From(num(a)?)),
            (false, false) => {
                let (s, e) = (num(a)?, num(b)?);
                if e < s {
                    return Err(bad());
                }
                Ok(BlobRange::Inclusive(s, e))
            }
            (true, true) => Err(bad()),
        }
    }

    /// The byte range within a blob of `size` bytes, or `RangeNotSatisfiable`.
    pub fn resolve(self, size: u64) -> Result<Range<u64>, StoreError> {
        let unsat = StoreError::RangeNotSatisfiable { size };
        match self {
            BlobRange::Full => Ok(0..size),
            BlobRange::Inclusive(s, _) | BlobRange::From(s) if s >= size => Err(unsat),
            BlobRange::Inclusive(s, e) => Ok(s..e.saturating_add(1).min(size)),
            BlobRange::From(s) => Ok(s..size),
            BlobRange::Suffix(0) => Err(unsat),
            BlobRange::Suffix(n) => Ok(size.saturating_sub(n)..size),
        }
    }
}

/// A blob's bytes for one response: the total size (for `Content-Range`), the range and the stream.
pub struct BlobBody {
    /// The whole blob's size.
    pub total_size: u64,
    /// The bytes this body carries.
    pub range: Range<u64>,
    /// The bytes.
    pub stream: BoxStream<'static, Result<Bytes, StoreError>>,
}

impl std::fmt::Debug for BlobBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobBody")
            .field("total_size", &self.total_size)
            .field("range", &self.range)
            .finish()
    }
}

impl FirmwareStore {
    /// Streams a blob or a range of it, for `GET /v1/firmware/blobs/{sha256}` with `Range`.
    pub async fn blob_range(&self, sha256: &str, range: BlobRange) -> Result<BlobBody, StoreError> {
        validate_sha256(sha256)?;
        let path = blob_path(sha256);
        let os = self.object_store();
        let size = match os.head(&path).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::NotFound(sha256.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let wanted = range.resolve(size)?;
        if wanted.is_empty() {
            return Ok(BlobBody {
                total_size: size,
                range: wanted,
                stream: futures::stream::empty().boxed(),
            });
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(wanted.clone())),
            ..GetOptions::default()
        };
        let got = os.get_opts(&path, opts).await?;
        Ok(BlobBody {
            total_size: size,
            range: got.range.clone(),
            stream: got
                .into_stream()
                .map(|r| r.map_err(StoreError::from))
                .boxed(),
        })
    }
}
