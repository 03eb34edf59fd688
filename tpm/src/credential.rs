//! TPM2_MakeCredential in software (TPM 2.0 Part 1 §24, Part 3 §12.6): the service's half of the
//! credential-activation challenge.
//!
//! The service wraps a random secret so that only a TPM holding the EK's private key *and* an
//! object with exactly the AK's name can unwrap it (TPM2_ActivateCredential). With the AK's
//! attributes checked (fixedTPM, restricted), a correct answer proves the AK lives on the EK's TPM.

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::hash::HashAlg;
use crate::public::{PublicError, PublicKey, TpmPublic, rsa_key, sec1};
use crate::wire::{put_tpm2b, tpm2b};

/// The label binding the seed to credential protection (Part 1 §24.4).
const IDENTITY: &str = "IDENTITY";

/// Why a challenge could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The EK is not a restricted decryption key, so no TPM would activate with it.
    #[error("the EK public area is not a restricted decryption key")]
    NotAnEndorsementKey,
    /// The EK protects its children with something other than AES-CFB.
    #[error("unsupported EK symmetric algorithm (only AES-128/192/256 in CFB mode)")]
    UnsupportedSymmetric,
    /// The AK name is not nameAlg || digest of a known algorithm.
    #[error("malformed AK name ({0} bytes)")]
    MalformedName(usize),
    /// The secret is empty or longer than the EK's name digest (the TPM refuses those).
    #[error("secret must be 1..={max} bytes, got {got}")]
    SecretSize {
        /// The largest secret the TPM accepts for this EK.
        max: usize,
        /// The size given.
        got: usize,
    },
    /// The EK's key cannot be used (bad point, unusable RSA key, unsupported curve).
    #[error("unusable EK key: {0}")]
    Key(#[from] PublicError),
    /// A field would not fit its TPM2B size (cannot happen for the sizes checked above).
    #[error("challenge exceeds TPM2B size limits")]
    Encoding,
    /// RSA encryption of the seed failed.
    #[error("RSA-OAEP encryption of the seed failed: {0}")]
    Rsa(#[from] rsa::Error),
}

/// The challenge sent to the agent: TPM2_ActivateCredential's two inputs, marshalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// TPM2B_ID_OBJECT: the integrity HMAC and the encrypted secret.
    pub credential_blob: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET: the seed, encrypted to the EK.
    pub encrypted_secret: Vec<u8>,
}

/// Wraps `secret` for the TPM holding `ek`, bound to the object named `ak_name`.
///
/// `ak_name` must be the name the service computed from the AK public area
/// ([`TpmPublic::name`]), never one the agent sent.
pub fn make_credential(
    ek: &TpmPublic,
    ak_name: &[u8],
    secret: &[u8],
) -> Result<Challenge, CredentialError> {
    if !ek.is_endorsement_key() {
        return Err(CredentialError::NotAnEndorsementKey);
    }
    let sym = ek
        .symmetric()
        .filter(|s| s.is_aes_cfb() && matches!(s.key_bits, 128 | 192 | 256))
        .ok_or(CredentialError::UnsupportedSymmetric)?;
    check_name(ak_name)?;
    let hash = ek.name_alg();
    let max = hash.digest_len();
    if secret.is_empty() || secret.len() > max {
        return Err(CredentialError::SecretSize {
            max,
            got: secret.len(),
        });
    }

    let (seed, encrypted_secret) = seed_for(ek)?;

    // encIdentity: the marshalled TPM2B_DIGEST of the secret, AES-CFB with a zero IV under a key
    // derived from the seed and the AK's name.
    let sym_key =
        Zeroizing::new(hash.kdfa(&seed, "STORAGE", ak_name, &[], u32::from(sym.key_bits)));
    let mut enc_identity = Zeroizing::new(tpm2b(secret).ok_or(CredentialError::Encoding)?);
    aes_cfb_encrypt(&sym_key, &mut enc_identity)?;

    // The outer HMAC binds encIdentity to the name, keyed from the seed alone.
    let hmac_key = Zeroizing::new(hash.kdfa(&seed, "INTEGRITY", &[], &[], (max * 8) as u32));
    let integrity = hash.hmac(&hmac_key, &[&enc_identity, ak_name]);

    let mut id_object = Vec::with_capacity(2 + integrity.len() + enc_identity.len());
    put_tpm2b(&mut id_object, &integrity).ok_or(CredentialError::Encoding)?;
    id_object.extend_from_slice(&enc_identity);
    Ok(Challenge {
        credential_blob: tpm2b(&id_object).ok_or(CredentialError::Encoding)?,
        encrypted_secret,
    })
}

/// Whether the agent's answer is the secret the challenge wrapped, compared in constant time
/// so the comparison leaks nothing about the secret.
pub fn answer_matches(secret: &[u8], answer: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    secret.len() == answer.len() && bool::from(secret.ct_eq(answer))
}

/// A TPM name is nameAlg (2 bytes) || digest, with the digest as long as the algorithm says.
fn check_name(name: &[u8]) -> Result<(), CredentialError> {
    let bad = || CredentialError::MalformedName(name.len());
    let (alg, digest) = name.split_first_chunk::<2>().ok_or_else(bad)?;
    let alg = HashAlg::from_id(u16::from_be_bytes(*alg)).ok_or_else(bad)?;
    if digest.len() != alg.digest_len() {
        return Err(bad());
    }
    Ok(())
}

/// A fresh seed and its TPM2B_ENCRYPTED_SECRET for the EK (Part 1 §24.4, Annex B.10 / C.6).
fn seed_for(ek: &TpmPublic) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), CredentialError> {
    let hash = ek.name_alg();
    match ek.key() {
        PublicKey::Rsa { modulus, exponent } => {
            // RSA: a random seed of the nameAlg's digest size, RSA-OAEP with the nameAlg and the
            // label "IDENTITY\0".
            let mut seed = Zeroizing::new(vec![0u8; hash.digest_len()]);
            OsRng.fill_bytes(&mut seed);
            let key = rsa_key(modulus, *exponent)?;
            let label = format!("{IDENTITY}\0");
            let padding = match hash {
                HashAlg::Sha1 => rsa::Oaep::new_with_label::<sha1::Sha1, _>(label),
                HashAlg::Sha256 => rsa::Oaep::new_with_label::<sha2::Sha256, _>(label),
                HashAlg::Sha384 => rsa::Oaep::new_with_label::<sha2::Sha384, _>(label),
                HashAlg::Sha512 => rsa::Oaep::new_with_label::<sha2::Sha512, _>(label),
            };
            let encrypted = key.encrypt(&mut OsRng, padding, &seed)?;
            Ok((
                seed,
                tpm2b(&encrypted).ok_or(PublicError::Invalid("RSA key too large"))?,
            ))
        }
        PublicKey::Ecc { curve, x, y } => {
            // ECC: one-pass ECDH with an ephemeral key; the seed is KDFe over the shared
            // x-coordinate, and the encrypted secret is the ephemeral point (TPMS_ECC_POINT).
            let (z, eph_x, eph_y) = match *curve {
                0x0003 => ecdh_p256(x, y)?,
                0x0004 => ecdh_p384(x, y)?,
                other => return Err(PublicError::UnsupportedCurve(other).into()),
            };
            let bits = (hash.digest_len() * 8) as u32;
            let seed = Zeroizing::new(hash.kdfe(&z, IDENTITY, &eph_x, x, bits));
            let mut point = Vec::with_capacity(4 + eph_x.len() + eph_y.len());
            put_tpm2b(&mut point, &eph_x).ok_or(PublicError::Invalid("EC point too large"))?;
            put_tpm2b(&mut point, &eph_y).ok_or(PublicError::Invalid("EC point too large"))?;
            Ok((
                seed,
                tpm2b(&point).ok_or(PublicError::Invalid("EC point too large"))?,
            ))
        }
    }
}

type Ecdh = (Zeroizing<Vec<u8>>, Vec<u8>, Vec<u8>);

/// Shared x-coordinate and the ephemeral public point's coordinates, on P-256.
fn ecdh_p256(x: &[u8], y: &[u8]) -> Result<Ecdh, PublicError> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let peer = p256::PublicKey::from_sec1_bytes(&sec1(x, y, 32)?)
        .map_err(|_| PublicError::Invalid("EK point is not on P-256"))?;
    let eph = p256::ecdh::EphemeralSecret::random(&mut OsRng);
    let z = Zeroizing::new(eph.diffie_hellman(&peer).raw_secret_bytes().to_vec());
    let point = eph.public_key().to_encoded_point(false);
    match (point.x(), point.y()) {
        (Some(ex), Some(ey)) => Ok((z, ex.to_vec(), ey.to_vec())),
        _ => Err(PublicError::Invalid("ephemeral point at infinity")),
    }
}

/// Shared x-coordinate and the ephemeral public point's coordinates, on P-384.
fn ecdh_p384(x: &[u8], y: &[u8]) -> Result<Ecdh, PublicError> {
    use p384::elliptic_curve::sec1::ToEncodedPoint;
    let peer = p384::PublicKey::from_sec1_bytes(&sec1(x, y, 48)?)
        .map_err(|_| PublicError::Invalid("EK point is not on P-384"))?;
    let eph = p384::ecdh::EphemeralSecret::random(&mut OsRng);
    let z = Zeroizing::new(eph.diffie_hellman(&peer).raw_secret_bytes().to_vec());
    let point = eph.public_key().to_encoded_point(false);
    match (point.x(), point.y()) {
        (Some(ex), Some(ey)) => Ok((z, ex.to_vec(), ey.to_vec())),
        _ => Err(PublicError::Invalid("ephemeral point at infinity")),
    }
}

/// AES-CFB (full-block feedback, as the TPM uses) with a zero IV, in place.
fn aes_cfb_encrypt(key: &[u8], buf: &mut [u8]) -> Result<(), CredentialError> {
    let iv = [0u8; 16];
    let bad = |_| CredentialError::UnsupportedSymmetric;
    match key.len() {
        16 => cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(key, &iv)
            .map_err(bad)?
            .encrypt(buf),
        24 => cfb_mode::Encryptor::<aes::Aes192>::new_from_slices(key, &iv)
            .map_err(bad)?
            .encrypt(buf),
        32 => cfb_mode::Encryptor::<aes::Aes256>::new_from_slices(key, &iv)
            .map_err(bad)?
            .encrypt(buf),
        _ => return Err(CredentialError::UnsupportedSymmetric),
    }
    Ok(())
}
