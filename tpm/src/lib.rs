//! TPM 2.0 endorsement and attestation keys for server identity.
