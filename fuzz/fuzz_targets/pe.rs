//! Fuzzes PE/COFF parsing, Authenticode digests and signature checks, and PKCS#7 on its own.
#![no_main]

use automata_fuzz::rules;
use automata_fwscan::{authenticode, pe, pkcs7};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

/// The PKCS#7 readers on one DER blob (a WIN_CERTIFICATE body or the raw input).
fn pkcs7(der: &[u8]) {
    for sd in [
        pkcs7::parse_content_info(der),
        pkcs7::parse_signed_data(der),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(content) = sd.content.as_deref() {
            let _ = pkcs7::spc_indirect_digest(content);
            let _ = pkcs7::content_octets(content);
        }
        for si in &sd.signers {
            let _ = si.signed_attrs_for_signature();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if !pe::is_pe(data) {
        pkcs7(data);
        return;
    }
    let Ok(img) = pe::parse(data) else {
        return;
    };
    let _ = img.authenticode_digest::<Sha256>(data);
    if let Ok(certs) = img.certificates(data) {
        for c in &certs {
            pkcs7(&c.data);
        }
    }
    if let Ok(report) = authenticode::verify(data, &rules().authenticode_roots) {
        for s in &report.signatures {
            assert!(!s.valid || s.problems.is_empty(), "{s:?}");
        }
    }
});
