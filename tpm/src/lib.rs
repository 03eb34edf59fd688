//! TPM 2.0 endorsement and attestation keys for server identity (issue 3).
//!
//! The in-band agent reads its TPM's endorsement key (EK) and EK certificate and creates an
//! attestation key (AK) under the EK ([`device`], feature `device`). The service then
//! 1. checks the EK certificate chains to a TPM manufacturer's root and certifies that EK
//!    ([`ekcert`]);
//! 2. parses both public areas itself and computes the AK's name ([`public`]);
//! 3. proves the AK lives on that TPM: it wraps a random secret to the EK, bound to the AK's
//!    name ([`credential::make_credential`]), and only that TPM can unwrap it
//!    (TPM2_ActivateCredential, [`device::Tpm::activate_credential`]).

pub mod credential;
#[cfg(feature = "device")]
pub mod device;
pub mod ekcert;
mod hash;
pub mod public;
mod wire;
mod x509;

pub use credential::{Challenge, CredentialError, answer_matches, make_credential};
pub use ekcert::{
    EkCertVerdict, RootsError, TpmManufacturer, TrustRoots, certificate_key_matches,
    trim_der_padding, verify_ek_certificate, verify_endorsement,
};
pub use hash::HashAlg;
pub use public::{ObjectAttributes, PublicError, PublicKey, SymmetricDef, TpmPublic};
pub use wire::WireError;
