//! Expiring HMAC tokens for blob URLs handed to BMCs (`SimpleUpdate` `ImageURI`), which cannot send our API token.
//!
//! Token: `<sha256>.<expires unix seconds>.<hex HMAC-SHA256(key, "fwblob/v1" ‖ sha256 ‖ "." ‖ expires)>`,
//! URL-safe and self-describing; the API checks that the path's digest equals the token's.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::hash::validate_sha256;

type HmacSha256 = Hmac<Sha256>;

/// Domain separation: a token for blobs is useless for anything else keyed the same.
const DOMAIN: &[u8] = b"fwblob/v1";

/// Why a blob token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The signing key is shorter than 32 bytes.
    #[error("blob URL key must be at least 32 bytes")]
    WeakKey,
    /// Not three dot-separated fields of the right shape.
    #[error("malformed blob token")]
    Malformed,
    /// The MAC does not verify.
    #[error("bad blob token signature")]
    BadSignature,
    /// The token's time is past.
    #[error("blob token expired at {0}")]
    Expired(i64),
    /// The token is for another blob.
    #[error("blob token is for another blob")]
    WrongBlob,
}

/// Signs and verifies expiring blob URLs with one secret key.
#[derive(Clone)]
pub struct BlobUrlSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for BlobUrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobUrlSigner { key: … }")
    }
}

impl BlobUrlSigner {
    /// A signer with `key` (≥ 32 random bytes, kept outside any topic).
    pub fn new(key: impl Into<Vec<u8>>) -> Result<Self, TokenError> {
        let key = key.into();
        if key.len() < 32 {
            return Err(TokenError::WeakKey);
        }
        Ok(BlobUrlSigner { key })
    }

    fn mac(&self, sha256: &str, expires: i64) -> HmacSha256 {
        // new_from_slice accepts any key length for HMAC.
        let mut mac = match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(DOMAIN);
        mac.update(sha256.as_bytes());
        mac.update(b".");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// A token granting `GET` of blob `sha256` until `expires`.
    pub fn sign_blob_url(
        &self,
        sha256: &str,
        expires: DateTime<Utc>,
    ) -> Result<String, TokenError> {
        validate_sha256(sha256).map_err(|_| TokenError::Malformed)?;
        let exp = expires.timestamp();
        let tag = hex::encode(self.mac(sha256, exp).finalize().into_bytes());
        Ok(format!("{sha256}.{exp}.{tag}"))
    }

    /// The full URL `<base>/v1/firmware/blobs/<sha256>?token=…` for a BMC.
    pub fn blob_url(
        &self,
        base: &str,
        sha256: &str,
        expires: DateTime<Utc>,
    ) -> Result<String, TokenError> {
        let token = self.sign_blob_url(sha256, expires)?;
        Ok(format!(
            "{}/v1/firmware/blobs/{sha256}?token={token}",
            base.trim_end_matches('/')
        ))
    }

    /// Verifies a token now; returns the digest it grants.
    pub fn verify(&self, token: &str) -> Result<String, TokenError> {
        self.verify_at(token, Utc::now())
    }

    /// Verifies a token for the blob in the request path.
    pub fn verify_for(&self, token: &str, sha256: &str) -> Result<(), TokenError> {
        let granted = self.verify(token)?;
        if granted == sha256 {
            Ok(())
        } else {
            Err(TokenError::WrongBlob)
        }
    }

    /// Verifies a token at time `now` (constant-time MAC comparison).
    pub fn verify_at(&self, token: &str, now: DateTime<Utc>) -> Result<String, TokenError> {
        let mut parts = token.split('.');
        let (Some(sha), Some(exp), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        validate_sha256(sha).map_err(|_| TokenError::Malformed)?;
        if exp.is_empty() || !exp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TokenError::Malformed);
        }
        let exp: i64 = exp.parse().map_err(|_| TokenError::Malformed)?;
        let tag = hex::decode(tag).map_err(|_| TokenError::Malformed)?;
        self.mac(sha, exp)
            .verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        if now.timestamp() >= exp {
            return Err(TokenError::Expired(exp));
        }
        Ok(sha.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn round_trip_expiry_and_tampering() -> Result<(), TokenError> {
        let s = BlobUrlSigner::new([7u8; 32])?;
        let exp = Utc::now() + chrono::Duration::minutes(10);
        let t = s.sign_blob_url(SHA, exp)?;
        assert_eq!(s.verify(&t)?, SHA);
        s.verify_for(&t, SHA)?;
        let other = SHA.replace('9', "8");
        assert_eq!(s.verify_for(&t, &other), Err(TokenError::WrongBlob));
        // Moving the expiry breaks the MAC.
        let later = t.replace(
            &exp.timestamp().to_string(),
            &(exp.timestamp() + 1).to_string(),
        );
        assert_eq!(s.verify(&later), Err(TokenError::BadSignature));
        // Another key refuses it.
        let s2 = BlobUrlSigner::new([8u8; 32])?;
        assert_eq!(s2.verify(&t), Err(TokenError::BadSignature));
        // Expired.
        let past = s.sign_blob_url(SHA, Utc::now() - chrono::Duration::seconds(1))?;
        assert!(matches!(s.verify(&past), Err(TokenError::Expired(_))));
        assert_eq!(s.verify("x.y"), Err(TokenError::Malformed));
        assert_eq!(
            BlobUrlSigner::new([0u8; 8]).err(),
            Some(TokenError::WeakKey)
        );
        let url = s.blob_url("http://h:8080/api/", SHA, exp)?;
        assert!(url.starts_with(&format!(
            "http://h:8080/api/v1/firmware/blobs/{SHA}?token={SHA}."
        )));
        Ok(())
    }
}
