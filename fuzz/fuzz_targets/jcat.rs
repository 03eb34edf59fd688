//! Fuzzes the LVFS jcat reader and the checks on its items: resolve, verify, PKCS#7 verification.
#![no_main]

use automata_fwcatalog::lvfs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(jcat) = lvfs::parse_jcat(data) else {
        return;
    };
    for item in &jcat.items {
        let _ = jcat.resolve(&item.id);
        let _ = lvfs::basename(&item.id);
        // The jcat's own bytes stand in for the file: the checksum rarely matches, the
        // mismatch and missing-item paths run every time.
        let _ = lvfs::verify_jcat(&jcat, &item.id, data, true, &[]).map_err(|e| e.to_string());
        for alias in item.alias_ids.iter().chain(&item.alias_id) {
            let _ = lvfs::verify_jcat(&jcat, alias, b"", false, &[]).map_err(|e| e.to_string());
        }
        for blob in &item.blobs {
            if let Ok(der) = automata_fwscan::signed::pem_or_der(blob.data.as_bytes()) {
                let _ = automata_fwscan::signed::verify_detached_bytes(&der, data, &[]);
            }
        }
    }
});
