//! TPM2B_PUBLIC / TPMT_PUBLIC (TPM 2.0 Part 2 §12.2): parsing, the object's name, and the key.
//!
//! The service computes every name and fingerprint itself from the public area: a name or key
//! that an agent merely states proves nothing.

use p256::pkcs8::EncodePublicKey;
use rsa::BigUint;

use crate::hash::HashAlg;
use crate::wire::{Reader, WireError};

const ALG_RSA: u16 = 0x0001;
const ALG_ECC: u16 = 0x0023;
const ALG_NULL: u16 = 0x0010;
const ALG_AES: u16 = 0x0006;
const ALG_XOR: u16 = 0x000A;
const ALG_CFB: u16 = 0x0043;
const ALG_RSAES: u16 = 0x0015;
const ALG_ECDAA: u16 = 0x001A;

/// The TPM_ECC_CURVE ids this crate knows.
const ECC_NIST_P256: u16 = 0x0003;
const ECC_NIST_P384: u16 = 0x0004;

/// Why a public area was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicError {
    /// The bytes do not hold a well-formed structure.
    #[error("malformed public area: {0}")]
    Wire(#[from] WireError),
    /// The TPM2B size does not match the TPMT_PUBLIC inside it.
    #[error("TPM2B_PUBLIC size {declared} but {actual} bytes follow")]
    SizeMismatch {
        /// The size the TPM2B header declares.
        declared: usize,
        /// The bytes actually following it.
        actual: usize,
    },
    /// The object type is neither RSA nor ECC.
    #[error("unsupported object type 0x{0:04x} (only RSA and ECC keys)")]
    UnsupportedType(u16),
    /// The name algorithm is not one this crate hashes with.
    #[error("unsupported name algorithm 0x{0:04x}")]
    UnsupportedNameAlg(u16),
    /// A field holds a value the TPM would never produce.
    #[error("invalid public area: {0}")]
    Invalid(&'static str),
    /// The curve is valid for a TPM but this crate cannot do arithmetic on it.
    #[error("unsupported ECC curve 0x{0:04x} (only NIST P-256 and P-384)")]
    UnsupportedCurve(u16),
}

/// TPMA_OBJECT, the object's attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectAttributes(pub u32);

impl ObjectAttributes {
    /// The key cannot be duplicated off this TPM.
    pub const FIXED_TPM: u32 = 1 << 1;
    /// The key cannot be duplicated to another parent.
    pub const FIXED_PARENT: u32 = 1 << 4;
    /// The TPM generated the sensitive part itself.
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    /// User-role authorisation may be given with the object's auth value.
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    /// Admin-role actions need the policy.
    pub const ADMIN_WITH_POLICY: u32 = 1 << 7;
    /// The key only operates on TPM-formatted data (signs only TPM-generated digests, decrypts
    /// only TPM structures).
    pub const RESTRICTED: u32 = 1 << 16;
    /// The key decrypts.
    pub const DECRYPT: u32 = 1 << 17;
    /// The key signs.
    pub const SIGN: u32 = 1 << 18;

    /// Whether every bit of `mask` is set.
    pub fn has(self, mask: u32) -> bool {
        self.0 & mask == mask
    }
}

/// A symmetric definition (TPMT_SYM_DEF_OBJECT) of a storage key, such as an EK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymmetricDef {
    /// TPM_ALG_ID of the cipher (0x0006 for AES).
    pub algorithm: u16,
    /// Key size in bits.
    pub key_bits: u16,
    /// TPM_ALG_ID of the mode (0x0043 for CFB).
    pub mode: u16,
}

impl SymmetricDef {
    /// Whether this is AES in CFB mode, the only cipher credential protection here supports.
    pub fn is_aes_cfb(&self) -> bool {
        self.algorithm == ALG_AES && self.mode == ALG_CFB
    }
}

/// The public key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An RSA key.
    Rsa {
        /// The modulus, big-endian, as the TPM gives it.
        modulus: Vec<u8>,
        /// The public exponent (the TPM's 0 already mapped to 65537).
        exponent: u32,
    },
    /// An elliptic-curve point.
    Ecc {
        /// TPM_ECC_CURVE id (0x0003 NIST P-256, 0x0004 NIST P-384).
        curve: u16,
        /// The x coordinate, big-endian.
        x: Vec<u8>,
        /// The y coordinate, big-endian.
        y: Vec<u8>,
    },
}

/// A parsed TPMT_PUBLIC together with the exact bytes it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmPublic {
    tpmt: Vec<u8>,
    name_alg: HashAlg,
    attributes: ObjectAttributes,
    auth_policy: Vec<u8>,
    symmetric: Option<SymmetricDef>,
    key: PublicKey,
}

impl TpmPublic {
    /// Parses a marshalled TPM2B_PUBLIC (what `tpm2_createek -u`, `tpm2_createak -u` write and
    /// what the agent sends).
    pub fn from_tpm2b(bytes: &[u8]) -> Result<Self, PublicError> {
        let mut r = Reader::new(bytes);
        let declared = usize::from(r.u16()?);
        let actual = bytes.len() - r.position();
        if declared != actual {
            return Err(PublicError::SizeMismatch { declared, actual });
        }
        Self::from_tpmt(r.take(declared)?)
    }

    /// Parses a marshalled TPMT_PUBLIC (no size prefix); it must end exactly where the bytes do.
    pub fn from_tpmt(bytes: &[u8]) -> Result<Self, PublicError> {
        if bytes.len() > usize::from(u16::MAX) {
            return Err(PublicError::Invalid("longer than a TPM2B_PUBLIC can hold"));
        }
        let mut r = Reader::new(bytes);
        let kind = r.u16()?;
        if kind != ALG_RSA && kind != ALG_ECC {
            return Err(PublicError::UnsupportedType(kind));
        }
        let name_alg_id = r.u16()?;
        let name_alg =
            HashAlg::from_id(name_alg_id).ok_or(PublicError::UnsupportedNameAlg(name_alg_id))?;
        let attributes = ObjectAttributes(r.u32()?);
        let auth_policy = r.tpm2b()?.to_vec();
        let symmetric = read_symmetric(&mut r)?;
        let key = if kind == ALG_RSA {
            read_rsa(&mut r)?
        } else {
            read_ecc(&mut r)?
        };
        r.finish()?;
        Ok(Self {
            tpmt: bytes.to_vec(),
            name_alg,
            attributes,
            auth_policy,
            symmetric,
            key,
        })
    }

    /// The marshalled TPMT_PUBLIC, exactly as parsed.
    pub fn tpmt_bytes(&self) -> &[u8] {
        &self.tpmt
    }

    /// The marshalled TPM2B_PUBLIC.
    pub fn tpm2b_bytes(&self) -> Vec<u8> {
        // from_tpmt refused anything longer than a u16 size, so this always fits.
        crate::wire::tpm2b(&self.tpmt).unwrap_or_default()
    }

    /// The algorithm the object's name is computed with.
    pub fn name_alg(&self) -> HashAlg {
        self.name_alg
    }

    /// The object's attribute bits.
    pub fn attributes(&self) -> ObjectAttributes {
        self.attributes
    }

    /// The authorisation policy digest (the EK templates' PolicySecret(TPM_RH_ENDORSEMENT)).
    pub fn auth_policy(&self) -> &[u8] {
        &self.auth_policy
    }

    /// The symmetric algorithm a storage key (EK) protects its children with; `None` for keys
    /// with TPM_ALG_NULL there (signing keys).
    pub fn symmetric(&self) -> Option<SymmetricDef> {
        self.symmetric
    }

    /// The public key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The TPM name: nameAlg (2 bytes, big-endian) || H_nameAlg(TPMT_PUBLIC).
    pub fn name(&self) -> Vec<u8> {
        let mut name = self.name_alg.id().to_be_bytes().to_vec();
        name.extend(self.name_alg.digest(&[&self.tpmt]));
        name
    }

    /// Whether this can be an attestation key: a restricted signing key that never leaves this
    /// TPM (fixedTPM, fixedParent) and was generated inside it (sensitiveDataOrigin), and that
    /// does not decrypt.
    pub fn is_attestation_key(&self) -> bool {
        let a = self.attributes;
        a.has(
            ObjectAttributes::RESTRICTED
                | ObjectAttributes::SIGN
                | ObjectAttributes::FIXED_TPM
                | ObjectAttributes::FIXED_PARENT
                | ObjectAttributes::SENSITIVE_DATA_ORIGIN,
        ) && !a.has(ObjectAttributes::DECRYPT)
    }

    /// Whether this can be an endorsement key: a restricted decryption (storage) key, the only
    /// kind TPM2_ActivateCredential accepts as the credential's protector.
    pub fn is_endorsement_key(&self) -> bool {
        self.attributes
            .has(ObjectAttributes::RESTRICTED | ObjectAttributes::DECRYPT)
    }

    /// The public key as a DER SubjectPublicKeyInfo, the encoding X.509 certificates carry.
    pub fn spki_der(&self) -> Result<Vec<u8>, PublicError> {
        let der = match &self.key {
            PublicKey::Rsa { modulus, exponent } => rsa_key(modulus, *exponent)?
                .to_public_key_der()
                .map_err(|_| PublicError::Invalid("RSA key cannot be DER-encoded"))?,
            PublicKey::Ecc { curve, x, y } => match *curve {
                ECC_NIST_P256 => p256::PublicKey::from_sec1_bytes(&sec1(x, y, 32)?)
                    .map_err(|_| PublicError::Invalid("point is not on P-256"))?
                    .to_public_key_der(),
                ECC_NIST_P384 => p384::PublicKey::from_sec1_bytes(&sec1(x, y, 48)?)
                    .map_err(|_| PublicError::Invalid("point is not on P-384"))?
                    .to_public_key_der(),
                other => return Err(PublicError::UnsupportedCurve(other)),
            }
            .map_err(|_| PublicError::Invalid("EC key cannot be DER-encoded"))?,
        };
        Ok(der.into_vec())
    }

    /// The key's fingerprint: lowercase hex SHA-256 of its DER SubjectPublicKeyInfo.
    ///
    /// SPKI rather than the TPM name, because the name changes with the template (attributes,
    /// policy, nameAlg) while the SPKI is what the EK certificate certifies: for an EK this equals
    /// `openssl x509 -pubkey -noout -in ek.pem | openssl pkey -pubin -outform der | sha256sum`,
    /// so operators can match it against certificates and vendor tools.
    pub fn fingerprint(&self) -> Result<String, PublicError> {
        Ok(hex::encode(HashAlg::Sha256.digest(&[&self.spki_der()?])))
    }
}

/// Builds an RSA public key, refusing sizes and exponents the `rsa` crate would reject.
pub(crate) fn rsa_key(modulus: &[u8], exponent: u32) -> Result<rsa::RsaPublicKey, PublicError> {
    rsa::RsaPublicKey::new(
        BigUint::from_bytes_be(modulus),
        BigUint::from(u64::from(exponent)),
    )
    .map_err(|_| PublicError::Invalid("unusable RSA key (size or exponent)"))
}

/// The SEC1 uncompressed encoding 04 || x || y, each coordinate left-padded to `len` bytes.
pub(crate) fn sec1(x: &[u8], y: &[u8], len: usize) -> Result<Vec<u8>, PublicError> {
    if x.len() > len || y.len() > len {
        return Err(PublicError::Invalid("EC coordinate longer than the curve"));
    }
    let mut out = vec![0x04];
    for c in [x, y] {
        out.extend(std::iter::repeat_n(0, len - c.len()));
        out.extend_from_slice(c);
    }
    Ok(out)
}

/// TPMT_SYM_DEF_OBJECT: an algorithm, then key bits and mode unless it is TPM_ALG_NULL.
fn read_symmetric(r: &mut Reader<'_>) -> Result<Option<SymmetricDef>, PublicError> {
    let algorithm = r.u16()?;
    match algorithm {
        ALG_NULL => Ok(None),
        ALG_XOR => Err(PublicError::Invalid(
            "XOR is not an object symmetric algorithm",
        )),
        _ => Ok(Some(SymmetricDef {
            algorithm,
            key_bits: r.u16()?,
            mode: r.u16()?,
        })),
    }
}

/// TPMS_RSA_PARMS after the symmetric part, then TPM2B_PUBLIC_KEY_RSA.
fn read_rsa(r: &mut Reader<'_>) -> Result<PublicKey, PublicError> {
    let scheme = r.u16()?;
    // Every RSA scheme but RSAES carries a hash algorithm (TPMU_ASYM_SCHEME).
    if scheme != ALG_NULL && scheme != ALG_RSAES {
        r.u16()?;
    }
    let key_bits = r.u16()?;
    let exponent = match r.u32()? {
        0 => 65537,
        e => e,
    };
    let modulus = r.tpm2b()?;
    if modulus.is_empty() || modulus.len() * 8 != usize::from(key_bits) {
        return Err(PublicError::Invalid(
            "RSA modulus size differs from keyBits",
        ));
    }
    Ok(PublicKey::Rsa {
        modulus: modulus.to_vec(),
        exponent,
    })
}

/// TPMS_ECC_PARMS after the symmetric part, then TPMS_ECC_POINT.
fn read_ecc(r: &mut Reader<'_>) -> Result<PublicKey, PublicError> {
    let scheme = r.u16()?;
    if scheme != ALG_NULL {
        r.u16()?; // hashAlg
        if scheme == ALG_ECDAA {
            r.u16()?; // count
        }
    }
    let curve = r.u16()?;
    let kdf = r.u16()?;
    if kdf != ALG_NULL {
        r.u16()?; // hashAlg
    }
    let x = r.tpm2b()?.to_vec();
    let y = r.tpm2b()?.to_vec();
    if x.is_empty() || y.is_empty() {
        return Err(PublicError::Invalid("empty EC point"));
    }
    Ok(PublicKey::Ecc { curve, x, y })
}
