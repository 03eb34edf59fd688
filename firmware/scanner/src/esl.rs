//! EFI_SIGNATURE_LIST parsing: the content of PK, KEK, db and dbx, from blobs or live servers.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::guid::{self, Guid};
use crate::util::{slice, u32_at};

/// Size of the fixed EFI_SIGNATURE_LIST header.
const ESL_HEADER: usize = 28;
/// Size of the owner GUID in front of each signature.
const OWNER: usize = 16;

/// Why a signature list could not be read; the offset is inside the variable data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EslError {
    /// The list header or body runs past the data.
    #[error("signature list at {offset:#x} truncated: needs {needed} bytes, {available} left")]
    Truncated {
        /// Offset of the list.
        offset: usize,
        /// Bytes the header claims.
        needed: usize,
        /// Bytes actually left.
        available: usize,
    },
    /// SignatureSize is 0, smaller than the owner GUID, or does not divide the body.
    #[error("signature list at {offset:#x}: bad SignatureSize {size} for a body of {body} bytes")]
    BadSignatureSize {
        /// Offset of the list.
        offset: usize,
        /// The SignatureSize field.
        size: u32,
        /// Body length after the headers.
        body: usize,
    },
    /// SignatureListSize is smaller than its own header.
    #[error("signature list at {offset:#x}: SignatureListSize {size} smaller than its header")]
    BadListSize {
        /// Offset of the list.
        offset: usize,
        /// The SignatureListSize field.
        size: u32,
    },
}

impl EslError {
    /// The offset of the failing list inside the variable data.
    pub fn offset(&self) -> usize {
        match self {
            EslError::Truncated { offset, .. }
            | EslError::BadSignatureSize { offset, .. }
            | EslError::BadListSize { offset, .. } => *offset,
        }
    }
}

/// One signature's payload, typed by its list's SignatureType.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignatureData {
    /// EFI_CERT_X509_GUID: a DER certificate.
    X509 {
        /// The DER bytes, hex in JSON.
        #[serde(with = "hex_bytes")]
        der: Vec<u8>,
    },
    /// EFI_CERT_SHA256_GUID: an image or certificate hash.
    Sha256 {
        /// The 32 hash bytes, hex in JSON.
        #[serde(with = "hex_bytes")]
        hash: Vec<u8>,
    },
    /// Any other type (X509_SHA256, RSA2048, …), kept as bytes.
    Other {
        /// The SignatureType GUID.
        signature_type: Guid,
        /// The payload, hex in JSON.
        #[serde(with = "hex_bytes")]
        data: Vec<u8>,
    },
}

/// One EFI_SIGNATURE_DATA: owner plus payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureEntry {
    /// SignatureOwner GUID (who enrolled it); the nil GUID when unknown (Redfish).
    pub owner: Guid,
    /// The payload.
    pub data: SignatureData,
}

/// Parses a whole variable's data: a sequence of EFI_SIGNATURE_LISTs, flattened to entries.
pub fn parse_signature_lists(data: &[u8]) -> Result<Vec<SignatureEntry>, EslError> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < data.len() {
        let available = data.len() - off;
        let (Some(ty), Some(list_size), Some(hdr_size), Some(sig_size)) = (
            Guid::read(data, off),
            u32_at(data, off + 16),
            u32_at(data, off + 20),
            u32_at(data, off + 24),
        ) else {
            return Err(EslError::Truncated {
                offset: off,
                needed: ESL_HEADER,
                available,
            });
        };
        let list_len = list_size as usize;
        let headers = ESL_HEADER.saturating_add(hdr_size as usize);
        if list_len < headers {
            return Err(EslError::BadListSize {
                offset: off,
                size: list_size,
            });
        }
        if list_len > available {
            return Err(EslError::Truncated {
                offset: off,
                needed: list_len,
                available,
            });
        }
        let body = list_len - headers;
        let sig_len = sig_size as usize;
        if sig_len < OWNER || !body.is_multiple_of(sig_len) {
            return Err(EslError::BadSignatureSize {
                offset: off,
                size: sig_size,
                body,
            });
        }
        let mut pos = off + headers;
        let end = off + list_len;
        while pos < end {
            let (Some(owner), Some(payload)) = (
                Guid::read(data, pos),
                slice(data, pos + OWNER, sig_len - OWNER),
            ) else {
                return Err(EslError::Truncated {
                    offset: off,
                    needed: list_len,
                    available,
                });
            };
            let data = if ty == guid::CERT_X509 {
                SignatureData::X509 {
                    der: payload.to_vec(),
                }
            } else if ty == guid::CERT_SHA256 && payload.len() == 32 {
                SignatureData::Sha256 {
                    hash: payload.to_vec(),
                }
            } else {
                SignatureData::Other {
                    signature_type: ty,
                    data: payload.to_vec(),
                }
            };
            out.push(SignatureEntry { owner, data });
            pos += sig_len;
        }
        off = end;
    }
    Ok(out)
}

/// Builds one EFI_SIGNATURE_LIST per entry (tests, and callers turning Redfish data into bytes).
pub fn encode_signature_lists(entries: &[SignatureEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let (ty, payload) = match &e.data {
            SignatureData::X509 { der } => (guid::CERT_X509, der.as_slice()),
            SignatureData::Sha256 { hash } => (guid::CERT_SHA256, hash.as_slice()),
            SignatureData::Other {
                signature_type,
                data,
            } => (*signature_type, data.as_slice()),
        };
        let sig = OWNER + payload.len();
        let list = ESL_HEADER + sig;
        out.extend_from_slice(&ty.0);
        out.extend_from_slice(&u32::try_from(list).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&u32::try_from(sig).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&e.owner.0);
        out.extend_from_slice(payload);
    }
    out
}

/// Strips the 4-byte attribute prefix of an efivarfs file (the agent's in-band source).
pub fn efivarfs_payload(file: &[u8]) -> Option<&[u8]> {
    file.get(4..)
}

/// Hex (de)serialisation of byte vectors.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha_entry(b: u8) -> SignatureEntry {
        SignatureEntry {
            owner: Guid([b; 16]),
            data: SignatureData::Sha256 { hash: vec![b; 32] },
        }
    }

    #[test]
    fn round_trip() {
        let entries = vec![sha_entry(1), sha_entry(2)];
        let bytes = encode_signature_lists(&entries);
        assert_eq!(parse_signature_lists(&bytes), Ok(entries));
    }

    #[test]
    fn zero_signature_size_is_an_error() {
        let mut bytes = encode_signature_lists(&[sha_entry(1)]);
        bytes[24..28].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            parse_signature_lists(&bytes),
            Err(EslError::BadSignatureSize { size: 0, .. })
        ));
    }

    #[test]
    fn signature_size_beyond_list_is_an_error() {
        let mut bytes = encode_signature_lists(&[sha_entry(1)]);
        bytes[24..28].copy_from_slice(&1000u32.to_le_bytes());
        assert!(parse_signature_lists(&bytes).is_err());
        let mut bytes = encode_signature_lists(&[sha_entry(1)]);
        bytes[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse_signature_lists(&bytes),
            Err(EslError::Truncated { .. })
        ));
        assert!(parse_signature_lists(&bytes[..10]).is_err());
    }
}
