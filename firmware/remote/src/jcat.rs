//! Writing a `.jcat` (libjcat's gzip-compressed JSON) for one file: its SHA-256 and our PKCS#7.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::RemoteError;
use crate::signing::SigningIdentity;

/// libjcat's `JCAT_BLOB_KIND_SHA256`.
const KIND_SHA256: u32 = 1;
/// libjcat's `JCAT_BLOB_KIND_PKCS7`.
const KIND_PKCS7: u32 = 3;
/// libjcat's `JCAT_BLOB_FLAG_IS_UTF8`.
const FLAG_UTF8: u32 = 1;

/// A jcat for `file` (its item `Id`) holding a SHA-256 blob and a detached PKCS#7 by `identity`,
/// stamped `timestamp` (Unix seconds); gzip-compressed as libjcat writes it.
pub fn signed_jcat(
    file: &str,
    content: &[u8],
    identity: &SigningIdentity,
    timestamp: i64,
) -> Result<Vec<u8>, RemoteError> {
    let pkcs7 = identity.sign_detached_pem(content)?;
    let doc = json!({
        "JcatVersionMajor": 0,
        "JcatVersionMinor": 1,
        "Items": [{
            "Id": file,
            "Blobs": [
                {
                    "Kind": KIND_SHA256,
                    "Flags": FLAG_UTF8,
                    "Timestamp": timestamp,
                    "Data": hex::encode(Sha256::digest(content)),
                },
                {
                    "Kind": KIND_PKCS7,
                    "Flags": FLAG_UTF8,
                    "Timestamp": timestamp,
                    "Data": pkcs7,
                },
            ],
        }],
    });
    let json = serde_json::to_vec_pretty(&doc).map_err(|e| RemoteError::Crypto {
        what: "encoding the jcat",
        detail: e.to_string(),
    })?;
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&json)
        .and_then(|_| gz.finish())
        .map_err(|source| RemoteError::Io {
            path: format!("{file}.jcat"),
            source,
        })
}
