//! No bytes an agent sends make the parsers, the certificate check or the challenge builder
//! panic: random input, and real structures with random bytes overwritten or cut off.

use std::time::SystemTime;

use automata_tpm::{TpmPublic, TrustRoots, make_credential, verify_ek_certificate};
use proptest::prelude::*;

const EK_RSA: &[u8] = include_bytes!("data/swtpm-ek-rsa.pub");
const EK_ECC: &[u8] = include_bytes!("data/swtpm-ek-ecc.pub");
const AK: &[u8] = include_bytes!("data/swtpm-ak.pub");
const EK_CERT: &[u8] = include_bytes!("data/swtpm-ek-rsa.der");

/// A real structure with a few bytes overwritten and maybe a tail cut off.
fn mutated(base: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(move |(edits, cut, truncate)| {
            let mut v = base.to_vec();
            for (i, b) in edits {
                let i = i.index(v.len());
                v[i] = b;
            }
            if truncate {
                v.truncate(cut.index(v.len()));
            }
            v
        })
}

/// Parse, then use everything a parsed public area offers.
fn exercise(bytes: &[u8]) {
    let parsed = [TpmPublic::from_tpm2b(bytes), TpmPublic::from_tpmt(bytes)];
    for p in parsed.into_iter().flatten() {
        let _ = (
            p.name(),
            p.fingerprint(),
            p.is_attestation_key(),
            p.tpm2b_bytes(),
        );
        let _ = make_credential(&p, &p.name(), b"secret");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        exercise(&bytes);
        let _ = verify_ek_certificate(&bytes, &[&bytes], &TrustRoots::empty(), SystemTime::now());
    }

    #[test]
    fn mutated_public_areas_never_panic(
        ek in mutated(EK_RSA), ecc in mutated(EK_ECC), ak in mutated(AK)
    ) {
        exercise(&ek);
        exercise(&ecc);
        exercise(&ak);
    }

    #[test]
    fn mutated_certificates_never_verify(cert in mutated(EK_CERT)) {
        prop_assume!(cert != EK_CERT);
        // Under the CA that did sign the original, so only the mutation can make it fail.
        let mut roots = TrustRoots::empty();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/swtpm-localca");
        prop_assert!(roots.add_dir(dir.as_ref()).is_ok());
        let verdict = verify_ek_certificate(&cert, &[], &roots, SystemTime::now());
        prop_assert!(!verdict.is_trusted());
    }
}
