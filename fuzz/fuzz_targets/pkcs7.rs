//! Fuzzes the detached PKCS#7 verifier (package signatures): DER or PEM in, a verdict out, never
//! a panic and never `valid` without a root.
#![no_main]

use automata_fwscan::signed::{Verdict, pem_or_der, verify_detached_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(der) = pem_or_der(data) else {
        return;
    };
    // The content the real seed signs (fwupd-tests' fakedevice124.bin), so the messageDigest,
    // RSA and chain paths are reached; no roots are configured, so nothing may be valid.
    let v = verify_detached_bytes(&der, b"0x10200004\0", &[]);
    assert_ne!(v.verdict, Verdict::Valid, "{v:?}");
    let _ = serde_json::to_string(&v);
});
