//! The TPM hash algorithms this crate computes with, and the TPM 2.0 key derivation functions
//! (Part 1 §11.4.10: KDFa over HMAC, KDFe over a plain hash).

use hmac::{Mac, SimpleHmac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// A TPM_ALG_ID hash algorithm, as used for object names and key derivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// TPM_ALG_SHA1 (0x0004); legacy TPMs still name objects with it.
    Sha1,
    /// TPM_ALG_SHA256 (0x000B); the default EK and AK templates use it.
    Sha256,
    /// TPM_ALG_SHA384 (0x000C); the high-range EK templates use it.
    Sha384,
    /// TPM_ALG_SHA512 (0x000D).
    Sha512,
}

impl HashAlg {
    /// Maps a TPM_ALG_ID; `None` for anything this crate does not hash with.
    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            0x0004 => Some(Self::Sha1),
            0x000B => Some(Self::Sha256),
            0x000C => Some(Self::Sha384),
            0x000D => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The TPM_ALG_ID, as it prefixes a TPM name.
    pub fn id(self) -> u16 {
        match self {
            Self::Sha1 => 0x0004,
            Self::Sha256 => 0x000B,
            Self::Sha384 => 0x000C,
            Self::Sha512 => 0x000D,
        }
    }

    /// The digest size in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// H(parts[0] || parts[1] || ...).
    pub(crate) fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut h = D::new();
            parts.iter().for_each(|p| h.update(p));
            h.finalize().to_vec()
        }
        match self {
            Self::Sha1 => run::<Sha1>(parts),
            Self::Sha256 => run::<Sha256>(parts),
            Self::Sha384 => run::<Sha384>(parts),
            Self::Sha512 => run::<Sha512>(parts),
        }
    }

    /// HMAC_H(key, parts[0] || parts[1] || ...).
    pub(crate) fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest + hmac::digest::core_api::BlockSizeUser>(
            key: &[u8],
            parts: &[&[u8]],
        ) -> Vec<u8> {
            // SimpleHmac takes a key of any length (it hashes long keys), so this cannot fail.
            let Ok(mut mac) = <SimpleHmac<D> as hmac::digest::KeyInit>::new_from_slice(key) else {
                unreachable!("HMAC accepts keys of any length")
            };
            parts.iter().for_each(|p| mac.update(p));
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Self::Sha1 => run::<Sha1>(key, parts),
            Self::Sha256 => run::<Sha256>(key, parts),
            Self::Sha384 => run::<Sha384>(key, parts),
            Self::Sha512 => run::<Sha512>(key, parts),
        }
    }

    /// KDFa (SP 800-108 counter mode over HMAC): `bits` of key from `key`, a label (a NUL is
    /// appended, as the TPM does) and two contexts.
    pub(crate) fn kdfa(
        self,
        key: &[u8],
        label: &str,
        context_u: &[u8],
        context_v: &[u8],
        bits: u32,
    ) -> Vec<u8> {
        let want = bits.div_ceil(8) as usize;
        let mut out = Vec::with_capacity(want + self.digest_len());
        let mut counter: u32 = 1;
        while out.len() < want {
            out.extend(self.hmac(
                key,
                &[
                    &counter.to_be_bytes(),
                    label.as_bytes(),
                    &[0],
                    context_u,
                    context_v,
                    &bits.to_be_bytes(),
                ],
            ));
            counter += 1;
        }
        out.truncate(want);
        out
    }

    /// KDFe (SP 800-56A concatenation KDF): `bits` of key from the ECDH shared x-coordinate `z`,
    /// a label (NUL appended) and both parties' x-coordinates.
    pub(crate) fn kdfe(
        self,
        z: &[u8],
        label: &str,
        party_u: &[u8],
        party_v: &[u8],
        bits: u32,
    ) -> Vec<u8> {
        let want = bits.div_ceil(8) as usize;
        let mut out = Vec::with_capacity(want + self.digest_len());
        let mut counter: u32 = 1;
        while out.len() < want {
            out.extend(self.digest(&[
                &counter.to_be_bytes(),
                z,
                label.as_bytes(),
                &[0],
                party_u,
                party_v,
            ]));
            counter += 1;
        }
        out.truncate(want);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = HashAlg::Sha256.hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn kdfa_truncates_to_the_bits_asked() {
        let k = HashAlg::Sha256.kdfa(b"seed", "STORAGE", b"name", &[], 128);
        assert_eq!(k.len(), 16);
        let long = HashAlg::Sha256.kdfa(b"seed", "STORAGE", b"name", &[], 520);
        assert_eq!(long.len(), 65);
    }
}
